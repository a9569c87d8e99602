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
(``onnxruntime/core/mlas/lib/quantize.cpp``, ``qladd.cpp``, ``QLinearBinaryOpKernelAvx2.S``,
``onnxruntime/core/util/qmath.h``, ``onnxruntime/contrib_ops/cpu/quantization/``):

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
    ``c = rint(((a - a_zp) * a_scale + (b - b_zp) * b_scale) / c_scale)``, float32 throughout,
    clamped to the output range less ``c_zp``, then ``+ c_zp`` (the AVX2 kernel's order).
``QLinearMul`` (com.microsoft)
    ``c = rint(((a - a_zp) * a_scale) * ((b - b_zp) * b_scale) / c_scale) + c_zp``, likewise.
``QGemm`` (com.microsoft)
    ``alpha`` times the int32 GEMM of the (optionally transposed) zero-point-free operands plus
    the int32 bias ``C``; with ``y_scale`` requantized as ``QLinearMatMul`` with the multiplier
    ``alpha * a_scale * b_scale / y_scale``, else ``float32(acc) * (alpha * a_scale * b_scale)``.
"""

from __future__ import annotations

import numpy as np

from ..core.inttype import IntType
from ..hw.gemm import matmul
from ..quant.requant import requantize
from .registry import MS_DOMAIN, GemmRecord, NodeContext, register

__all__ = ["int_matmul", "quantize_linear", "dynamic_quantize_params"]

F32 = np.float32
_QTYPES = {np.dtype(np.uint8): IntType(8, signed=False), np.dtype(np.int8): IntType(8),
           np.dtype(np.uint16): IntType(16, signed=False), np.dtype(np.int16): IntType(16),
           np.dtype(np.int32): IntType(32)}


def _qtype(ctx: NodeContext, dt: np.dtype, what: str) -> IntType:
    t = _QTYPES.get(np.dtype(dt))
    if t is None:
        raise ctx.dtype_error(f"{what} has dtype {dt}; supported: {', '.join(str(d) for d in _QTYPES)}")
    return t


def _int_input(ctx: NodeContext, x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype.kind not in "iu":
        raise ctx.dtype_error(f"{what} must be an integer tensor, got {x.dtype}")
    return x


def _float_input(ctx: NodeContext, x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype != np.float32:
        raise ctx.dtype_error(f"{what} must be a float32 tensor, got {x.dtype} (intsim runs float32 models)")
    return x


def _scalar(ctx: NodeContext, x: np.ndarray | None, what: str, default: float | int | None = None) -> np.ndarray:
    if x is None:
        if default is None:
            raise ctx.shape_error(f"{what} is required")
        return np.asarray(default)
    if x.size != 1:
        raise ctx.shape_error(f"{what} must be a scalar (or a 1-element tensor), got shape {x.shape}")
    return x.reshape(())


def int_matmul(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` (numpy ``matmul`` shapes: 1-D operands, broadcast batch dimensions) of integer
    arrays on ``ctx.datapath``, one :func:`intsim.matmul` per 2-D product; int64 registers."""
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
    aa = np.broadcast_to(a2, batch + (m, k)).reshape(-1, m, k)
    bb = np.broadcast_to(b2, batch + (k, n)).reshape(-1, k, n)
    out = np.empty((aa.shape[0], m, n), dtype=np.int64)
    n_over, method = 0, ""
    for i in range(aa.shape[0]):
        r = matmul(np.ascontiguousarray(aa[i]), np.ascontiguousarray(bb[i]), ctx.datapath)
        out[i] = r.values
        n_over += int(r.n_overflow)
        method = r.method
    ctx.gemms.append(GemmRecord(ctx.node.name, ctx.node.op_type, (m, k, n), aa.shape[0], method, n_over))
    res = out.reshape(batch + (m, n))
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
    return x.astype(np.int64) - zp.astype(np.int64)


def _acc32(acc: np.ndarray) -> np.ndarray:
    return acc.astype(np.int32)  # the registers already hold int32 values (acc_bits=32)


def _saturate_rint(v: np.ndarray, zp: np.ndarray | int, t: IntType, dtype: np.dtype) -> np.ndarray:
    """``sat(rint(v) + zp)`` of float32 values, NaN -> the type's minimum (MLAS's MAXPS clamp)."""
    zp64 = np.asarray(zp, dtype=np.int64)
    lo = (t.min - zp64).astype(np.float32)
    hi = (t.max - zp64).astype(np.float32)
    with np.errstate(invalid="ignore"):
        c = np.where(np.isnan(v), lo, np.minimum(np.maximum(v, lo), hi))
    r = np.rint(c).astype(np.int64) + zp64
    return np.clip(r, t.min, t.max).astype(dtype)


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
    """``sat(rint(float32(x) / float32(scale)) + zp)`` (see the module docstring)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = x.astype(F32) / scale.astype(F32)
    return _saturate_rint(v, zp, t, dtype)


@register("QuantizeLinear")
def _quantize_linear(ctx: NodeContext, inputs: list) -> list:
    x = _float_input(ctx, ctx.need(inputs, 0, "x"), "x")
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
    t = _qtype(ctx, dtype, "the output")
    axis = int(ctx.attr("axis", 1))
    s2 = _axis_param(ctx, _float_input(ctx, s, "y_scale"), x, axis, "y_scale")
    z2 = _axis_param(ctx, zp, x, axis, "y_zero_point") if zp is not None else np.zeros((), np.int64)
    return [quantize_linear(x, s2, z2, t, dtype)]


@register("DequantizeLinear")
def _dequantize_linear(ctx: NodeContext, inputs: list) -> list:
    x = _int_input(ctx, ctx.need(inputs, 0, "x"), "x")
    s = _float_input(ctx, ctx.need(inputs, 1, "x_scale"), "x_scale")
    zp = inputs[2] if len(inputs) > 2 else None
    if ctx.attr("block_size", 0):
        raise ctx.shape_error("blocked quantization (block_size) is not supported")
    axis = int(ctx.attr("axis", 1))
    s2 = _axis_param(ctx, s, x, axis, "x_scale")
    z2 = _axis_param(ctx, zp, x, axis, "x_zero_point") if zp is not None else np.zeros((), np.int64)
    return [(x.astype(np.int64) - z2.astype(np.int64)).astype(F32) * s2.astype(F32)]


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
    x = _float_input(ctx, ctx.need(inputs, 0, "x"), "x")
    scale, zp = dynamic_quantize_params(x)
    y = quantize_linear(x, np.asarray(scale), np.asarray(zp), IntType(8, signed=False), np.dtype(np.uint8))
    return [y, np.asarray(scale, dtype=F32), np.asarray(zp, dtype=np.uint8)]


def _zp_free(ctx: NodeContext, a: np.ndarray, b: np.ndarray, azp: np.ndarray | None,
             bzp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    _int_input(ctx, a, "A")
    _int_input(ctx, b, "B")
    if azp is not None and azp.dtype != a.dtype:
        raise ctx.dtype_error(f"a_zero_point has dtype {azp.dtype}, A has {a.dtype}")
    if bzp is not None and bzp.dtype != b.dtype:
        raise ctx.dtype_error(f"b_zero_point has dtype {bzp.dtype}, B has {b.dtype}")
    return (_sub_zp(a, _zp_rows(ctx, azp, a, "a_zero_point")),
            _sub_zp(b, _zp_cols(ctx, bzp, b, "b_zero_point")))


@register("MatMulInteger")
def _matmul_integer(ctx: NodeContext, inputs: list) -> list:
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    ga, gb = _zp_free(ctx, a, b, inputs[2] if len(inputs) > 2 else None, inputs[3] if len(inputs) > 3 else None)
    return [_acc32(int_matmul(ctx, ga, gb))]


@register("QLinearMatMul")
def _qlinear_matmul(ctx: NodeContext, inputs: list) -> list:
    a, a_s, a_zp = (ctx.need(inputs, i, n) for i, n in enumerate(("a", "a_scale", "a_zero_point")))
    b, b_s, b_zp = (ctx.need(inputs, 3 + i, n) for i, n in enumerate(("b", "b_scale", "b_zero_point")))
    y_s, y_zp = ctx.need(inputs, 6, "y_scale"), ctx.need(inputs, 7, "y_zero_point")
    ga, gb = _zp_free(ctx, a, b, a_zp, b_zp)
    acc = int_matmul(ctx, ga, gb)
    mult = (F32(_scalar(ctx, a_s, "a_scale")) * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)) / \
        F32(_scalar(ctx, y_s, "y_scale"))
    zp = int(_scalar(ctx, y_zp, "y_zero_point"))
    t = _qtype(ctx, y_zp.dtype, "y_zero_point")
    if mult.ndim and acc.ndim >= 1 and mult.shape[-1] != acc.shape[-1]:
        raise ctx.shape_error(f"b_scale has {mult.shape[-1]} entries, the output has {acc.shape[-1]} columns")
    r = requantize(acc, np.broadcast_to(mult.astype(np.float64), acc.shape[-mult.ndim:] if mult.ndim else ()),
                   mode="ort_fp32", out=t, zero_point=zp, in_type="int32")
    return [r.values.astype(y_zp.dtype)]


def _scale_bias(ctx: NodeContext, acc: np.ndarray, scale: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = _acc32(acc).astype(F32) * scale.astype(F32)
    if bias is not None:
        y = y + _float_input(ctx, bias, "bias")
    return y


@register("MatMulIntegerToFloat", domain=MS_DOMAIN)
def _matmul_integer_to_float(ctx: NodeContext, inputs: list) -> list:
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    a_s, b_s = ctx.need(inputs, 2, "a_scale"), ctx.need(inputs, 3, "b_scale")
    azp = inputs[4] if len(inputs) > 4 else None
    bzp = inputs[5] if len(inputs) > 5 else None
    bias = inputs[6] if len(inputs) > 6 else None
    ga, gb = _zp_free(ctx, a, b, azp, bzp)
    acc = int_matmul(ctx, ga, gb)
    scale = F32(_scalar(ctx, a_s, "a_scale")) * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)
    return [_scale_bias(ctx, acc, scale, bias)]


@register("DynamicQuantizeMatMul", domain=MS_DOMAIN)
def _dynamic_quantize_matmul(ctx: NodeContext, inputs: list) -> list:
    a = _float_input(ctx, ctx.need(inputs, 0, "A"), "A")
    b, b_s = ctx.need(inputs, 1, "B"), ctx.need(inputs, 2, "b_scale")
    bzp = inputs[3] if len(inputs) > 3 else None
    bias = inputs[4] if len(inputs) > 4 else None
    a_scale, a_zp = dynamic_quantize_params(a)
    qa = quantize_linear(a, np.asarray(a_scale), np.asarray(a_zp), IntType(8, signed=False), np.dtype(np.uint8))
    ga, gb = _zp_free(ctx, qa, b, np.asarray(a_zp, dtype=np.uint8), bzp)
    acc = int_matmul(ctx, ga, gb)
    scale = a_scale * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)
    return [_scale_bias(ctx, acc, scale, bias)]


def _qbinary(ctx: NodeContext, inputs: list, op: str) -> list:
    a, a_s = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "A_scale")
    a_zp = inputs[2] if len(inputs) > 2 else None
    b, b_s = ctx.need(inputs, 3, "B"), ctx.need(inputs, 4, "B_scale")
    b_zp = inputs[5] if len(inputs) > 5 else None
    c_s = ctx.need(inputs, 6, "C_scale")
    c_zp = inputs[7] if len(inputs) > 7 else None
    _int_input(ctx, a, "A")
    _int_input(ctx, b, "B")
    if a.dtype != b.dtype:
        raise ctx.dtype_error(f"A ({a.dtype}) and B ({b.dtype}) must have the same dtype")
    t = _qtype(ctx, a.dtype, "A")
    fa = _sub_zp(a, _scalar(ctx, a_zp, "A_zero_point", 0)).astype(F32) * F32(_scalar(ctx, a_s, "A_scale"))
    fb = _sub_zp(b, _scalar(ctx, b_zp, "B_zero_point", 0)).astype(F32) * F32(_scalar(ctx, b_s, "B_scale"))
    try:
        v = fa + fb if op == "add" else fa * fb
    except ValueError:
        raise ctx.shape_error(f"A {a.shape} and B {b.shape} do not broadcast") from None
    with np.errstate(over="ignore"):
        v = v / F32(_scalar(ctx, c_s, "C_scale"))
    return [_saturate_rint(v, int(_scalar(ctx, c_zp, "C_zero_point", 0)), t, a.dtype)]


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
    ga, gb = _zp_free(ctx, a, b, a_zp, b_zp)
    acc = int_matmul(ctx, ga, gb)
    if c is not None:
        if c.dtype != np.int32:
            raise ctx.dtype_error(f"C must be int32, got {c.dtype}")
        try:
            acc = (acc + c.astype(np.int64)).astype(np.int32).astype(np.int64)  # int32 register, wraps
        except ValueError:
            raise ctx.shape_error(f"C {c.shape} does not broadcast to the output {acc.shape}") from None
    alpha = F32(ctx.attr("alpha", 1.0))
    scale = (alpha * F32(_scalar(ctx, a_s, "a_scale"))) * _zp_cols(ctx, b_s, b, "b_scale").astype(F32)
    if y_s is None:
        return [_acc32(acc).astype(F32) * scale]
    zp = int(_scalar(ctx, y_zp, "y_zero_point", 0))
    dtype = y_zp.dtype if y_zp is not None else np.dtype(np.uint8)
    mult = (scale / F32(_scalar(ctx, y_s, "y_scale"))).astype(np.float64)
    r = requantize(acc, np.broadcast_to(mult, acc.shape[-mult.ndim:] if mult.ndim else ()), mode="ort_fp32",
                   out=_qtype(ctx, dtype, "y_zero_point"), zero_point=zp, in_type="int32")
    return [r.values.astype(dtype)]
