"""Float and shape operators, in float32 with numpy.

Elementwise IEEE operations (``Add``, ``Sub``, ``Mul``, ``Div``, ``Sqrt``, ``Neg``, ``Abs``,
``Relu``, ``Max``/``Min``, ``Where``, ``Cast`` between float32 and integers) are correctly
rounded in numpy as in ONNX Runtime, so their results are bit-identical. ``MatMul`` and ``Gemm``
in float32 use numpy's BLAS (a different summation order than MLAS's SGEMM), ``Softmax``,
``Exp``, ``Tanh``, ``Erf``, ``Sigmoid`` use numpy's (or, for ``Erf``, Python's ``math.erf`` in
float64, rounded to float32) functions rather than MLAS's approximations, and ``ReduceMean``
sums in numpy's pairwise order: their results may differ from ONNX Runtime's in the last bits
(the check reports the ULP distance). Shape operators (``Reshape``, ``Transpose``, ``Shape``,
``Gather``, ``Concat``, ``Unsqueeze``, ``Squeeze``, ``Flatten``, ``Slice``, ``Identity``,
``Constant``) move values and are exact. Every operator follows its ONNX operator spec,
including the opset-13 move of ``axes`` from an attribute to an input (``Squeeze``,
``Unsqueeze``; opset 18 for ``ReduceMean``).
"""

from __future__ import annotations

import math

import numpy as np

from .registry import NodeContext, register

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
    x, y = ctx.need(inputs, 0, "X"), ctx.need(inputs, 1, "Y")
    with np.errstate(all="ignore"):
        if y.size == 1 and float(y.reshape(-1)[0]) == 2.0:
            return x * x
        return np.power(x, y.astype(x.dtype)).astype(x.dtype)


def _unary(fn):
    def op(ctx: NodeContext, inputs: list) -> list:
        x = ctx.need(inputs, 0, "X")
        with np.errstate(all="ignore"):
            return [np.asarray(fn(x)).astype(x.dtype, copy=False)]
    return op


_erf = np.vectorize(math.erf, otypes=[np.float64])

register("Relu")(_unary(lambda x: np.maximum(x, x.dtype.type(0))))
register("Neg")(_unary(np.negative))
register("Abs")(_unary(np.abs))
register("Sqrt")(_unary(np.sqrt))
register("Exp")(_unary(np.exp))
register("Tanh")(_unary(np.tanh))
register("Erf")(_unary(lambda x: _erf(x.astype(np.float64)).astype(x.dtype)))
register("Sigmoid")(_unary(lambda x: F32(1) / (F32(1) + np.exp(-x))))
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


def _matmul_f(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.matmul(a, b).astype(a.dtype, copy=False)
    except ValueError:
        raise ctx.shape_error(f"cannot multiply A of shape {a.shape} by B of shape {b.shape}") from None


@register("MatMul")
def _matmul(ctx: NodeContext, inputs: list) -> list:
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    if a.dtype != b.dtype:
        raise ctx.dtype_error(f"A ({a.dtype}) and B ({b.dtype}) differ")
    return [_matmul_f(ctx, a, b)]


@register("Gemm")
def _gemm(ctx: NodeContext, inputs: list) -> list:
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    c = inputs[2] if len(inputs) > 2 else None
    if ctx.attr("transA", 0):
        a = a.T
    if ctx.attr("transB", 0):
        b = b.T
    y = _matmul_f(ctx, a, b)
    alpha, beta = F32(ctx.attr("alpha", 1.0)), F32(ctx.attr("beta", 1.0))
    if alpha != 1:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1 else c)
    return [y.astype(a.dtype, copy=False)]


@register("Softmax")
def _softmax(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "input")
    axis = int(ctx.attr("axis", -1 if ctx.opset >= 13 else 1))
    ax = axis + x.ndim if axis < 0 else axis
    if ctx.opset < 13:  # coerced to 2-D: [prod(shape[:axis]), prod(shape[axis:])]
        x2 = x.reshape(int(np.prod(x.shape[:ax])), -1)
        return [_softmax_last(x2).reshape(x.shape)]
    return [np.moveaxis(_softmax_last(np.moveaxis(x, ax, -1)), -1, ax)]


def _softmax_last(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(x.dtype, copy=False)


def _ints(ctx: NodeContext, inputs: list, i: int, attr: str) -> list[int] | None:
    if len(inputs) > i and inputs[i] is not None:
        return [int(v) for v in np.asarray(inputs[i]).reshape(-1)]
    v = ctx.attr(attr)
    return None if v is None else [int(t) for t in v]


@register("ReduceMean")
def _reduce_mean(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    axes = _ints(ctx, inputs, 1, "axes") if ctx.opset >= 18 else _ints(ctx, [], 1, "axes")
    keep = bool(ctx.attr("keepdims", 1))
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    r = np.mean(x, axis=tuple(a % x.ndim for a in axes), keepdims=keep, dtype=x.dtype)
    return [np.asarray(r, dtype=x.dtype)]


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


_ACTIVATIONS = {"Relu": lambda x: np.maximum(x, x.dtype.type(0)), "Tanh": np.tanh,
                "Sigmoid": lambda x: F32(1) / (F32(1) + np.exp(-x))}


@register("FusedGemm", domain="com.microsoft")
def _fused_gemm(ctx: NodeContext, inputs: list) -> list:
    """ONNX Runtime's ``Gemm`` fused with the activation named by its ``activation`` attribute."""
    act = ctx.attr("activation", "")
    if act and act not in _ACTIVATIONS:
        raise ctx.shape_error(f"activation {act!r} is not supported; supported: {', '.join(_ACTIVATIONS)}")
    (y,) = _gemm(ctx, inputs)
    return [_ACTIVATIONS[act](y).astype(y.dtype, copy=False) if act else y]


@register("FusedMatMul", domain="com.microsoft")
def _fused_matmul(ctx: NodeContext, inputs: list) -> list:
    """ONNX Runtime's ``alpha * op(A) @ op(B)``, ``op`` transposing the last two axes when
    ``transA``/``transB`` is set (``transBatchA``/``transBatchB`` are not supported)."""
    if ctx.attr("transBatchA", 0) or ctx.attr("transBatchB", 0):
        raise ctx.shape_error("transBatchA/transBatchB are not supported")
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    if ctx.attr("transA", 0):
        a = np.swapaxes(a, -1, -2)
    if ctx.attr("transB", 0):
        b = np.swapaxes(b, -1, -2)
    y = _matmul_f(ctx, a, b)
    alpha = F32(ctx.attr("alpha", 1.0))
    return [y * alpha if alpha != 1 else y]
