"""Integer and quantized operators, with ONNX Runtime's CPU arithmetic.

Every integer GEMM runs on intsim's emulated datapath (:func:`intsim.matmul`). The zero points
are subtracted exactly in int64 *before* the GEMM, as ``MatMulInteger`` defines its result, the
product of ``(A - a_zero_point)`` and ``(B - b_zero_point)``: from 8-bit operands (uint8 or
int8) the GEMM operands become 9-bit signed integers in [-255, 255], so the default datapath is
``Datapath(a=IntType(9), b=IntType(9), acc_bits=32, overflow="wrap")``: an int32 accumulator
that wraps as ONNX Runtime's int32 accumulators do (MLAS folds the zero points in with row and
column sums, all modulo 2**32, so its result is the exact sum modulo 2**32 too). Each GEMM is
recorded (:class:`~intsim.onnx.registry.GemmRecord`) with its overflow count.

The float arithmetic around the GEMMs is float32, in the order ONNX Runtime's CPU kernels use
(``onnxruntime/core/mlas/lib/quantize.cpp``, ``intrinsics/avx2/qladd_avx2.cpp``, ``qlmul.cpp``,
``onnxruntime/core/util/qmath.h``, ``onnxruntime/contrib_ops/cpu/quantization/``), as ONNX Runtime
1.32 runs them on an x86-64 CPU with AVX2 and FMA (AVX-512F for the float GEMM):

``QuantizeLinear``
    ``q = sat(rint(x / y_scale) + zp)``: one float32 division, round half to even, saturation;
    a NaN gives the type's minimum (MLAS clamps with ``MAXPS``, which returns the bound for NaN).
``DequantizeLinear``
    ``float32(x - zp) * x_scale``: the difference exact in integers, one float32 multiply.
``DynamicQuantizeLinear``
    ``lo = min(min(x), 0)``, ``hi = max(max(x), 0)``, ``scale = (hi - lo) / 255`` (1 if
    ``hi == lo``), ``zp = rint(clip(0 - lo / scale, 0, 255))``, all float32; then
    ``QuantizeLinear`` to uint8.
``MatMulInteger``
    the int32 GEMM of the zero-point-free operands.
``QLinearMatMul``
    the int32 GEMM, then requantization with ``intsim.requantize(mode="ort_fp32")`` by the
    multiplier ``a_scale * b_scale / y_scale`` computed in float32 in that order (per column
    for a per-column ``b_scale``), ``+ y_zero_point``, saturation.
``MatMulIntegerToFloat``, ``DynamicQuantizeMatMul`` (com.microsoft)
    ``float32(acc) * (a_scale * b_scale) + bias``: the scale product in float32 first, then one
    multiply and one add (no fused multiply-add). ``DynamicQuantizeMatMul`` quantizes ``A`` to
    uint8 as ``DynamicQuantizeLinear`` does.
``QLinearAdd`` (com.microsoft)
    uint8/int8: ``MlasQLinearAdd{U8,S8}KernelAvx2`` (:func:`qlinear_add_mlas`): the scale ratios
    ``a_scale / c_scale``, ``b_scale / c_scale`` and a fixed part holding every zero point, then
    two fused multiply-adds per element, ``CVTPS2DQ`` and saturation; when one input repeats one
    value along the innermost axis ONNX Runtime hands it to MLAS as the scalar operand (the
    other input then plays "A"). 16-bit: the scalar C++ helper (:func:`qlinear_add_raw`).
``QLinearMul`` (com.microsoft)
    the exact integer product ``(a - a_zp) * (b - b_zp)``, then ``float32(p) * ((a_scale *
    b_scale) / c_scale) + c_zp`` (multiply, then add), ``CVTPS2DQ``, saturation
    (:func:`qlinear_mul_mlas`).
``QLinearSoftmax`` (com.microsoft)
    a 256-entry float32 ``exp`` table from ``x_scale`` and the row length, the row's sum in
    index order, ``nearbyintf(e * floor(1 / y_scale) / sum) + y_zp`` (:func:`qlinear_softmax_rows`).
``QLinearSigmoid``, ``QLinearLeakyRelu``, ``QLinearConcat``, ``QLinearWhere`` (com.microsoft)
    a 256-entry table per input, ``QuantizeLinear(f(x_scale * (x - x_zp)))`` in float32
    (:func:`lookup_table`; ``f`` is MLAS's logistic, ``v >= 0 ? v : alpha * v``, or the identity
    from an input's parameters to the output's, a plain copy when they are equal).
``QGemm`` (com.microsoft)
    ``alpha`` times the int32 GEMM of the (optionally transposed) zero-point-free operands plus
    the int32 bias ``C``; with ``y_scale`` requantized as ``QLinearMatMul`` with the multiplier
    ``alpha * a_scale * b_scale / y_scale``, else ``float32(acc) * (alpha * a_scale * b_scale)``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from ..core.errors import AccumulatorOverflow
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..hw.gemm import gemm_ops, matmul
from ..quant.requant import quantize_linear as quantize_linear_op
from ..quant.requant import requantize
from .mlas import fma32
from .registry import MS_DOMAIN, GemmOutcome, GemmRecord, KernelTrace, NodeContext, register

__all__ = ["int_matmul", "acc32", "float_input", "int_input", "qtype", "scalar_input", "quantize_linear",
           "dynamic_quantize_params", "fma_f32", "qlinear_add_mlas", "qlinear_add_raw", "qlinear_mul_mlas",
           "lookup_table", "softmax_exp_table", "qlinear_softmax_rows"]

F32 = np.float32
_QTYPES = {np.dtype(np.uint8): IntType(8, signed=False), np.dtype(np.int8): IntType(8),
           np.dtype(np.uint16): IntType(16, signed=False), np.dtype(np.int16): IntType(16),
           np.dtype(np.int32): IntType(32)}


def qtype(ctx: NodeContext, dt: np.dtype, what: str) -> IntType:
    """The IntType of a quantized tensor's dtype (int8/uint8/int16/uint16/int32), a DTypeError naming ``what``."""
    t = _QTYPES.get(np.dtype(dt))
    if t is None:
        raise ctx.dtype_error(f"{what} has dtype {dt}; supported: {', '.join(str(d) for d in _QTYPES)}")
    return t


def int_input(ctx: NodeContext, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` if it is an integer tensor, else a DTypeError naming the node and ``what``."""
    if x.dtype.kind not in "iu":
        raise ctx.dtype_error(f"{what} must be an integer tensor, got {x.dtype}")
    return x


def float_input(ctx: NodeContext, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` if it is a float32 tensor, else a DTypeError naming the node and ``what``."""
    if x.dtype != np.float32:
        raise ctx.dtype_error(f"{what} must be a float32 tensor, got {x.dtype} (intsim runs float32 models)")
    return x


def scalar_input(ctx: NodeContext, x: np.ndarray | None, what: str, default: float | int | None = None) -> np.ndarray:
    """A scalar (or 1-element) input as a 0-d array; ``default`` when absent (a ConfigError without one)."""
    if x is None:
        if default is None:
            raise ctx.shape_error(f"{what} is required")
        return np.asarray(default)
    if x.size != 1:
        raise ctx.shape_error(f"{what} must be a scalar (or a 1-element tensor), got shape {x.shape}")
    return x.reshape(())


def _datapath_gemm(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> GemmOutcome:
    """One 2-D product on ``ctx.datapath`` (:func:`intsim.matmul`)."""
    return _outcome(matmul(a, b, ctx.datapath), a.shape[0] * a.shape[1] * b.shape[1])


def _outcome(r, macs: int, ops: OpCounts | None = None) -> GemmOutcome:
    first = None
    if r.n_overflow:
        i, j = (int(v) for v in np.argwhere(r.overflow)[0])
        first = (i, j, int(r.first_overflow_k[i, j]))
    return GemmOutcome(r.values, r.method, int(r.n_overflow), r.ops if ops is None else ops, first, macs)


def _raw_path(ctx: NodeContext, a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray) -> bool:
    """Whether the product of ``a - za`` and ``b - zb`` may run on the raw 8-bit operands (see
    :func:`int_matmul`): the default datapath (no what-if GEMM, no trace), one product (B 2-D),
    zero points per tensor for A and per tensor or column for B, and operand types that hold every
    zero-point-free value ([-255, 255])."""
    dp = ctx.datapath
    return (ctx.gemm is None and ctx.trace is None and a.ndim >= 2 and b.ndim == 2 and za.ndim == 0
            and zb.ndim <= 1 and a.dtype.itemsize == 1 and b.dtype.itemsize == 1 and dp.zero_points == "operands"
            and all(t.min <= -255 and t.max >= 255 for t in (dp.a, dp.b)))


def _raw_gemm(ctx: NodeContext, a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray) -> GemmOutcome:
    """One 2-D product of ``a - za`` and ``b - zb`` by :func:`intsim.matmul` on the raw operands with
    their zero points (``zero_points="operands"``: the proof and scans on the shifted operands, the
    cleared outputs from an integer engine plus the exact correction), recorded with the op counts
    of the zero-point-free GEMM on ``ctx.datapath``."""
    dp = ctx.datapath
    r = matmul(a, b, replace(dp, a=_QTYPES[a.dtype], b=_QTYPES[b.dtype]), a_zero_point=za, b_zero_point=zb)
    m, k = a.shape
    n = b.shape[1]
    return _outcome(r, m * k * n, gemm_ops(m, k, n, dp))


def _batched_exact(ctx: NodeContext, aa: np.ndarray, bb: np.ndarray) -> np.ndarray | None:
    """All the 2-D products of a batched GEMM at once, when the datapath's default arithmetic
    cannot overflow them: operands checked against ``ctx.datapath``'s types (OperandRangeError as
    :func:`intsim.matmul` raises it), then ``K * max|A| * max|B|`` (plus nothing: no bias) within
    the accumulator's range proves every partial sum fits, so each output is the exact product,
    computed in float64 (exact below 2**53) by numpy's batched matmul. None when the bound does
    not hold (each product then runs on :func:`intsim.matmul`, which finds the overflows)."""
    dp = ctx.datapath
    if dp.k_chunk != 1 or dp.zero_points != "operands":
        return None
    dp.a.check(aa, "A")
    dp.b.check(bb, "B")
    k = aa.shape[2]
    amax = int(np.abs(aa).max()) if aa.size else 0
    bmax = int(np.abs(bb).max()) if bb.size else 0
    if k * amax * bmax >= min(2 ** (dp.acc_bits - 1) - 1, 2**53):
        return None
    return np.matmul(aa.astype(np.float64), bb.astype(np.float64)).astype(np.int64)


def int_matmul(ctx: NodeContext, a: np.ndarray, b: np.ndarray, za: np.ndarray | None = None,
               zb: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (numpy ``matmul`` shapes: 1-D operands, broadcast batch dimensions) of integer
    arrays on ``ctx.datapath``, one :func:`intsim.matmul` per 2-D product (or ``ctx.gemm``, a
    what-if run's replacement); int64 registers. A 2-D ``b`` (a weight) multiplies ``a`` with all
    its leading axes as rows, in one product, as ONNX Runtime's ``MatMulComputeHelper`` arranges it
    (integer sums do not depend on the arrangement); otherwise one product per broadcast batch
    index. Each node is recorded in ``ctx.gemms``, each product in ``ctx.trace`` when it is a list.

    With zero points ``za`` (a scalar or one per row, shaped by :func:`_zp_rows`) and ``zb`` (by
    :func:`_zp_cols`), ``a`` and ``b`` are raw operands and the product is of ``a - za`` and
    ``b - zb``; when :func:`_raw_path` allows, the raw 8-bit operands go to :func:`intsim.matmul`
    with their zero points (:func:`_raw_gemm`), else they are shifted here, exactly, in int64."""
    run = ctx.gemm or _datapath_gemm
    if za is not None or zb is not None:
        za = np.zeros((), np.int64) if za is None else za
        zb = np.zeros((), np.int64) if zb is None else zb
        if _raw_path(ctx, a, b, za, zb):
            zb1 = zb.astype(np.int64)
            run = lambda c, ai, bi: _raw_gemm(c, ai, bi, za, zb1)  # noqa: E731
        else:
            a, b = _sub_zp(a, za), _sub_zp(b, zb)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.ndim < 2 or b2.ndim < 2 or a2.shape[-1] != b2.shape[-2]:
        raise ctx.shape_error(f"cannot multiply A of shape {a.shape} by B of shape {b.shape}")
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ctx.shape_error(f"batch dimensions of A {a.shape} and B {b.shape} do not broadcast") from None
    m, k = a2.shape[-2:]
    n = b2.shape[-1]
    flat = b2.ndim == 2 and a2.ndim > 2
    if flat:  # a weight: one product with every leading axis of A as rows (as MLAS)
        m = int(np.prod(a2.shape[:-1]))
        aa, bb = a2.reshape(1, m, k), b2[None]
    else:
        aa = np.broadcast_to(a2, batch + (m, k)).reshape(-1, m, k)
        bb = np.broadcast_to(b2, batch + (k, n)).reshape(-1, k, n)
    fast = _batched_exact(ctx, aa, bb) if ctx.gemm is None and ctx.trace is None and aa.shape[0] > 1 else None
    if fast is not None:
        ctx.gemms.append(GemmRecord(ctx.node.name, ctx.node.op_type, (m, k, n), aa.shape[0], "exact-batched", 0,
                                    None, gemm_ops(m, k, n, ctx.datapath) * aa.shape[0], m * k * n * aa.shape[0]))
        res = fast.reshape(batch + (m, n))
        return res[..., 0, :] if a.ndim == 1 else (res[..., 0] if b.ndim == 1 else res)
    out = np.empty((aa.shape[0], m, n), dtype=np.int64)
    n_over, method, first, macs, ops = 0, "", None, 0, OpCounts()
    for i in range(aa.shape[0]):
        ai, bi = np.ascontiguousarray(aa[i]), np.ascontiguousarray(bb[i])
        try:
            r = run(ctx, ai, bi)
        except AccumulatorOverflow as exc:
            raise AccumulatorOverflow(f"{ctx.where}, product {i}: {exc}", index=exc.index, k=exc.k,
                                      value=exc.value, bits=exc.bits) from None
        out[i] = r.values
        n_over += r.n_overflow
        method, macs, ops = r.method, macs + r.macs, ops + r.ops
        if first is None and r.first_overflow is not None:
            first = (i,) + tuple(r.first_overflow)
        if ctx.trace is not None:
            ctx.trace.append(KernelTrace("matmul", ctx.node.name, ctx.node.op_type, i,
                                         {"A": ai, "B": bi, "C": out[i].copy()}))
    ctx.gemms.append(GemmRecord(ctx.node.name, ctx.node.op_type, (m, k, n), aa.shape[0], method, n_over, first,
                                ops, macs))
    res = out.reshape(a2.shape[:-1] + (n,) if flat else batch + (m, n))
    if a.ndim == 1:
        res = res[..., 0, :]
    if b.ndim == 1:
        res = res[..., 0]
    return res


def _zp_rows(ctx: NodeContext, zp: np.ndarray | None, a: np.ndarray, what: str) -> np.ndarray:
    """A zero point of A (scalar, or one per row: shape (M,)) shaped to broadcast against A."""
    if zp is None:
        return np.zeros((), dtype=np.int64)
    zp = zp.astype(np.int64)
    if zp.size == 1:
        return zp.reshape(())
    if zp.ndim == 1 and a.ndim >= 2 and zp.shape[0] == a.shape[-2]:
        return zp[:, None]
    if zp.ndim == a.ndim and a.ndim >= 2 and zp.shape[-1] == 1:
        return zp
    raise ctx.shape_error(f"{what} of shape {zp.shape} is neither a scalar nor one per row of A {a.shape}")


def _zp_cols(ctx: NodeContext, zp: np.ndarray | None, b: np.ndarray, what: str) -> np.ndarray:
    """A zero point (or scale) of B: a scalar, or one per column (shape (N,), or B's batch + (1, N))."""
    if zp is None:
        return np.zeros((), dtype=np.int64)
    if zp.size == 1:
        return zp.reshape(())
    n = b.shape[-1]
    if zp.shape[-1] == n and (zp.ndim == 1 or (zp.ndim == b.ndim and zp.shape[-2] == 1)):
        return zp
    raise ctx.shape_error(f"{what} of shape {zp.shape} is neither a scalar nor one per column of B {b.shape}")


def _sub_zp(x: np.ndarray, zp: np.ndarray) -> np.ndarray:
    return np.subtract(x, zp, dtype=np.int64)  # one pass: each operand cast to int64 as it is read


def acc32(acc: np.ndarray) -> np.ndarray:
    """int64 accumulator registers as the int32 tensor ONNX Runtime returns."""
    return acc.astype(np.int32)  # the registers already hold int32 values (acc_bits=32)


def _axis_param(ctx: NodeContext, p: np.ndarray, x: np.ndarray, axis: int, what: str) -> np.ndarray:
    """A scale or zero point: scalar, or 1-D along ``axis`` of ``x`` (reshaped to broadcast)."""
    if p.size == 1 and p.ndim <= 1:
        return p.reshape(())
    if p.ndim != 1:
        raise ctx.shape_error(f"{what} of shape {p.shape}: blocked quantization (block_size) is not supported")
    ax = axis + x.ndim if axis < 0 else axis
    if not 0 <= ax < x.ndim or x.shape[ax] != p.shape[0]:
        raise ctx.shape_error(f"{what} has {p.shape[0]} entries, x of shape {x.shape} has "
                              f"{x.shape[ax] if 0 <= ax < x.ndim else '?'} along axis {axis}")
    shape = [1] * x.ndim
    shape[ax] = p.shape[0]
    return p.reshape(shape)


def quantize_linear(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, t: IntType, dtype: np.dtype) -> np.ndarray:
    """``sat(rint(float32(x) / float32(scale)) + zp)``, a NaN giving the type's minimum:
    :func:`intsim.quantize_linear` with ``nan="minimum"`` (see the module docstring)."""
    r = quantize_linear_op(np.asarray(x, dtype=F32), np.asarray(scale, dtype=F32), np.asarray(zp, dtype=np.int64),
                           t, nan="minimum")
    return r.values.astype(dtype)


@register("QuantizeLinear")
def _quantize_linear(ctx: NodeContext, inputs: list) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "x"), "x")
    s = ctx.need(inputs, 1, "y_scale")
    zp = inputs[2] if len(inputs) > 2 else None
    if ctx.attr("block_size", 0):
        raise ctx.shape_error("blocked quantization (block_size) is not supported")
    if zp is not None:
        dtype = zp.dtype
    else:
        od = ctx.attr("output_dtype", 0)
        from .load import onnx_dtype

        dtype = onnx_dtype(od) if od else np.dtype(np.uint8)
    t = qtype(ctx, dtype, "the output")
    axis = int(ctx.attr("axis", 1))
    s2 = _axis_param(ctx, float_input(ctx, s, "y_scale"), x, axis, "y_scale")
    z2 = _axis_param(ctx, zp, x, axis, "y_zero_point") if zp is not None else np.zeros((), np.int64)
    return [quantize_linear(x, s2, z2, t, dtype)]


@register("DequantizeLinear")
def _dequantize_linear(ctx: NodeContext, inputs: list) -> list:
    x = int_input(ctx, ctx.need(inputs, 0, "x"), "x")
    s = float_input(ctx, ctx.need(inputs, 1, "x_scale"), "x_scale")
    zp = inputs[2] if len(inputs) > 2 else None
    if ctx.attr("block_size", 0):
        raise ctx.shape_error("blocked quantization (block_size) is not supported")
    axis = int(ctx.attr("axis", 1))
    s2 = _axis_param(ctx, s, x, axis, "x_scale")
    z2 = _axis_param(ctx, zp, x, axis, "x_zero_point") if zp is not None else np.zeros((), np.int64)
    if s2.ndim == 0 and z2.ndim == 0:  # one pass (numba), the same arithmetic
        y = np.empty(x.shape, dtype=F32)
        _dequantize_kernel(np.ascontiguousarray(x).reshape(-1), np.int64(z2), F32(s2), y.reshape(-1))
        return [y]
    return [(x.astype(np.int64) - z2.astype(np.int64)).astype(F32) * s2.astype(F32)]


@njit(cache=True, nogil=True)
def _dequantize_kernel(x, zp, scale, out):  # pragma: no cover - numba
    """``out[i] = float32(x[i] - zp) * scale``: the difference exact in int64, rounded once to float32
    (to nearest even), one float32 multiply."""
    for i in range(x.size):
        out[i] = np.float32(np.int64(x[i]) - zp) * scale


def dynamic_quantize_params(x: np.ndarray) -> tuple[np.float32, int]:
    """ONNX Runtime's uint8 (scale, zero point) of a float32 tensor (see the module docstring)."""
    if x.size:
        lo = min(F32(np.min(x)), F32(0))
        hi = max(F32(np.max(x)), F32(0))
    else:
        lo = hi = F32(0)
    scale = F32(1) if hi == lo else F32(F32(hi - lo) / F32(255))
    izp = F32(F32(0) - F32(lo / scale))
    zp = int(np.rint(F32(max(F32(0), min(F32(255), izp)))))
    return scale, zp


@register("DynamicQuantizeLinear")
def _dynamic_quantize_linear(ctx: NodeContext, inputs: list) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "x"), "x")
    scale, zp = dynamic_quantize_params(x)
    y = quantize_linear(x, np.asarray(scale), np.asarray(zp), IntType(8, signed=False), np.dtype(np.uint8))
    return [y, np.asarray(scale, dtype=F32), np.asarray(zp, dtype=np.uint8)]


def _zp_params(ctx: NodeContext, a: np.ndarray, b: np.ndarray, azp: np.ndarray | None,
               bzp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The checked zero points of an integer GEMM node's A and B (shaped by :func:`_zp_rows` and
    :func:`_zp_cols`), kept in ``ctx.zero_points`` for a what-if GEMM when A's is per tensor."""
    int_input(ctx, a, "A")
    int_input(ctx, b, "B")
    if azp is not None and azp.dtype != a.dtype:
        raise ctx.dtype_error(f"a_zero_point has dtype {azp.dtype}, A has {a.dtype}")
    if bzp is not None and bzp.dtype != b.dtype:
        raise ctx.dtype_error(f"b_zero_point has dtype {bzp.dtype}, B has {b.dtype}")
    za, zb = _zp_rows(ctx, azp, a, "a_zero_point"), _zp_cols(ctx, bzp, b, "b_zero_point")
    if za.ndim == 0 and (zb.ndim == 0 or zb.ndim == 1):
        ctx.zero_points = (int(za), zb.astype(np.int64), a.dtype, b.dtype)
    return za, zb


@register("MatMulInteger")
def _matmul_integer(ctx: NodeContext, inputs: list) -> list:
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    zps = _zp_params(ctx, a, b, inputs[2] if len(inputs) > 2 else None, inputs[3] if len(inputs) > 3 else None)
    return [acc32(int_matmul(ctx, a, b, *zps))]


@register("QLinearMatMul")
def _qlinear_matmul(ctx: NodeContext, inputs: list) -> list:
    a, a_s, a_zp = (ctx.need(inputs, i, n) for i, n in enumerate(("a", "a_scale", "a_zero_point")))
    b, b_s, b_zp = (ctx.need(inputs, 3 + i, n) for i, n in enumerate(("b", "b_scale", "b_zero_point")))
    y_s, y_zp = ctx.need(inputs, 6, "y_scale"), ctx.need(inputs, 7, "y_zero_point")
    acc = int_matmul(ctx, a, b, *_zp_params(ctx, a, b, a_zp, b_zp))
    mult = (F32(scalar_input(ctx, a_s, "a_scale")) * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)) / \
        F32(scalar_input(ctx, y_s, "y_scale"))
    zp = int(scalar_input(ctx, y_zp, "y_zero_point"))
    t = qtype(ctx, y_zp.dtype, "y_zero_point")
    if mult.ndim and acc.ndim >= 1 and mult.shape[-1] != acc.shape[-1]:
        raise ctx.shape_error(f"b_scale has {mult.shape[-1]} entries, the output has {acc.shape[-1]} columns")
    scale = np.broadcast_to(mult.astype(np.float64), acc.shape[-mult.ndim:] if mult.ndim else ())
    r = requantize(acc, scale, mode="ort_fp32", out=t, zero_point=zp, in_type="int32")
    y = r.values.astype(y_zp.dtype)
    if ctx.trace is not None:  # one requantization per 2-D product, as the GEMM's trace
        conf = {"scale": scale.tolist() if scale.ndim else float(scale), "mode": "ort_fp32", "out": t.name,
                "in_type": "int32", "zero_point": zp}
        if b.ndim == 2 and acc.ndim > 2:  # a weight: one product (int_matmul), one requantization
            acc3 = acc.reshape(1, -1, acc.shape[-1])
        else:
            acc3 = acc.reshape(-1, *acc.shape[-2:]) if acc.ndim >= 2 else acc.reshape(1, 1, -1)
        y3 = y.reshape(acc3.shape)
        for i in range(acc3.shape[0]):
            ctx.trace.append(KernelTrace("requantize", ctx.node.name, ctx.node.op_type, i,
                                         {"x": acc3[i].astype(np.int64), "y": y3[i].copy()}, dict(conf)))
    return [y]


def _scale_bias(ctx: NodeContext, acc: np.ndarray, scale: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = acc32(acc).astype(F32) * scale.astype(F32)
    if bias is not None:
        y = y + float_input(ctx, bias, "bias")
    return y


@register("MatMulIntegerToFloat", domain=MS_DOMAIN)
def _matmul_integer_to_float(ctx: NodeContext, inputs: list) -> list:
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    a_s, b_s = ctx.need(inputs, 2, "a_scale"), ctx.need(inputs, 3, "b_scale")
    azp = inputs[4] if len(inputs) > 4 else None
    bzp = inputs[5] if len(inputs) > 5 else None
    bias = inputs[6] if len(inputs) > 6 else None
    acc = int_matmul(ctx, a, b, *_zp_params(ctx, a, b, azp, bzp))
    scale = F32(scalar_input(ctx, a_s, "a_scale")) * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)
    return [_scale_bias(ctx, acc, scale, bias)]


@register("DynamicQuantizeMatMul", domain=MS_DOMAIN)
def _dynamic_quantize_matmul(ctx: NodeContext, inputs: list) -> list:
    a = float_input(ctx, ctx.need(inputs, 0, "A"), "A")
    b, b_s = ctx.need(inputs, 1, "B"), ctx.need(inputs, 2, "b_scale")
    bzp = inputs[3] if len(inputs) > 3 else None
    bias = inputs[4] if len(inputs) > 4 else None
    a_scale, a_zp = dynamic_quantize_params(a)
    qa = quantize_linear(a, np.asarray(a_scale), np.asarray(a_zp), IntType(8, signed=False), np.dtype(np.uint8))
    acc = int_matmul(ctx, qa, b, *_zp_params(ctx, qa, b, np.asarray(a_zp, dtype=np.uint8), bzp))
    scale = a_scale * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)
    return [_scale_bias(ctx, acc, scale, bias)]


@njit(cache=True, nogil=True)
def _fma_kernel(a, b, c, out):  # pragma: no cover - numba
    for i in range(out.size):
        out[i] = fma32(a[i], b[i], c[i])


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` of float32 arrays (numpy broadcasting) with one rounding (to nearest even), as
    ``VFMADD*PS`` computes it: :func:`intsim.onnx.mlas.fma32` (``llvm.fma.f32``, exact on any CPU)
    element by element. Overflow gives +-inf, NaN propagates.

    Example:
        >>> e = np.float32(2.0 ** -13)
        >>> float(fma_f32(np.float32(1) + e, np.float32(1) - e, np.float32(-1)))  # exact -2**-26
        -1.4901161193847656e-08
    """
    xa, xb, xc = np.broadcast_arrays(np.asarray(a, dtype=F32), np.asarray(b, dtype=F32), np.asarray(c, dtype=F32))
    out = np.empty(xa.shape, dtype=F32)
    _fma_kernel(np.ascontiguousarray(xa).reshape(-1), np.ascontiguousarray(xb).reshape(-1),
                np.ascontiguousarray(xc).reshape(-1), out.reshape(-1))
    return out if out.ndim else out[()]


def _innermost_roles(a: np.ndarray, b: np.ndarray) -> str:
    """How ONNX Runtime's ``BroadcastLooper`` hands the two inputs to MLAS: ``"scalar0"`` when A
    holds one element, or repeats one element along the innermost non-trivial output axis (each span
    is then ``(scalar A, span of B)``), ``"scalar1"`` likewise for B, else ``"span"``."""
    if a.size == 1:
        return "scalar0"
    if b.size == 1:
        return "scalar1"
    out = np.broadcast_shapes(a.shape, b.shape)
    nd = len(out)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    for ax in range(nd - 1, -1, -1):
        if out[ax] == 1:
            continue
        if sa[ax] == 1:
            return "scalar0"
        if sb[ax] == 1:
            return "scalar1"
        return "span"
    return "span"


def qlinear_add_mlas(a: np.ndarray, sa: np.float32, za: int, b: np.ndarray, sb: np.float32, zb: int,
                     sc: np.float32, zc: int, scalar_b: bool) -> np.ndarray:
    """``MlasQLinearAdd{U8,S8}KernelAvx2`` (onnxruntime/core/mlas/lib/intrinsics/avx2/qladd_avx2.cpp) on
    the 8-bit ``a`` and ``b`` (``b`` one element when ``scalar_b``), every step in float32:

    * ``r_a = sa / sc``, ``r_b = sb / sc``;
    * ``fixed = float(zc) - fma(r_a, float(za), r_b * float(zb))`` (the compiler contracts the
      scalar expression ``r_a*za + r_b*zb`` into one fused multiply-add);
    * scalar ``b``: ``fixed = fma(float(b), r_b, fixed)``, ``v = fma(float(a), r_a, fixed)``;
      else ``v = fma(float(a), r_a, fma(float(b), r_b, fixed))``;
    * ``CVTPS2DQ`` (ties to even; out of int32 range: INT32_MIN), saturation to int16, then to the
      8-bit type. (The zero points enter through ``fixed``, so the result is already offset.)

    Example:
        >>> a = np.array([0, 100, 255], np.uint8)
        >>> qlinear_add_mlas(a, np.float32(0.1), 0, np.array([10], np.uint8), np.float32(0.1), 0,
        ...                  np.float32(0.2), 0, True).tolist()
        [5, 55, 132]
    """
    dtype = a.dtype
    t = _QTYPES[np.dtype(dtype)]
    r_a = F32(F32(sa) / F32(sc))
    r_b = F32(F32(sb) / F32(sc))
    fixed = F32(zc) - fma_f32(r_a, F32(za), F32(r_b * F32(zb)))
    if scalar_b:
        fixed = fma_f32(F32(b.reshape(-1)[0]), r_b, fixed)
        bb = np.zeros(1, dtype=dtype)
    else:
        bb = np.ascontiguousarray(np.broadcast_to(b, a.shape)).reshape(-1)
    out = np.empty(a.shape, dtype=dtype)
    _qladd_kernel(np.ascontiguousarray(a).reshape(-1), bb, r_a, r_b, F32(fixed), scalar_b, t.min, t.max,
                  out.reshape(-1))
    return out


@njit(cache=True, nogil=True, inline="always")
def _cvt_pack(v, lo, hi):  # pragma: no cover - numba
    """``CVTPS2DQ`` (ties to even; NaN or beyond int32: INT32_MIN), then saturation to int16
    (``PACKSSDW``) and to ``[lo, hi]`` (``PACKUSWB``/``PACKSSWB``)."""
    r = np.int64(np.rint(v)) if abs(v) < np.float32(2.0**31) else np.int64(-(2**31))
    return min(max(min(max(r, -32768), 32767), lo), hi)


@njit(cache=True, nogil=True)
def _qladd_kernel(a, b, r_a, r_b, fixed, scalar_b, lo, hi, out):  # pragma: no cover - numba
    """:func:`qlinear_add_mlas` per element: the fused multiply-adds, ``CVTPS2DQ`` (ties to even;
    NaN or beyond int32: INT32_MIN), int16 then 8-bit saturation."""
    for i in range(out.size):
        if scalar_b:
            v = fma32(np.float32(a[i]), r_a, fixed)
        else:
            v = fma32(np.float32(a[i]), r_a, fma32(np.float32(b[i]), r_b, fixed))
        out[i] = _cvt_pack(v, lo, hi)


def qlinear_mul_mlas(a: np.ndarray, sa: np.float32, za: int, b: np.ndarray, sb: np.float32, zb: int,
                     sc: np.float32, zc: int) -> np.ndarray:
    """``MlasQLinearMulKernel``, SSE2 path (onnxruntime/core/mlas/lib/qlmul.cpp) on the 8-bit ``a``
    and ``b`` (broadcast): the exact integer product ``p = (a - za) * (b - zb)`` (16-bit operands,
    32-bit product), then ``float32(p) * ((sa * sb) / sc) + float32(zc)`` as a separate multiply and
    add (no FMA in that kernel), ``CVTPS2DQ``, saturation to int16 and to the 8-bit type.

    Example:
        >>> qlinear_mul_mlas(np.array([10, 200], np.uint8), np.float32(0.1), 0, np.array([20, 20], np.uint8),
        ...                  np.float32(0.1), 0, np.float32(0.5), 3).tolist()
        [7, 83]
    """
    dtype = a.dtype
    t = _QTYPES[np.dtype(dtype)]
    ratio = F32(F32(F32(sa) * F32(sb)) / F32(sc))
    shape = np.broadcast_shapes(a.shape, b.shape)
    out = np.empty(shape, dtype=dtype)
    _qlmul_kernel(np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1),
                  np.ascontiguousarray(np.broadcast_to(b, shape)).reshape(-1), za, zb, ratio, F32(zc), t.min, t.max,
                  out.reshape(-1))
    return out


@njit(cache=True, nogil=True)
def _qlmul_kernel(a, b, za, zb, ratio, zc, lo, hi, out):  # pragma: no cover - numba
    """:func:`qlinear_mul_mlas` per element: the exact product, ``float32(p) * ratio`` then ``+ zc``
    (two roundings), ``CVTPS2DQ``, int16 then 8-bit saturation."""
    for i in range(out.size):
        p = (np.int64(a[i]) - za) * (np.int64(b[i]) - zb)
        v = np.float32(np.float32(p) * ratio) + zc
        out[i] = _cvt_pack(v, lo, hi)


def qlinear_add_raw(a: np.ndarray, sa: np.float32, za: int, b: np.ndarray, sb: np.float32, zb: int,
                    sc: np.float32, zc: int, t: IntType) -> np.ndarray:
    """``MlasQLinearAddKernelRawHelper`` (onnxruntime/core/mlas/lib/qladd.cpp; ONNX Runtime's 16-bit
    ``QLinearAdd``): ``v = (sa * float(a - za) + sb * float(b - zb)) / sc`` in float32, clamped to
    ``[t.min - zc, t.max - zc]``, then ``nearbyintf(v + float(zc))`` (ties to even)."""
    va = F32(sa) * (a.astype(np.int64) - za).astype(F32)
    vb = F32(sb) * (b.astype(np.int64) - zb).astype(F32)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (va + vb) / F32(sc)
        v = np.minimum(np.maximum(v, F32(t.min - zc)), F32(t.max - zc)).astype(F32)
        return np.rint(v + F32(zc)).astype(np.int64).astype(a.dtype)


def _qbinary(ctx: NodeContext, inputs: list, op: str) -> list:
    a, a_s = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "A_scale")
    a_zp = inputs[2] if len(inputs) > 2 else None
    b, b_s = ctx.need(inputs, 3, "B"), ctx.need(inputs, 4, "B_scale")
    b_zp = inputs[5] if len(inputs) > 5 else None
    c_s = ctx.need(inputs, 6, "C_scale")
    c_zp = inputs[7] if len(inputs) > 7 else None
    int_input(ctx, a, "A")
    int_input(ctx, b, "B")
    if a.dtype != b.dtype:
        raise ctx.dtype_error(f"A ({a.dtype}) and B ({b.dtype}) must have the same dtype")
    t = qtype(ctx, a.dtype, "A")
    if op == "mul" and t.bits != 8:
        raise ctx.dtype_error(f"QLinearMul runs on uint8 or int8 tensors (as ONNX Runtime), got {a.dtype}")
    if t.bits == 32:
        raise ctx.dtype_error(f"QLinearAdd runs on 8- and 16-bit tensors, got {a.dtype}")
    sa = F32(scalar_input(ctx, float_input(ctx, a_s, "A_scale"), "A_scale"))
    sb = F32(scalar_input(ctx, float_input(ctx, b_s, "B_scale"), "B_scale"))
    sc = F32(scalar_input(ctx, float_input(ctx, c_s, "C_scale"), "C_scale"))
    za = int(scalar_input(ctx, a_zp, "A_zero_point", 0))
    zb = int(scalar_input(ctx, b_zp, "B_zero_point", 0))
    zc = int(scalar_input(ctx, c_zp, "C_zero_point", 0))
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ctx.shape_error(f"A {a.shape} and B {b.shape} do not broadcast") from None
    if op == "mul":
        return [qlinear_mul_mlas(a, sa, za, b, sb, zb, sc, zc)]
    if t.bits == 16:
        return [qlinear_add_raw(a, sa, za, b, sb, zb, sc, zc, t)]
    roles = _innermost_roles(a, b)
    if roles == "scalar0":  # MLAS gets B as its vector operand and A as the scalar
        return [np.ascontiguousarray(np.broadcast_to(
            qlinear_add_mlas(b, sb, zb, a.reshape(-1)[:1], sa, za, sc, zc, True) if a.size == 1
            else _per_span(b, a, sb, zb, sa, za, sc, zc, shape), shape))]
    if roles == "scalar1":
        return [np.ascontiguousarray(np.broadcast_to(
            qlinear_add_mlas(a, sa, za, b.reshape(-1)[:1], sb, zb, sc, zc, True) if b.size == 1
            else _per_span(a, b, sa, za, sb, zb, sc, zc, shape), shape))]
    aa, bb = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    return [qlinear_add_mlas(aa, sa, za, bb, sb, zb, sc, zc, False)]


def _per_span(vec: np.ndarray, sca: np.ndarray, sv: np.float32, zv: int, ss: np.float32, zs: int,
              sc: np.float32, zc: int, shape: tuple[int, ...]) -> np.ndarray:
    """The scalar-operand path where the scalar changes from span to span (``sca`` repeats one
    element along the innermost output axis): every distinct scalar value gets its own ``fixed``."""
    vv = np.broadcast_to(vec, shape)
    ss_full = np.broadcast_to(sca, shape)
    out = np.empty(shape, dtype=vec.dtype)
    for val in np.unique(ss_full):
        sel = ss_full == val
        out[sel] = qlinear_add_mlas(vv[sel], sv, zv, np.asarray([val], dtype=vec.dtype), ss, zs, sc, zc, True)
    return out


@register("QLinearAdd", domain=MS_DOMAIN)
def _qlinear_add(ctx: NodeContext, inputs: list) -> list:
    return _qbinary(ctx, inputs, "add")


@register("QLinearMul", domain=MS_DOMAIN)
def _qlinear_mul(ctx: NodeContext, inputs: list) -> list:
    return _qbinary(ctx, inputs, "mul")


@register("QGemm", domain=MS_DOMAIN)
def _qgemm(ctx: NodeContext, inputs: list) -> list:
    a, a_s, a_zp = (ctx.need(inputs, i, n) for i, n in enumerate(("A", "a_scale", "a_zero_point")))
    b, b_s = ctx.need(inputs, 3, "B"), ctx.need(inputs, 4, "b_scale")
    b_zp = inputs[5] if len(inputs) > 5 else None
    c = inputs[6] if len(inputs) > 6 else None
    y_s = inputs[7] if len(inputs) > 7 else None
    y_zp = inputs[8] if len(inputs) > 8 else None
    if a.ndim != 2 or b.ndim != 2:
        raise ctx.shape_error(f"A {a.shape} and B {b.shape} must be 2-D")
    if ctx.attr("transA", 0):
        a = a.T
    if ctx.attr("transB", 0):
        b = b.T
    acc = int_matmul(ctx, a, b, *_zp_params(ctx, a, b, a_zp, b_zp))
    if c is not None:
        if c.dtype != np.int32:
            raise ctx.dtype_error(f"C must be int32, got {c.dtype}")
        try:
            acc = (acc + c.astype(np.int64)).astype(np.int32).astype(np.int64)  # int32 register, wraps
        except ValueError:
            raise ctx.shape_error(f"C {c.shape} does not broadcast to the output {acc.shape}") from None
    alpha = F32(ctx.attr("alpha", 1.0))
    scale = (alpha * F32(scalar_input(ctx, a_s, "a_scale"))) * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)
    if y_s is None:
        return [acc32(acc).astype(F32) * scale]
    zp = int(scalar_input(ctx, y_zp, "y_zero_point", 0))
    dtype = y_zp.dtype if y_zp is not None else np.dtype(np.uint8)
    mult = (scale / F32(scalar_input(ctx, y_s, "y_scale"))).astype(np.float64)
    r = requantize(acc, np.broadcast_to(mult, acc.shape[-mult.ndim:] if mult.ndim else ()), mode="ort_fp32",
                   out=qtype(ctx, dtype, "y_zero_point"), zero_point=zp, in_type="int32")
    return [r.values.astype(dtype)]


# -- lookup-table operators (com.microsoft) ---------------------------------------------------------------
#
# ONNX Runtime computes these 8-bit operators with a 256-entry table built once from the scales, in
# float32 (onnxruntime/contrib_ops/cpu/quantization/qlinear_lookup_table.cc, QlinearBuildLookupTable):
# entry ``i`` (the byte ``i``, read as the input's type) is ``QuantizeLinear(f(x_scale * (x - x_zp)))``;
# the output is ``table[x]`` with ``x`` read as a byte.


def _byte_values(dtype: np.dtype) -> np.ndarray:
    """The 256 values of an 8-bit type in byte order (int8: 0..127, -128..-1), int64."""
    return np.arange(256, dtype=np.uint8).view(dtype).astype(np.int64)


def lookup_table(x_scale: np.float32, x_zp: int, y_scale: np.float32, y_zp: int, dtype: np.dtype,
                 fn) -> np.ndarray:
    """The 256-entry table of an 8-bit lookup-table operator (``dtype`` uint8 or int8), indexed by the
    input byte: ``QuantizeLinear(fn(float32(x_scale) * float32(x - x_zp)), y_scale, y_zp)`` where
    ``fn`` maps a float32 array to a float32 array (``QlinearBuildLookupTable``).

    Example:
        >>> t = lookup_table(np.float32(0.5), 0, np.float32(0.5), 0, np.dtype(np.uint8), lambda v: v)
        >>> bool((t == np.arange(256)).all())
        True
    """
    dt = np.dtype(dtype)
    deq = F32(x_scale) * (_byte_values(dt) - int(x_zp)).astype(F32)
    out = np.asarray(fn(deq), dtype=F32)
    return quantize_linear(out, np.asarray(F32(y_scale)), np.asarray(int(y_zp)), _QTYPES[dt], dt)


def _apply_table(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[x.view(np.uint8)]


def _lut_params(ctx: NodeContext, inputs: list, x: np.ndarray, i_scale: int, i_zp: int,
                what: str) -> tuple[np.float32, int]:
    s = F32(scalar_input(ctx, float_input(ctx, ctx.need(inputs, i_scale, f"{what}_scale"), f"{what}_scale"),
                    f"{what}_scale"))
    zp = inputs[i_zp] if len(inputs) > i_zp else None
    if zp is not None and zp.dtype != x.dtype:
        raise ctx.dtype_error(f"{what}_zero_point has dtype {zp.dtype}, the tensor has {x.dtype}")
    return s, int(scalar_input(ctx, zp, f"{what}_zero_point", 0))


def _byte_input(ctx: NodeContext, x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype not in (np.dtype(np.uint8), np.dtype(np.int8)):
        raise ctx.dtype_error(f"{what} must be uint8 or int8, got {x.dtype}")
    return x


def _unary_lut(ctx: NodeContext, inputs: list, fn) -> list:
    x = _byte_input(ctx, ctx.need(inputs, 0, "X"), "X")
    xs, xz = _lut_params(ctx, inputs, x, 1, 2, "X")
    ys, yz = _lut_params(ctx, inputs, x, 3, 4, "Y")
    return [_apply_table(x, lookup_table(xs, xz, ys, yz, x.dtype, fn))]


@register("QLinearLeakyRelu", domain=MS_DOMAIN)
def _qlinear_leaky_relu(ctx: NodeContext, inputs: list) -> list:
    """``v >= 0 ? v : alpha * v`` in float32 per table entry (``alpha`` default 0.01)."""
    alpha = F32(ctx.attr("alpha", 0.01))
    return _unary_lut(ctx, inputs, lambda v: np.where(v >= 0, v, alpha * v).astype(F32))


@register("QLinearSigmoid", domain=MS_DOMAIN)
def _qlinear_sigmoid(ctx: NodeContext, inputs: list) -> list:
    """The table holds ``MlasComputeLogistic`` of the 256 dequantized values (intsim.onnx.mlas.logistic)."""
    from .mlas import logistic

    return _unary_lut(ctx, inputs, lambda v: logistic(np.ascontiguousarray(v, dtype=F32)))


def _same_params(s_a: np.float32, z_a: int, s_b: np.float32, z_b: int) -> bool:
    return bool(F32(s_a) == F32(s_b)) and z_a == z_b


@register("QLinearConcat", domain=MS_DOMAIN)
def _qlinear_concat(ctx: NodeContext, inputs: list) -> list:
    """Inputs ``Y_scale, Y_zero_point, (X, X_scale, X_zero_point)...``: each input is copied when its
    scale and zero point equal the output's, else mapped through the identity table
    (``QuantizeLinear(x_scale * (x - x_zp), Y_scale, Y_zp)``); then concatenated along ``axis``."""
    ys = F32(scalar_input(ctx, float_input(ctx, ctx.need(inputs, 0, "Y_scale"), "Y_scale"), "Y_scale"))
    yzp = ctx.need(inputs, 1, "Y_zero_point")
    _byte_input(ctx, yzp, "Y_zero_point")
    yz = int(scalar_input(ctx, yzp, "Y_zero_point"))
    rest = inputs[2:]
    if not rest or len(rest) % 3:
        raise ctx.shape_error(f"expects (tensor, scale, zero point) triples after Y_scale, Y_zero_point; got "
                              f"{len(rest)} more inputs")
    parts = []
    for j in range(0, len(rest), 3):
        x = ctx.need(rest, j, f"X{j // 3}")
        if x.dtype != yzp.dtype:
            raise ctx.dtype_error(f"input {j // 3} has dtype {x.dtype}, Y_zero_point has {yzp.dtype}")
        xs = F32(scalar_input(ctx, float_input(ctx, ctx.need(rest, j + 1, "X_scale"), "X_scale"), "X_scale"))
        xz = int(scalar_input(ctx, ctx.need(rest, j + 2, "X_zero_point"), "X_zero_point"))
        parts.append(x if _same_params(xs, xz, ys, yz) else
                     _apply_table(x, lookup_table(xs, xz, ys, yz, x.dtype, lambda v: v)))
    try:
        return [np.concatenate(parts, axis=int(ctx.attr("axis")))]
    except (ValueError, TypeError, np.exceptions.AxisError):
        raise ctx.shape_error(f"cannot concatenate shapes {[p.shape for p in parts]} along axis "
                              f"{ctx.attr('axis')}") from None


@register("QLinearWhere", domain=MS_DOMAIN)
def _qlinear_where(ctx: NodeContext, inputs: list) -> list:
    """``where(condition, tx[X], ty[Y])``, ``tx``/``ty`` the identity tables from X's and Y's
    parameters to Z's (a plain copy when they are equal), broadcast as ``Where``."""
    cond = ctx.need(inputs, 0, "condition")
    if cond.dtype != np.bool_:
        raise ctx.dtype_error(f"condition must be bool, got {cond.dtype}")
    x = _byte_input(ctx, ctx.need(inputs, 1, "X"), "X")
    y = _byte_input(ctx, ctx.need(inputs, 4, "Y"), "Y")
    zs, zz = _lut_params(ctx, inputs, x, 7, 8, "Z")
    mapped = []
    for v, i, what in ((x, 2, "X"), (y, 5, "Y")):
        if v.dtype != x.dtype:
            raise ctx.dtype_error(f"X ({x.dtype}) and Y ({y.dtype}) must have the same dtype")
        s, z = _lut_params(ctx, inputs, v, i, i + 1, what)
        mapped.append(v if _same_params(s, z, zs, zz) else _apply_table(v, lookup_table(s, z, zs, zz, v.dtype,
                                                                                        lambda t: t)))
    try:
        return [np.where(cond, mapped[0], mapped[1]).astype(x.dtype)]
    except ValueError:
        raise ctx.shape_error(f"condition {cond.shape}, X {x.shape} and Y {y.shape} do not broadcast") from None


# -- QLinearSoftmax (com.microsoft) -----------------------------------------------------------------------

_FLT_MAX = F32(np.finfo(np.float32).max)


def _libm() -> object:
    """The C library's math functions (``logf``, ``exp``): the ones ONNX Runtime's kernels call."""
    import ctypes
    import ctypes.util

    global _LIBM
    if _LIBM is None:
        name = ctypes.util.find_library("m")
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            from ..core.errors import ConfigError

            raise ConfigError(f"QLinearSoftmax needs the C math library (libm) to build its exp table; "
                              f"ctypes cannot load {name!r}") from None
        lib.logf.restype, lib.logf.argtypes = ctypes.c_float, [ctypes.c_float]
        lib.exp.restype, lib.exp.argtypes = ctypes.c_double, [ctypes.c_double]
        _LIBM = lib
    return _LIBM


_LIBM = None


def softmax_exp_table(x_scale: np.float32, reduce_len: int, signed: bool) -> np.ndarray:
    """QLinearSoftmax's 256 float32 ``exp`` values, indexed by byte, as ONNX Runtime builds them
    (``QlinearBuildLookupTableUint32`` of onnxruntime/contrib_ops/cpu/quantization/qlinear_softmax.cc;
    its element type ``EXP_OUT_DTYPE`` is float):

    * ``shift = logf(FLT_MAX / float32(reduce_len))``: a float32 division and the C library's
      float ``logf`` (what the x86-64 Linux build of ONNX Runtime 1.32 calls), widened to double;
    * ``shift = max(0, shift - 5) / double(x_scale)`` in double;
    * entry ``i`` in 0..255: ``float32(exp(((i - 255) + shift) * double(x_scale)))`` with the C
      library's double ``exp``, stored at byte ``i`` (uint8) or ``uint8(i - 128)`` (int8).

    The largest entry, ``exp(max(0, ln(FLT_MAX / n) - 5))``, keeps a sum of ``n`` of them below
    ``FLT_MAX``.

    Example:
        >>> t = softmax_exp_table(np.float32(0.1), 8, False)
        >>> t.dtype, bool(t[255] > t[254] > 0)
        (dtype('float32'), True)
    """
    lib = _libm()
    shift = float(lib.logf(float(F32(_FLT_MAX / F32(reduce_len)))))
    xs = float(F32(x_scale))
    shift = (shift - 5.0 if shift - 5.0 > 0.0 else 0.0) / xs
    table = np.empty(256, dtype=F32)
    for i in range(256):
        v = F32(lib.exp(((float(i) - 255.0) + shift) * xs))
        table[(i - 128) & 255 if signed else i] = v
    return table


def qlinear_softmax_rows(x: np.ndarray, table: np.ndarray, y_scale: np.float32, y_zp: int) -> np.ndarray:
    """ONNX Runtime's ``QlinearSoftmaxCPU`` on every row of the 2-D uint8 or int8 array ``x``:

    * the row's maximum ``m``; each element's exp ``e = table[x + 255 - m]`` (uint8) or
      ``table[uint8(x + 127 - m)]`` (int8): the table shifted so that the maximum reads its last entry;
    * ``s``: the float32 sum of the row's ``e`` in index order (one rounding per addition);
    * ``q = nearbyintf(e * Y / s)`` in float32 (ties to even), ``Y = floorf(1.0f / y_scale)``;
    * ``q + y_zp`` saturated to the output type, whatever the size of ``q`` (a probability of 1 with
      ``y_scale = 1/256``, ``y_zp = -128`` gives ``256 - 128 = 128``, stored as 127; a row of one
      element overflows ``e * Y`` to +inf: 255 or 127). This saturation is what the ONNX Runtime
      1.32 binary does (measured against it for every ``y_zp``, ``y_scale`` down to 1e-12 and rows of
      1 to 300 elements); the kernel source of some versions (``vq > 255 ? 255 : int8(vq)``) would
      wrap 128 to -128 instead.

    Example:
        >>> t = softmax_exp_table(np.float32(0.1), 2, False)
        >>> qlinear_softmax_rows(np.array([[10, 10]], np.uint8), t, np.float32(1 / 256), 0).tolist()
        [[128, 128]]
    """
    signed = x.dtype == np.int8
    xi = x.astype(np.int64)
    m = xi.max(axis=1, keepdims=True)
    idx = (xi + (127 - m)) & 255 if signed else xi + (255 - m)
    e = table[idx]
    s = np.zeros(x.shape[0], dtype=F32)
    for j in range(x.shape[1]):  # sequential float32 sum, as the kernel's loop
        s = s + e[:, j]
    ys = F32(np.floor(F32(1) / F32(y_scale)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.rint((e * ys) / s[:, None]).astype(np.float64)  # float32 values, may be huge or +inf
    lo, hi = (-128, 127) if signed else (0, 255)
    v = np.clip(q + int(y_zp), lo, hi)
    return v.astype(np.int8 if signed else np.uint8)


@register("QLinearSoftmax", domain=MS_DOMAIN)
def _qlinear_softmax(ctx: NodeContext, inputs: list) -> list:
    """See :func:`qlinear_softmax_rows`. Attribute ``opset`` (required, the opset of the Softmax it
    replaced): below 13 the rows are the input coerced to 2-D at ``axis`` (default 1), from 13 on
    the softmax runs along ``axis`` (default -1)."""
    from ..core.errors import ConfigError

    x = _byte_input(ctx, ctx.need(inputs, 0, "X"), "X")
    xs, _ = _lut_params(ctx, inputs, x, 1, 2, "X")
    ys, yz = _lut_params(ctx, inputs, x, 3, 4, "Y")
    if "opset" not in ctx.attrs:
        raise ConfigError(f"{ctx.where}: the attribute 'opset' is required (ONNX Runtime refuses the node too)")
    opset = int(ctx.attr("opset"))
    if not (np.isfinite(xs) and xs > 0):
        raise ConfigError(f"{ctx.where}: X_scale must be a positive finite float32, got {xs}")
    if not (np.isfinite(ys) and ys > 0):
        raise ConfigError(f"{ctx.where}: Y_scale must be a positive finite float32, got {ys}")
    if x.ndim == 0 or x.size == 0:
        return [x.copy()]
    axis = int(ctx.attr("axis", 1 if opset < 13 else -1))
    if not -x.ndim <= axis < x.ndim:
        raise ctx.shape_error(f"axis {axis} is out of range for an input of rank {x.ndim}")
    ax = axis % x.ndim
    if opset < 13:
        x2 = x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)
        table = softmax_exp_table(xs, x2.shape[1], x.dtype == np.int8)
        return [qlinear_softmax_rows(x2, table, ys, yz).reshape(x.shape)]
    xm = np.moveaxis(x, ax, -1)
    table = softmax_exp_table(xs, xm.shape[-1], x.dtype == np.int8)
    y = qlinear_softmax_rows(np.ascontiguousarray(xm).reshape(-1, xm.shape[-1]), table, ys, yz)
    return [np.moveaxis(y.reshape(xm.shape), -1, ax)]
