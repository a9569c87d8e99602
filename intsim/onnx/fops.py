"""Float and shape operators, in float32 as ONNX Runtime's CPU execution provider computes them.

Elementwise IEEE operations (``Add``, ``Sub``, ``Mul``, ``Div``, ``Sqrt``, ``Reciprocal``,
``Neg``, ``Abs``, ``Relu``, ``Max``/``Min``, ``Clip``, ``Where``, ``Equal``, ``Cast`` between
float32 and integers, ``Pow`` with the scalar exponent 2 or 3, which ONNX Runtime computes as
``x * x`` and ``x * x * x``) are correctly rounded in numpy as in ONNX Runtime, so their results
are bit-identical; other float32 ``Pow`` calls the C library's ``powf``, as ONNX Runtime does.
The float32 operators ONNX Runtime computes with its own approximations or summation orders run
:mod:`intsim.onnx.mlas`'s copies of its kernels, operation for operation: ``Erf``, ``Exp``,
``Tanh``, ``Sigmoid``, ``Softmax``, ``LogSoftmax``, ``LayerNormalization``, ``Gelu`` (opset
20), ``com.microsoft`` ``Gelu``, ``FastGelu``, ``BiasGelu``, ``SkipLayerNormalization``,
``ReduceMean``/``ReduceSum`` (Eigen's packet order, SGEMM's M = 1 kernel), and ``MatMul``/
``com.microsoft.FusedMatMul`` through :mod:`intsim.onnx.sgemm` (MLAS's SGEMM with its thread
split, K slices, packed constant B and M = 1 kernels; ONNX Runtime pinned to one intra-op thread
by the check). They are bit-identical to ONNX Runtime 1.32 on an x86-64 CPU with AVX-512F
(:mod:`intsim.onnx.mlas` says which results depend on the kernels ONNX Runtime dispatches on
the CPU). ``Gemm``/``FusedGemm`` (float32) are MLAS's SGEMM with the broadcast ``C`` as its
``beta * C``. Still not bit-exact: ``ReduceMean``/``ReduceSum`` over axis sets of more than three runs (``R K R K``...),
and float64/float16 inputs of the approximated operators (numpy/libm); the check reports their
differences in ULP. Shape operators (``Reshape``, ``Transpose``, ``Shape``, ``Gather``,
``Concat``, ``Unsqueeze``, ``Squeeze``, ``Flatten``, ``Slice``, ``Expand``,
``ConstantOfShape``, ``Identity``, ``Constant``) move values and are exact. Every operator
follows its ONNX operator spec, including the opset-13 move of ``axes`` from an attribute to an
input (``Squeeze``, ``Unsqueeze``, ``ReduceSum``; opset 18 for ``ReduceMean``).
"""

from __future__ import annotations

import math

import numpy as np

from . import mlas, sgemm
from .registry import MS_DOMAIN, NodeContext, register

__all__: list[str] = []

F32 = np.float32


def _bcast(ctx: NodeContext, fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype != b.dtype:
        raise ctx.dtype_error(f"inputs have different dtypes {a.dtype} and {b.dtype}")
    try:
        with np.errstate(all="ignore"):
            r = fn(a, b)
    except ValueError:
        raise ctx.shape_error(f"inputs of shapes {a.shape} and {b.shape} do not broadcast") from None
    return np.asarray(r).astype(a.dtype, copy=False)


def _binary(fn):
    def op(ctx: NodeContext, inputs: list) -> list:
        return [_bcast(ctx, fn, ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B"))]
    return op


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":  # integer division truncates toward zero (ONNX Runtime, C++)
        q = np.abs(a) // np.abs(b)
        return np.where((a < 0) ^ (b < 0), -q, q)
    return a / b


def _mod(ctx: NodeContext, inputs: list) -> list:
    """ONNX ``Mod``: ``fmod=0`` (integers only) the remainder with the divisor's sign (Python's
    ``%``); ``fmod=1`` C's ``fmod``, the dividend's sign (exact for floats). A zero integer divisor
    is refused (undefined in ONNX Runtime's C++)."""
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    fmod = int(ctx.attr("fmod", 0))
    if a.dtype.kind == "f" and not fmod:
        raise ctx.dtype_error(f"fmod=0 needs integer inputs, got {a.dtype} (set fmod=1 for floats)")
    if b.dtype.kind in "iu" and (np.asarray(b) == 0).any():
        raise ctx.shape_error("an integer divisor is 0 (undefined)")
    return [_bcast(ctx, np.fmod if fmod else np.remainder, a, b)]


register("Mod")(_mod)
register("Add")(_binary(np.add))
register("Sub")(_binary(np.subtract))
register("Mul")(_binary(np.multiply))
register("Div")(_binary(_div))
register("Pow")(lambda ctx, i: [_pow(ctx, i)])
register("Max")(lambda ctx, i: [_fold(ctx, i, np.maximum)])
register("Min")(lambda ctx, i: [_fold(ctx, i, np.minimum)])


def _fold(ctx: NodeContext, inputs: list, fn) -> np.ndarray:
    out = ctx.need(inputs, 0, "data_0")
    for x in inputs[1:]:
        out = _bcast(ctx, fn, out, x)
    return out


def _pow(ctx: NodeContext, inputs: list) -> np.ndarray:
    """ONNX Runtime's ``Pow`` (``element_wise_ops.cc``): a scalar exponent 2 or 3 is ``x * x`` or
    ``(x * x) * x``; otherwise ``std::pow`` per element: the C library's ``powf`` for float32
    (:func:`intsim.onnx.mlas.powf`), the float64 ``pow`` (then rounded) for an integer exponent."""
    x, y = ctx.need(inputs, 0, "X"), ctx.need(inputs, 1, "Y")
    with np.errstate(all="ignore"):
        if y.size == 1 and x.dtype.kind == "f":
            e = y.reshape(-1)[0]
            if e == 2:
                return (x * x).reshape(np.broadcast_shapes(x.shape, y.shape))
            if e == 3:
                return (x * x * x).reshape(np.broadcast_shapes(x.shape, y.shape))
        try:
            if x.dtype == F32 and y.dtype.kind in "iu":
                return mlas.powf(x, y, double=True)
            if x.dtype.kind == "f" and y.dtype.kind in "iu":
                return np.power(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype)
            if x.dtype == F32:
                return mlas.powf(x, y.astype(F32))
            return np.power(x, y.astype(x.dtype)).astype(x.dtype)
        except ValueError:
            raise ctx.shape_error(f"inputs of shapes {x.shape} and {y.shape} do not broadcast") from None


def _unary(fn):
    def op(ctx: NodeContext, inputs: list) -> list:
        x = ctx.need(inputs, 0, "X")
        with np.errstate(all="ignore"):
            return [np.asarray(fn(x)).astype(x.dtype, copy=False)]
    return op


def _float32_kernel(kernel, fallback):
    """``kernel`` (an :mod:`intsim.onnx.mlas` function) for float32 input, ``fallback`` (numpy, not
    ONNX Runtime's exact sequence) for float64/float16."""
    def fn(x: np.ndarray) -> np.ndarray:
        return kernel(x) if x.dtype == F32 else fallback(x)
    return fn


_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def _erf_fallback(x: np.ndarray) -> np.ndarray:
    return _erf64(x.astype(np.float64)).astype(x.dtype)


def _sigmoid_fallback(x: np.ndarray) -> np.ndarray:
    one = x.dtype.type(1)
    return one / (one + np.exp(-x))


def _relu(x: np.ndarray) -> np.ndarray:
    """``x < 0 ? 0 : x``: -0 and NaN pass unchanged, as in ONNX Runtime."""
    return np.where(x < 0, x.dtype.type(0), x)


register("Relu")(_unary(_relu))
register("Neg")(_unary(np.negative))
register("Abs")(_unary(np.abs))
register("Sqrt")(_unary(np.sqrt))
register("Reciprocal")(_unary(lambda x: x.dtype.type(1) / x))
register("Exp")(_unary(_float32_kernel(mlas.exp, np.exp)))
register("Tanh")(_unary(_float32_kernel(mlas.tanh, np.tanh)))
register("Erf")(_unary(_float32_kernel(mlas.erf, _erf_fallback)))
register("Sigmoid")(_unary(_float32_kernel(mlas.logistic, _sigmoid_fallback)))


@register("QuickGelu", domain=MS_DOMAIN)
def _quick_gelu(ctx: NodeContext, inputs: list) -> list:
    """``com.microsoft.QuickGelu`` (``x * sigmoid(alpha * x)``, a fusion ONNX Runtime makes of
    ``x * Sigmoid(x)``), float32 as its CPU kernel: ``alpha * x`` (one float32 multiply, skipped when
    alpha is 1), MLAS's logistic (:func:`intsim.onnx.mlas.logistic`), times ``x``."""
    x = ctx.need(inputs, 0, "X")
    if x.dtype != F32:
        raise ctx.dtype_error(f"X must be float32, got {x.dtype}")
    alpha = F32(ctx.attr("alpha", 1.702))
    with np.errstate(all="ignore"):
        return [x * mlas.logistic(x * alpha if alpha != 1 else x)]
register("Identity")(_unary(lambda x: x))


@register("Constant")
def _constant(ctx: NodeContext, inputs: list) -> list:
    for k in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if k in ctx.attrs:
            v = ctx.attrs[k]
            if k in ("value_float", "value_floats"):
                return [np.asarray(v, dtype=F32)]
            if k in ("value_int", "value_ints"):
                return [np.asarray(v, dtype=np.int64)]
            return [v]
    raise ctx.shape_error(f"unsupported Constant attribute(s): {', '.join(ctx.attrs)}")


@register("Cast")
def _cast(ctx: NodeContext, inputs: list) -> list:
    from .load import onnx_dtype

    x = ctx.need(inputs, 0, "input")
    to = onnx_dtype(int(ctx.attr("to")))
    if x.dtype.kind == "f" and to.kind in "iu":
        with np.errstate(invalid="ignore"):
            return [np.trunc(x).astype(to)]
    return [x.astype(to)]


register("MatMul")(sgemm.float_matmul_op)


@register("Gemm")
def _gemm(ctx: NodeContext, inputs: list) -> list:
    """float32: ONNX Runtime's ``Gemm`` (onnxruntime/core/providers/cpu/math/gemm.cc): ``C``
    broadcast into the output (when given and ``beta != 0``), then MLAS's SGEMM
    ``alpha * op(A) @ op(B) + beta * Y`` (:func:`intsim.onnx.sgemm.mlas_sgemm`, a constant B
    pre-packed); other dtypes through numpy."""
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    c = inputs[2] if len(inputs) > 2 else None
    ta, tb = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    if a.ndim != 2 or b.ndim != 2:
        raise ctx.shape_error(f"A {a.shape} and B {b.shape} must be 2-D")
    m, k = a.shape[::-1] if ta else a.shape
    k2, n = b.shape[::-1] if tb else b.shape
    if k != k2:
        raise ctx.shape_error(f"cannot multiply A of shape {a.shape} by B of shape {b.shape} (transA={int(ta)}, "
                              f"transB={int(tb)})")
    alpha, beta = F32(ctx.attr("alpha", 1.0)), F32(ctx.attr("beta", 1.0))
    if c is not None:
        try:
            cb = np.broadcast_to(c, (m, n))
        except ValueError:
            raise ctx.shape_error(f"C {c.shape} does not broadcast to the output ({m}, {n})") from None
    if a.dtype != F32 or b.dtype != F32 or (c is not None and c.dtype != F32):
        y = np.matmul(a.T if ta else a, b.T if tb else b).astype(a.dtype, copy=False)
        if alpha != 1:
            y = y * alpha
        if c is not None:
            y = y + (c * beta if beta != 1 else c)
        return [y.astype(a.dtype, copy=False)]
    use_c = c is not None and beta != 0
    y = sgemm.mlas_sgemm(a[None], b[None], trans_a=ta, trans_b=tb, alpha=float(alpha),
                         b_packed=ctx.is_constant(1), c=cb[None] if use_c else None, beta=float(beta) if use_c else 0.0)
    return [y[0]]


def _softmax_op(ctx: NodeContext, inputs: list, kernel, fallback) -> list:
    x = ctx.need(inputs, 0, "input")
    if x.ndim == 0:
        raise ctx.shape_error("input must have at least one dimension")
    axis = int(ctx.attr("axis", -1 if ctx.opset >= 13 else 1))
    if not -x.ndim <= axis < x.ndim:
        raise ctx.shape_error(f"axis {axis} is out of range for rank {x.ndim}")
    ax = axis + x.ndim if axis < 0 else axis
    fn = kernel if x.dtype == F32 else fallback
    if x.size == 0:
        return [x.copy()]
    if ctx.opset < 13:  # coerced to 2-D: [prod(shape[:axis]), prod(shape[axis:])]
        return [fn(x.reshape(int(np.prod(x.shape[:ax])), -1)).reshape(x.shape)]
    t = np.moveaxis(x, ax, -1)  # ONNX Runtime transposes the axis innermost, then runs row by row
    return [np.moveaxis(fn(t.reshape(-1, t.shape[-1])).reshape(t.shape), -1, ax)]


def _softmax_np(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return (e / np.sum(e, axis=-1, keepdims=True)).astype(x.dtype, copy=False)


def _log_softmax_np(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        z = x - np.max(x, axis=-1, keepdims=True)
        return (z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))).astype(x.dtype, copy=False)


@register("Softmax")
def _softmax(ctx: NodeContext, inputs: list) -> list:
    """Rows along ``axis`` (opset >= 13; below 13 the input is coerced to 2-D at ``axis``), float32
    as ``MlasComputeSoftmax`` (:func:`intsim.onnx.mlas.softmax`)."""
    return _softmax_op(ctx, inputs, mlas.softmax, _softmax_np)


@register("LogSoftmax")
def _log_softmax(ctx: NodeContext, inputs: list) -> list:
    """As ``Softmax``, float32 as :func:`intsim.onnx.mlas.log_softmax`."""
    return _softmax_op(ctx, inputs, mlas.log_softmax, _log_softmax_np)


def _ints(ctx: NodeContext, inputs: list, i: int, attr: str) -> list[int] | None:
    if len(inputs) > i and inputs[i] is not None:
        return [int(v) for v in np.asarray(inputs[i]).reshape(-1)]
    v = ctx.attr(attr)
    return None if v is None else [int(t) for t in v]


def _fast_shape(shape: tuple[int, ...], reduced: set[int]) -> tuple[list[int], list[bool]]:
    """The shape with dimensions of size 1 dropped and neighbours of one kind (reduced or kept)
    merged, as ONNX Runtime's fast reductions see it."""
    dims: list[int] = []
    kinds: list[bool] = []
    for i, n in enumerate(shape):
        if n == 1:
            continue
        r = i in reduced
        if kinds and kinds[-1] == r:
            dims[-1] *= n
        else:
            dims.append(n)
            kinds.append(r)
    return dims, kinds


def _reduce_sum_f32(x: np.ndarray, reduced: set[int]) -> tuple[np.ndarray, int] | None:
    """The sum over ``reduced`` (C order of the kept axes) in ONNX Runtime's float32 order, and the
    number of summed elements; None where ONNX Runtime sums otherwise (middle axes: SGEMM)."""
    dims, kinds = _fast_shape(x.shape, reduced)
    flat = np.ascontiguousarray(x).reshape(-1)
    if not any(kinds):  # nothing to add up
        return flat.copy(), 1
    if kinds == [True]:
        return mlas.sum_rows(flat.reshape(1, -1)), dims[0]
    if kinds == [False, True]:  # FastReduceKR: Eigen's sum per row
        return mlas.sum_rows(flat.reshape(dims)), dims[1]
    if kinds == [True, False]:  # FastReduceRK: the rows added one after another
        rows = flat.reshape(dims)
        acc = rows[0].copy()
        for r in rows[1:]:
            acc += r
        return acc, dims[0]
    if kinds == [True, False, True]:  # FastReduceRKR: 0 + Eigen sums of the blocks, in order
        return mlas.sum_blocks(flat, dims[0], dims[1], dims[2]), dims[0] * dims[2]
    if kinds == [False, True, False]:  # FastReduceKRK: ones(1, K) @ block in SGEMM's M = 1 kernel
        return mlas.sum_middle(flat, dims[0], dims[1], dims[2]), dims[1]
    return None


def _reduce(ctx: NodeContext, inputs: list, axes_input: bool, mean: bool) -> list:
    x = ctx.need(inputs, 0, "data")
    axes = _ints(ctx, inputs, 1, "axes") if axes_input else _ints(ctx, [], 1, "axes")
    keep = bool(ctx.attr("keepdims", 1))
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    if any(not -x.ndim <= a < max(x.ndim, 1) for a in axes):
        raise ctx.shape_error(f"axes {axes} are out of range for rank {x.ndim}")
    red = {a % x.ndim for a in axes} if x.ndim else set()
    out_shape = tuple(1 if i in red else n for i, n in enumerate(x.shape) if keep or i not in red)
    exact = _reduce_sum_f32(x, red) if x.dtype == F32 and x.size else None
    if exact is not None:
        total, count = exact
        if mean:
            total = total / F32(count)
        return [total.reshape(out_shape)]
    with np.errstate(all="ignore"):
        fn = np.mean if mean else np.sum
        r = fn(x, axis=tuple(sorted(red)), keepdims=keep, dtype=x.dtype)
    return [np.asarray(r, dtype=x.dtype).reshape(out_shape)]


@register("ReduceMean")
def _reduce_mean(ctx: NodeContext, inputs: list) -> list:
    """Float32 over trailing axes (Eigen's packet sum per row), leading axes (rows added in order),
    leading and trailing ones (blocks) or middle ones (SGEMM's M = 1 kernel), then divided by the
    count: ONNX Runtime's order (``reduction_ops.h``, ``FastReduceKR``/``RK``/``RKR``/``KRK``,
    dimensions of size 1 ignored, neighbours merged); other axis sets in numpy's order."""
    return _reduce(ctx, inputs, ctx.opset >= 18, True)


@register("ReduceSum")
def _reduce_sum(ctx: NodeContext, inputs: list) -> list:
    """As ``ReduceMean`` without the division (axes an input from opset 13); float32 over one
    middle axis of three non-trivial ones (``[A, R, N]``, A and N above 1) as ONNX Runtime's
    ``FastReduceKRK``: a ones-row SGEMM per outer index (:func:`intsim.onnx.sgemm.reduce_sum_krk`)."""
    x = ctx.need(inputs, 0, "data")
    axes_in = inputs[1] if len(inputs) > 1 and ctx.opset >= 13 else ctx.attr("axes")
    if axes_in is not None and x.dtype == F32 and x.ndim >= 3:
        axes = sorted({int(a) % x.ndim for a in np.asarray(axes_in).reshape(-1)})
        if len(axes) == 1 and 0 < axes[0] < x.ndim - 1:
            ax = axes[0]
            outer, inner = int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax + 1:]))
            if outer > 1 and inner > 1 and x.shape[ax] > 1:
                y = sgemm.reduce_sum_krk(x.reshape(outer, x.shape[ax], inner))
                kept = x.shape[:ax] + ((1,) if ctx.attr("keepdims", 1) else ()) + x.shape[ax + 1:]
                return [y.reshape(kept)]
    return _reduce(ctx, inputs, ctx.opset >= 13, False)


@register("Reshape")
def _reshape(ctx: NodeContext, inputs: list) -> list:
    x, shape = ctx.need(inputs, 0, "data"), [int(v) for v in ctx.need(inputs, 1, "shape").reshape(-1)]
    if not ctx.attr("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    try:
        return [x.reshape(shape)]
    except ValueError:
        raise ctx.shape_error(f"cannot reshape {x.shape} to {shape}") from None


@register("Flatten")
def _flatten(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "input")
    ax = int(ctx.attr("axis", 1)) % (x.ndim + 1) if x.ndim else 0
    return [x.reshape(int(np.prod(x.shape[:ax])), -1)]


@register("Transpose")
def _transpose(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    perm = ctx.attr("perm")
    return [np.transpose(x, None if perm is None else [int(p) for p in perm])]


@register("Shape")
def _shape(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    shape = np.asarray(x.shape, dtype=np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end")
    return [shape[start:end]]


@register("Gather")
def _gather(ctx: NodeContext, inputs: list) -> list:
    x, idx = ctx.need(inputs, 0, "data"), ctx.need(inputs, 1, "indices")
    axis = int(ctx.attr("axis", 0)) % max(x.ndim, 1)
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ctx.shape_error(f"indices out of range [-{n}, {n - 1}] along axis {axis}")
    return [np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)]


@register("Concat")
def _concat(ctx: NodeContext, inputs: list) -> list:
    xs = [x for x in inputs if x is not None]
    try:
        return [np.concatenate(xs, axis=int(ctx.attr("axis")))]
    except ValueError:
        raise ctx.shape_error(f"cannot concatenate shapes {[x.shape for x in xs]}") from None


@register("Unsqueeze")
def _unsqueeze(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    axes = _ints(ctx, inputs, 1, "axes") if ctx.opset >= 13 else _ints(ctx, [], 1, "axes")
    nd = x.ndim + len(axes or [])
    return [np.expand_dims(x, tuple(sorted(a % nd for a in axes or [])))]


@register("Squeeze")
def _squeeze(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    axes = _ints(ctx, inputs, 1, "axes") if ctx.opset >= 13 else _ints(ctx, [], 1, "axes")
    if not axes:
        return [np.squeeze(x)]
    try:
        return [np.squeeze(x, axis=tuple(a % x.ndim for a in axes))]
    except ValueError:
        raise ctx.shape_error(f"cannot squeeze axes {axes} of shape {x.shape}") from None


@register("Slice")
def _slice(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    starts, ends = _ints(ctx, inputs, 1, "starts"), _ints(ctx, inputs, 2, "ends")
    axes = _ints(ctx, inputs, 3, "axes") or list(range(len(starts or [])))
    steps = _ints(ctx, inputs, 4, "steps") or [1] * len(axes)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts or [], ends or [], axes, steps, strict=False):
        sl[a % x.ndim] = slice(s, e, st)
    return [x[tuple(sl)]]


@register("Where")
def _where(ctx: NodeContext, inputs: list) -> list:
    c, a, b = (ctx.need(inputs, i, n) for i, n in enumerate(("condition", "X", "Y")))
    return [np.where(c, a, b)]


_ACTIVATIONS = {"Relu": _relu,
                "Tanh": _float32_kernel(mlas.tanh, np.tanh),  # MlasActivation: MlasComputeTanh
                "Sigmoid": _float32_kernel(mlas.logistic, _sigmoid_fallback)}


@register("FusedGemm", domain="com.microsoft")
def _fused_gemm(ctx: NodeContext, inputs: list) -> list:
    """ONNX Runtime's ``Gemm`` fused with the activation named by its ``activation`` attribute."""
    act = ctx.attr("activation", "")
    if act and act not in _ACTIVATIONS:
        raise ctx.shape_error(f"activation {act!r} is not supported; supported: {', '.join(_ACTIVATIONS)}")
    (y,) = _gemm(ctx, inputs)
    return [_ACTIVATIONS[act](y).astype(y.dtype, copy=False) if act else y]


register("FusedMatMul", domain=MS_DOMAIN)(sgemm.fused_matmul_op)


# ---------------------------------------------------------------------------------------------
# comparisons and shape producers
# ---------------------------------------------------------------------------------------------

def _comparison(fn):
    def op(ctx: NodeContext, inputs: list) -> list:
        a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
        if a.dtype != b.dtype:
            raise ctx.dtype_error(f"inputs have different dtypes {a.dtype} and {b.dtype}")
        try:
            return [fn(a, b)]
        except ValueError:
            raise ctx.shape_error(f"inputs of shapes {a.shape} and {b.shape} do not broadcast") from None
    return op


# elementwise comparisons (bool; IEEE: a NaN compares false, -0 == +0), numpy broadcasting
register("Equal")(_comparison(np.equal))
register("Greater")(_comparison(np.greater))
register("Less")(_comparison(np.less))
register("GreaterOrEqual")(_comparison(np.greater_equal))
register("LessOrEqual")(_comparison(np.less_equal))


@register("LeakyRelu")
def _leaky_relu(ctx: NodeContext, inputs: list) -> list:
    """``x`` where ``x >= 0`` (``-0`` and NaN kept), else ``alpha * x`` in the input's precision
    (MLAS's activation: one multiply, then a blend on ``x < 0``)."""
    x = ctx.need(inputs, 0, "X")
    alpha = x.dtype.type(ctx.attr("alpha", 0.01)) if x.dtype.kind == "f" else ctx.attr("alpha", 0.01)
    return [np.where(x < 0, x * alpha, x).astype(x.dtype, copy=False)]


@register("Not")
def _not(ctx: NodeContext, inputs: list) -> list:
    return [np.logical_not(ctx.need(inputs, 0, "X"))]


@register("Expand")
def _expand(ctx: NodeContext, inputs: list) -> list:
    """``input`` broadcast against ``shape`` (two-way, as ONNX specifies: a 1 in ``shape`` keeps the
    input's dimension)."""
    x, shape = ctx.need(inputs, 0, "input"), [int(v) for v in ctx.need(inputs, 1, "shape").reshape(-1)]
    try:
        target = np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        raise ctx.shape_error(f"input of shape {x.shape} does not broadcast to {shape}") from None
    return [np.broadcast_to(x, target).copy()]


@register("ConstantOfShape")
def _constant_of_shape(ctx: NodeContext, inputs: list) -> list:
    """A tensor of shape ``input`` filled with ``value`` (a one-element tensor; default float32 0)."""
    shape = [int(v) for v in ctx.need(inputs, 0, "input").reshape(-1)]
    if any(n < 0 for n in shape):
        raise ctx.shape_error(f"negative dimension in shape {shape}")
    v = ctx.attr("value")
    v = np.zeros(1, F32) if v is None else np.asarray(v).reshape(-1)
    if v.size != 1:
        raise ctx.shape_error(f"value must hold one element, got {v.size}")
    return [np.full(shape, v[0], dtype=v.dtype)]


# ---------------------------------------------------------------------------------------------
# normalization and GELU (ONNX and ONNX Runtime's com.microsoft fusions)
# ---------------------------------------------------------------------------------------------

def _param(ctx: NodeContext, inputs: list, i: int, what: str, n: int) -> np.ndarray | None:
    if len(inputs) <= i or inputs[i] is None:
        return None
    p = inputs[i]
    if p.dtype != F32:
        raise ctx.dtype_error(f"{what} must be float32, got {p.dtype}")
    if p.size != n:
        raise ctx.shape_error(f"{what} has {p.size} elements; the normalized size is {n} (broadcast "
                              "scale/bias are not supported)")
    return p.reshape(-1)


def _float32_input(ctx: NodeContext, x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype != F32:
        raise ctx.dtype_error(f"{what} must be float32, got {x.dtype} (only float32 is supported)")
    return x


@register("LayerNormalization")
def _layer_norm(ctx: NodeContext, inputs: list) -> list:
    """Opset 17 (also ONNX Runtime's earlier contrib schema in the default domain): ``X`` normalized
    over the axes from ``axis`` (default -1) on, ``epsilon`` default 1e-5, float32 as ONNX
    Runtime's CPU kernel (:func:`intsim.onnx.mlas.layer_norm`); outputs ``Y``, ``Mean``,
    ``InvStdDev`` (shape of ``X`` with the normalized axes 1). ``stash_type`` 1 (float32) is the
    only type ONNX Runtime's CPU kernel computes in; float32 only."""
    x = _float32_input(ctx, ctx.need(inputs, 0, "X"), "X")
    if x.ndim == 0:
        raise ctx.shape_error("X must have at least one dimension")
    axis = int(ctx.attr("axis", -1))
    if not -x.ndim <= axis < x.ndim:
        raise ctx.shape_error(f"axis {axis} is out of range for rank {x.ndim}")
    ax = axis % x.ndim
    n = int(np.prod(x.shape[ax:]))
    scale = _param(ctx, inputs, 1, "Scale", n)
    if scale is None:
        raise ctx.shape_error("required input 1 (Scale) is missing")
    bias = _param(ctx, inputs, 2, "B", n)
    rows = int(np.prod(x.shape[:ax]))
    y, mean, inv = mlas.layer_norm(x.reshape(rows, n), scale, bias, float(ctx.attr("epsilon", 1e-5)))
    stat = x.shape[:ax] + (1,) * (x.ndim - ax)
    return [y.reshape(x.shape), mean.reshape(stat), inv.reshape(stat)]


@register("SkipLayerNormalization", domain=MS_DOMAIN)
def _skip_layer_norm(ctx: NodeContext, inputs: list) -> list:
    """``com.microsoft.SkipLayerNormalization``: ``s = (input + skip) + bias`` (bias optional;
    ``skip`` of the input's shape or broadcast over its leading axes), normalized over the last
    axis with ``gamma``/``beta`` by ONNX Runtime's scalar Welford loop
    (:func:`intsim.onnx.mlas.welford_layer_norm`, every row length); outputs ``output``, ``mean``,
    ``inv_std_var`` (one per row, trailing axis 1) and ``input_skip_bias_sum`` (``s``)."""
    x = _float32_input(ctx, ctx.need(inputs, 0, "input"), "input")
    skip = _float32_input(ctx, ctx.need(inputs, 1, "skip"), "skip")
    if x.ndim < 2:
        raise ctx.shape_error(f"input must have rank 2 or more, got shape {x.shape}")
    n = x.shape[-1]
    gamma = _param(ctx, inputs, 2, "gamma", n)
    if gamma is None:
        raise ctx.shape_error("required input 2 (gamma) is missing")
    beta, bias = _param(ctx, inputs, 3, "beta", n), _param(ctx, inputs, 4, "bias", n)
    if skip.shape != x.shape and (skip.size == 0 or x.size % skip.size or skip.shape[-1] != n):
        raise ctx.shape_error(f"skip of shape {skip.shape} does not fit input of shape {x.shape}")
    s = x + np.broadcast_to(skip.reshape(-1), (x.size // skip.size, skip.size)).reshape(x.shape)
    if bias is not None:
        s = s + bias
    y, mean, inv = mlas.welford_layer_norm(s.reshape(-1, n), gamma, beta, float(ctx.attr("epsilon", 1e-12)))
    stat = x.shape[:-1] + (1,)
    return [y.reshape(x.shape), mean.reshape(stat), inv.reshape(stat), s]


@register("Gelu")
def _gelu(ctx: NodeContext, inputs: list) -> list:
    """Opset 20: ``approximate="none"`` (default) ``0.5x(1 + erf(x/sqrt 2))`` as
    :func:`intsim.onnx.mlas.gelu`, ``"tanh"`` as :func:`intsim.onnx.mlas.gelu_tanh`; float32."""
    x = _float32_input(ctx, ctx.need(inputs, 0, "X"), "X")
    approx = ctx.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        raise ctx.shape_error(f"approximate must be 'none' or 'tanh', got {approx!r}")
    return [mlas.gelu(x) if approx == "none" else mlas.gelu_tanh(x)]


@register("Gelu", domain=MS_DOMAIN)
def _ms_gelu(ctx: NodeContext, inputs: list) -> list:
    """``com.microsoft.Gelu``: the erf form (:func:`intsim.onnx.mlas.gelu`); float32."""
    return [mlas.gelu(_float32_input(ctx, ctx.need(inputs, 0, "X"), "X"))]


def _add_bias(ctx: NodeContext, x: np.ndarray, inputs: list, i: int) -> np.ndarray:
    if len(inputs) <= i or inputs[i] is None:
        return x
    b = _float32_input(ctx, inputs[i], "bias")
    if b.ndim != 1 or not x.ndim or b.shape[0] != x.shape[-1]:
        raise ctx.shape_error(f"bias of shape {b.shape} must be 1-D with the last dimension of A {x.shape}")
    return x + b


@register("BiasGelu", domain=MS_DOMAIN)
def _bias_gelu(ctx: NodeContext, inputs: list) -> list:
    """``com.microsoft.BiasGelu``: ``gelu(A + B)`` (float32 add, then :func:`intsim.onnx.mlas.gelu`)."""
    x = _float32_input(ctx, ctx.need(inputs, 0, "A"), "A")
    if len(inputs) < 2 or inputs[1] is None:
        raise ctx.shape_error("required input 1 (B) is missing")
    return [mlas.gelu(_add_bias(ctx, x, inputs, 1))]


@register("FastGelu", domain=MS_DOMAIN)
def _fast_gelu(ctx: NodeContext, inputs: list) -> list:
    """``com.microsoft.FastGelu``: the tanh form of ``X + bias`` (bias optional), float32 as
    :func:`intsim.onnx.mlas.gelu_tanh`."""
    x = _float32_input(ctx, ctx.need(inputs, 0, "X"), "X")
    return [mlas.gelu_tanh(_add_bias(ctx, x, inputs, 1))]


@register("Clip")
def _clip(ctx: NodeContext, inputs: list) -> list:
    """``t = x < min ? min : x; y = t > max ? max : t`` (a NaN passes, -0 and +0 keep their sign
    unless replaced by a bound), bounds from inputs 1 and 2 (opset >= 11) or the ``min``/``max``
    attributes; an absent bound is the type's lowest/highest finite value, so a float +-inf is
    clipped to +-FLT_MAX, as ONNX Runtime does."""
    x = ctx.need(inputs, 0, "input")
    info = np.finfo(x.dtype) if x.dtype.kind == "f" else np.iinfo(x.dtype)

    def bound(i: int, attr: str, default):
        if ctx.opset >= 11:
            v = inputs[i] if len(inputs) > i and inputs[i] is not None else None
            if v is not None and v.size != 1:
                raise ctx.shape_error(f"{attr} must be a scalar, got shape {v.shape}")
            return x.dtype.type(default if v is None else v.reshape(-1)[0])
        return x.dtype.type(ctx.attr(attr, default))

    lo, hi = bound(1, "min", info.min), bound(2, "max", info.max)
    t = np.where(x < lo, lo, x)
    return [np.where(t > hi, hi, t).astype(x.dtype, copy=False)]
