"""Convolution and max pooling, as ONNX Runtime's CPU kernels compute them.

``ConvInteger``
    the exact integer convolution of the zero-point-free operands ``(x - x_zero_point)`` and
    ``(w - w_zero_point)`` (per tensor, or one per output channel), padding with ``x_zero_point``
    (a padded input contributes 0), in an int32 register that wraps: the GEMM of every group runs on
    :func:`~intsim.onnx.qops.int_matmul` (the node's datapath, its what-if replacement and its
    trace), its rows the output positions and its columns the group's output channels, ``K`` the
    group's input channels times the kernel's size.
``QLinearConv`` (ONNX and com.microsoft, whose ``channels_last=1`` reads and writes NHWC)
    the same integer convolution, then ONNX Runtime's ``MlasRequantizeOutput``: the int32 bias
    added to the int32 register (wrapping), ``float32(acc) * scale_c`` with
    ``scale_c = (x_scale * w_scale_c) / y_scale`` in float32 in that order
    (``onnxruntime/core/providers/cpu/quantization/qlinearconv.cc``), rounded half to even, plus
    ``y_zero_point``, saturated (:func:`intsim.requantize` with ``mode="ort_fp32"``). ONNX Runtime's
    symmetric kernels (``MlasConvSym``, int8 weights with zero point 0) fuse the same arithmetic.
``Conv`` (float32)
    MLAS's float convolution (``onnxruntime/core/mlas/lib/convolve.cpp``, ``MlasConvPrepare`` and
    ``MlasConv`` with ONNX Runtime's intra-op thread count :data:`~intsim.onnx.sgemm.SGEMM_THREADS`
    = 1): per image and group the filter matrix [M/group, K] times the im2col matrix [K, output
    positions] (K = input channels per group x kernel size, channel-major, padding read as +0) on
    :mod:`intsim.onnx.sgemm`'s SGEMM: a pointwise kernel (1x..., strides 1, no padding) multiplies
    the input directly; more filters than output positions, one GEMM of the whole im2col matrix;
    otherwise ``MlasConvOperation``'s slices (``StrideN`` x ``StrideK`` from 128 x 128, the first K
    slice into a cleared output, the later ones added to it), then the bias added (one float32 add).
    The special cases MLAS multiplies without im2col for one input channel per group (a kernel as
    wide or as high as the input) are refused (ShapeError).
``MaxPool`` (float32, int8, uint8) and ``NhwcMaxPool`` (com.microsoft, 8-bit NHWC)
    int8/uint8, or float32 with dilations: ONNX Runtime's own loops, the maximum of each window's
    valid (not padded) inputs from the type's lowest value, each step ``if v > m: m = v``; float32
    without dilations: MLAS (below). A float NaN input is refused (whether ONNX Runtime keeps it
    depends on the kernel MLAS picks).
    ``auto_pad`` SAME pads as if the dilation were 1, as ONNX Runtime's ``PoolAttributes`` does.
    The ``Indices`` output is not supported.
``AveragePool`` (opset 19 and later; before, with both ``ceil_mode`` and ``count_include_pad``)
    ONNX Runtime's own loops (``AveragePoolV19``): a row-major float32 sum from +0 over the valid
    inputs of each (dilated) window, divided by their count or, with ``count_include_pad``, by the
    window's taps up to the end of the padding.
``AveragePool`` (otherwise), ``GlobalAveragePool``, ``GlobalMaxPool``, ``MaxPool`` (float32, no dilations)
    MLAS's ``MlasPool`` (``onnxruntime/core/mlas/lib/pooling.cpp``), whose summation order depends on
    the kernel it picks: a kernel as large as the image with no padding and strides 1 takes the
    global kernel (four float32 lanes over the flattened image, then ``(l0 + l2) + (l1 + l3)``, then
    the leftover elements one by one, divided by the size); 2- and 3-D pools with a last stride of
    1 or 2 and kernels of at most 32 take the vector kernels (each input column summed over the
    window's rows, from its first row in 2-D and from the initial value in 3-D, then the column sums
    of the window added left to right, padding columns holding the initial value; ``count_include_pad=0``
    divides by ``max(valid columns x valid rows, 1)``); the rest the generic kernels (a row-major
    fold from the initial value over the inputs inside the image). Initial values: +0 (average),
    ``-FLT_MAX`` (maximum); maxima as ``MAXPS`` takes them.
``QLinearGlobalAveragePool`` (com.microsoft; ``channels_last``)
    MLAS's ``MlasQLinearGlobalAveragePool``: the exact int32 sum of each channel's image plus
    ``-x_zero_point * size``, times ``scale = x_scale / (y_scale * float32(size))`` (float32, in that
    order), rounded half to even, plus ``y_zero_point``, saturated (:func:`intsim.requantize`,
    ``mode="ort_fp32"``); ONNX Runtime's range checks (size < 2**24, ``2**-32 <= scale < 256``)
    refuse the rest (ConfigError).
``QLinearAveragePool`` (com.microsoft; ``channels_last``)
    ``onnxruntime/contrib_ops/cpu/quantization/qlinear_pool.cc``: every input dequantized,
    ``float32(x - x_zero_point) * x_scale``; per window a float32 sum from +0 in row-major window
    order over the inputs inside the image, divided by the count (``count_include_pad``: the
    kernel's size, else the inputs summed); then ``sat(nearbyintf(avg / y_scale + y_zero_point))``
    (the zero point added in float32 before the rounding; a NaN or a value beyond int32 gives the
    type's minimum, as the cast does on x86-64). A kernel covering the whole image with no
    padding is ``QLinearGlobalAveragePool``'s arithmetic, as ONNX Runtime dispatches it.
``ReorderInput``, ``ReorderOutput``, ``MaxPool``, ``AveragePool``, ``GlobalMaxPool``,
``GlobalAveragePool`` (``com.microsoft.nchwc``: ONNX Runtime's NCHWc layout, which its default
optimizations give float pooling on AVX2/AVX-512 CPUs)
    the channels in blocks of :func:`nchwc_block` (16 with AVX-512F, else 8), zero-padded; a
    tensor of shape (N, C', H, W) holds the bytes of (N, C' / block, H, W, block), as ONNX Runtime's
    buffers do. The pools are the ones above on the unblocked channels: maxima from ``-FLT_MAX``
    (``if v > m: m = v``), averages as a row-major float32 sum from +0 divided by the count.

Attributes: ``kernel_shape``, ``strides``, ``dilations``, ``pads``, ``auto_pad`` (``NOTSET``,
``VALID``, ``SAME_UPPER``, ``SAME_LOWER``), ``group`` (convolutions), ``ceil_mode`` (pooling), for
1-, 2- and 3-D kernels.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..core.errors import ConfigError
from ..core.inttype import IntType
from ..quant.requant import requantize
from .qops import F32, acc32, float_input, int_input, int_matmul, qtype, scalar_input
from .registry import MS_DOMAIN, NodeContext, register
from .sgemm import SGEMM_STRIDEK, SGEMM_STRIDEN, mlas_sgemm, sgemm_operation

__all__ = ["conv_integer", "conv_geometry", "max_pool"]


def conv_geometry(ctx: NodeContext, spatial: tuple[int, ...], kernel: tuple[int, ...], *, ceil: bool = False,
                  pool: bool = False) -> tuple[list[int], list[int], list[int], list[int]]:
    """(strides, dilations, pads at the start, output sizes) of each spatial axis from the node's
    ``strides``, ``dilations``, ``pads`` and ``auto_pad``, as ONNX defines them (pads at the end:
    :func:`_end_pads`). ``auto_pad`` SAME with a dilation: a convolution refuses it (as ONNX Runtime
    does); a pooling (``pool``) pads as if the dilation were 1 and then applies it (ONNX Runtime's
    ``PoolAttributes``)."""
    r = len(kernel)
    strides = list(ctx.attr("strides", None) or [1] * r)
    dil = list(ctx.attr("dilations", None) or [1] * r)
    pads = list(ctx.attr("pads", None) or [0] * (2 * r))
    auto = ctx.attr("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if len(strides) != r or len(dil) != r or len(pads) != 2 * r:
        raise ctx.shape_error(f"strides {strides}, dilations {dil} and pads {pads} do not fit a {r}-D kernel")
    if min(strides + dil) < 1 or min(pads) < 0 or min(kernel) < 1:
        raise ctx.shape_error(f"strides {strides} and dilations {dil} must be >= 1, pads {pads} >= 0, "
                              f"the kernel {list(kernel)} >= 1")
    begin, out = [], []
    for i, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dil, strict=True)):
        span = (k - 1) * d + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if d != 1 and not pool:
                raise ctx.shape_error(f"auto_pad {auto} with dilations {dil}: not supported (ONNX Runtime refuses it)")
            total = max(0, (-(-n // s) - 1) * s + k - n) if pool else max(0, (-(-n // s) - 1) * s + span - n)
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
            o = (n + total - span) // s + 1
        elif auto == "VALID":
            o, b = (n - span) // s + 1, 0
        elif auto == "NOTSET":
            b, e = pads[i], pads[i + r]
            room = n + b + e - span
            o = (-(-room // s) if ceil else room // s) + 1
            if ceil and (o - 1) * s >= n + b:  # the last window must start inside the input or the start pad
                o -= 1
        else:
            raise ctx.shape_error(f"auto_pad {auto!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
        if o < 1:
            raise ctx.shape_error(f"the kernel {list(kernel)} (dilations {dil}) does not fit the input's spatial "
                                  f"shape {list(spatial)} with pads {pads}")
        begin.append(b)
        out.append(o)
    return strides, dil, begin, out


def _windows(x: np.ndarray, kernel: tuple[int, ...], strides: list[int], dil: list[int], begin: list[int],
             out: list[int], fill) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of every window of ``x`` (N, C, *spatial), padded with ``fill``: shape
    (N, C, KS, *out) with KS = prod(kernel) in row-major kernel order, and the (KS, *out) mask of
    the positions inside the input (not padding)."""
    r = len(kernel)
    spatial = x.shape[2:]
    lo = [max(0, b) for b in begin]
    hi = [max(0, (o - 1) * s + (k - 1) * d + 1 - b - n) for o, s, k, d, b, n in
          zip(out, strides, kernel, dil, begin, spatial, strict=True)]
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi, strict=True)), constant_values=fill)
    inside = [np.zeros(n + a + b, bool) for n, a, b in zip(spatial, lo, hi, strict=True)]
    for m, a, n in zip(inside, lo, spatial, strict=True):
        m[a:a + n] = True
    cols, masks = [], []
    for offs in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offs, dil, strides, out, strict=True))
        cols.append(xp[(slice(None), slice(None)) + sl])
        m = np.ones(tuple(out), bool)
        for ax in range(r):
            shape = [1] * r
            shape[ax] = out[ax]
            m = m & inside[ax][sl[ax]].reshape(shape)
        masks.append(m)
    return np.stack(cols, axis=2), np.stack(masks)


def _window_fold(x: np.ndarray, kind: str, kernel: tuple[int, ...], strides: list[int], dil: list[int],
                 begin: list[int], out: list[int], init) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``x`` (N, C, *spatial) folded in row-major window order over its inputs
    inside the image (padding skipped), from ``init``: ``kind`` "max" (``if v > m: m = v``, a NaN
    never enters) or "sum" (``m + v`` in ``x``'s dtype); returns (N, C, *out) and the count of
    inputs of each window (*out)."""
    cols, inside = _windows(x, kernel, strides, dil, begin, out, init)
    y = np.full(x.shape[:2] + tuple(out), init, dtype=x.dtype)
    for i in range(cols.shape[2]):
        v = cols[:, :, i]
        y = np.where(inside[i] & (v > y), v, y) if kind == "max" else np.where(inside[i], y + v, y)
    return y, inside.sum(axis=0)


def _conv_shapes(ctx: NodeContext, x: np.ndarray, w: np.ndarray) -> tuple[int, int, int, int, int, tuple[int, ...]]:
    """(N, C, M, C / group, group, kernel) of a convolution of ``x`` (N, C, *spatial) by ``w``
    (M, C / group, *kernel), checked against the node's ``kernel_shape`` and ``group``."""
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    kernel = tuple(int(k) for k in w.shape[2:])
    ks = ctx.attr("kernel_shape", None)
    if ks is not None and tuple(ks) != kernel:
        raise ctx.shape_error(f"kernel_shape {list(ks)} differs from W's spatial shape {list(kernel)}")
    g = int(ctx.attr("group", 1))
    if g < 1 or c != cg * g or m % g:
        raise ctx.shape_error(f"group {g}: X has {c} channels and W {m} filters of {cg} channels")
    return n, c, m, cg, g, kernel


def conv_integer(ctx: NodeContext, x: np.ndarray, w: np.ndarray, x_zp: int, w_zp: np.ndarray,
                 channels_last: bool = False) -> np.ndarray:
    """The exact integer convolution (see the module docstring) of ``x`` (N, C, *spatial), or
    (N, *spatial, C) with ``channels_last``, by ``w`` (M, C / group, *kernel) with zero points
    ``x_zp`` and ``w_zp`` (a scalar, or one per output channel): int64 registers of shape
    (N, *out, M) (channels last, as the GEMMs produce them), each an int32 value (the datapath's
    accumulator)."""
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ctx.shape_error(f"X of shape {x.shape} and W of shape {w.shape} must have the same rank, at least 3")
    if channels_last:
        x = np.moveaxis(x, -1, 1)
    n, c, m, cg, g, kernel = _conv_shapes(ctx, x, w)
    strides, dil, begin, out = conv_geometry(ctx, x.shape[2:], kernel)
    cols, _ = _windows(x, kernel, strides, dil, begin, out, x_zp)  # (N, C, KS, *out), padding = x_zp
    pos = int(np.prod(out))
    cols = np.moveaxis(cols.reshape(n, c, -1, pos), 3, 1)  # (N, pos, C, KS)
    mg = m // g
    wz = np.broadcast_to(np.asarray(w_zp, np.int64).reshape(-1), (m,)).reshape(m, 1)
    acc = np.empty((n * pos, m), np.int64)
    for gi in range(g):
        a = np.subtract(cols[:, :, gi * cg:(gi + 1) * cg].reshape(n * pos, -1), x_zp, dtype=np.int64)
        b = np.subtract(w[gi * mg:(gi + 1) * mg].reshape(mg, -1), wz[gi * mg:(gi + 1) * mg], dtype=np.int64).T
        acc[:, gi * mg:(gi + 1) * mg] = int_matmul(ctx, np.ascontiguousarray(a), np.ascontiguousarray(b))
    return acc.reshape((n, *out, m))


def _end_pads(ctx: NodeContext, spatial: tuple[int, ...], kernel: tuple[int, ...], strides: list[int],
              dil: list[int], begin: list[int], out: list[int]) -> list[int]:
    """The pads at the end of each spatial axis (``auto_pad`` SAME: what it adds; NOTSET: as given)."""
    auto = ctx.attr("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "NOTSET":
        return list(ctx.attr("pads", None) or [0] * (2 * len(kernel)))[len(kernel):]
    if auto == "VALID":
        return [0] * len(kernel)
    return [max(0, (o - 1) * s + (k - 1) * d + 1 - n) - b for n, k, s, d, b, o in
            zip(spatial, kernel, strides, dil, begin, out, strict=True)]


def _conv_slices(wg: np.ndarray, col: np.ndarray, out: np.ndarray) -> None:
    """``MlasConvOperation`` on one image and group, one thread: ``out`` [F, P] = ``wg`` [F, K] x
    ``col`` [K, P] in slices of P (``StrideN``) and K (``StrideK``), the first K slice of each P
    slice into a cleared output (beta = 0), the later ones added (beta = 1)."""
    f, k = wg.shape
    p = col.shape[1]
    stride_n, stride_k = SGEMM_STRIDEN, SGEMM_STRIDEK
    if p >= k:
        while stride_k // 2 >= k:
            stride_n *= 2
            stride_k //= 2
    else:
        while stride_n > 16 and stride_n // 2 >= p:
            stride_k *= 2
            stride_n //= 2
    for n0 in range(0, p, stride_n):
        cn = min(stride_n, p - n0)
        buf = np.empty((f, cn), F32)
        for k0 in range(0, k, stride_k):
            ck = min(stride_k, k - k0)
            sgemm_operation(wg[:, k0:k0 + ck], col[k0:k0 + ck, n0:n0 + cn], buf, ldc=p, beta=1.0 if k0 else 0.0)
        out[:, n0:n0 + cn] = buf


@register("Conv")
def _conv(ctx: NodeContext, inputs: list) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "X"), "X")
    w = float_input(ctx, ctx.need(inputs, 1, "W"), "W")
    bias = inputs[2] if len(inputs) > 2 else None
    if x.ndim < 3 or w.ndim != x.ndim or x.ndim > 5:
        raise ctx.shape_error(f"X {x.shape} and W {w.shape} must both have 3 to 5 axes (1- to 3-D kernels)")
    n, c, m, cg, g, kernel = _conv_shapes(ctx, x, w)
    if bias is not None:
        float_input(ctx, bias, "B")
        if bias.shape != (m,):
            raise ctx.shape_error(f"B must have {m} entries, got shape {bias.shape}")
    spatial = x.shape[2:]
    strides, dil, begin, out = conv_geometry(ctx, spatial, kernel)
    end = _end_pads(ctx, spatial, kernel, strides, dil, begin, out)
    mg, kk, p = m // g, cg * int(np.prod(kernel)), int(np.prod(out))
    plain = all(s == 1 for s in strides) and not any(begin) and not any(end)
    if plain and kk != cg and len(kernel) <= 2 and cg == 1 and all(d == 1 for d in dil) and (
            kernel[-1] == spatial[-1] or (len(kernel) == 2 and kernel == (spatial[0], 1))):
        raise ctx.shape_error("a kernel as wide (or as high) as the input with one input channel per group "
                              "(MLAS multiplies the input directly; not reproduced)")
    y = np.empty((n, m, p), F32)
    cols = None if plain and kk == cg else _windows(x, kernel, strides, dil, begin, out, F32(0))[0]
    for i in range(n):
        for gi in range(g):
            wg = np.ascontiguousarray(w[gi * mg:(gi + 1) * mg].reshape(mg, kk))
            yo = y[i, gi * mg:(gi + 1) * mg]
            if cols is None:  # pointwise: the input is the [K, P] matrix
                xg = np.ascontiguousarray(x[i, gi * cg:(gi + 1) * cg].reshape(cg, p))
                yo[:] = mlas_sgemm(wg[None], xg[None])[0]
                continue
            col = np.ascontiguousarray(cols[i, gi * cg:(gi + 1) * cg].reshape(kk, p))
            if mg > p:  # more filters than output positions: one GEMM of the whole im2col matrix
                yo[:] = mlas_sgemm(wg[None], col[None])[0]
            else:
                _conv_slices(wg, col, yo)
    if bias is not None:
        y += bias.astype(F32)[None, :, None]
    return [y.reshape((n, m, *out))]


def _channels_first(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(y, -1, 1))


def _w_zero_point(ctx: NodeContext, zp: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    if zp is None:
        return np.zeros((), np.int64)
    if zp.dtype != w.dtype:
        raise ctx.dtype_error(f"w_zero_point has dtype {zp.dtype}, W has {w.dtype}")
    if zp.size not in (1, w.shape[0]) or zp.ndim > 1:
        raise ctx.shape_error(f"w_zero_point of shape {zp.shape} is neither a scalar nor one per filter ({w.shape[0]})")
    return zp.astype(np.int64).reshape(()) if zp.size == 1 else zp.astype(np.int64)


def _x_zero_point(ctx: NodeContext, zp: np.ndarray | None, x: np.ndarray) -> int:
    if zp is None:
        return 0
    if zp.dtype != x.dtype:
        raise ctx.dtype_error(f"x_zero_point has dtype {zp.dtype}, X has {x.dtype}")
    return int(scalar_input(ctx, zp, "x_zero_point"))


def _check_8bit(ctx: NodeContext, x: np.ndarray, w: np.ndarray) -> None:
    for what, t in (("X", x), ("W", w)):
        int_input(ctx, t, what)
        if t.dtype.itemsize != 1:
            raise ctx.dtype_error(f"{what} must be int8 or uint8, got {t.dtype}")


@register("ConvInteger")
def _conv_integer(ctx: NodeContext, inputs: list) -> list:
    x, w = ctx.need(inputs, 0, "x"), ctx.need(inputs, 1, "w")
    _check_8bit(ctx, x, w)
    xz = _x_zero_point(ctx, inputs[2] if len(inputs) > 2 else None, x)
    wz = _w_zero_point(ctx, inputs[3] if len(inputs) > 3 else None, w)
    return [_channels_first(acc32(conv_integer(ctx, x, w, xz, wz)))]


@register("QLinearConv")
@register("QLinearConv", domain=MS_DOMAIN)
def _qlinear_conv(ctx: NodeContext, inputs: list) -> list:
    x, x_s, x_zp = (ctx.need(inputs, i, n) for i, n in enumerate(("x", "x_scale", "x_zero_point")))
    w, w_s, w_zp = (ctx.need(inputs, 3 + i, n) for i, n in enumerate(("w", "w_scale", "w_zero_point")))
    y_s, y_zp = ctx.need(inputs, 6, "y_scale"), ctx.need(inputs, 7, "y_zero_point")
    bias = inputs[8] if len(inputs) > 8 else None
    _check_8bit(ctx, x, w)
    last = bool(ctx.attr("channels_last", 0)) and (ctx.node.domain or "") == MS_DOMAIN
    acc = conv_integer(ctx, x, w, _x_zero_point(ctx, x_zp, x), _w_zero_point(ctx, w_zp, w), last)
    m = w.shape[0]
    if bias is not None:
        if bias.dtype != np.int32 or bias.shape != (m,):
            raise ctx.shape_error(f"B must be an int32 vector of {m} entries, got {bias.dtype} {bias.shape}")
        acc = (acc + bias.astype(np.int64)).astype(np.int32).astype(np.int64)  # the int32 register wraps
    ws = float_input(ctx, w_s, "w_scale")
    if ws.size not in (1, m) or ws.ndim > 1:
        raise ctx.shape_error(f"w_scale of shape {ws.shape} is neither a scalar nor one per filter ({m})")
    scale = (F32(scalar_input(ctx, float_input(ctx, x_s, "x_scale"), "x_scale")) * ws.reshape(-1).astype(F32)) \
        / F32(scalar_input(ctx, float_input(ctx, y_s, "y_scale"), "y_scale"))
    t = qtype(ctx, y_zp.dtype, "y_zero_point")
    if y_zp.dtype != x.dtype:
        raise ctx.dtype_error(f"y_zero_point has dtype {y_zp.dtype}, X has {x.dtype}")
    r = requantize(acc, np.broadcast_to(scale.astype(np.float64), (m,)), mode="ort_fp32", out=t,
                   zero_point=int(scalar_input(ctx, y_zp, "y_zero_point")), in_type="int32")
    y = r.values.astype(y_zp.dtype)
    return [y if last else _channels_first(y)]


def max_pool(ctx: NodeContext, x: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """Max pooling of ``x`` (N, C, *spatial), or (N, *spatial, C) with ``channels_last``, as the
    module docstring states; the output in the input's layout."""
    if x.ndim < 3:
        raise ctx.shape_error(f"X of shape {x.shape} needs a batch, a channel and a spatial axis")
    if x.dtype == np.float32:
        lowest = np.finfo(np.float32).min
    elif x.dtype in (np.int8, np.uint8):
        lowest = np.iinfo(x.dtype).min
    else:
        raise ctx.dtype_error(f"X must be float32, int8 or uint8, got {x.dtype}")
    if ctx.attr("storage_order", 0):
        raise ctx.shape_error("storage_order=1 (column-major Indices) is not supported")
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise ctx.shape_error("the Indices output is not supported")
    if x.dtype == np.float32 and np.isnan(x).any():
        raise ctx.shape_error("a NaN input: ONNX Runtime's float max pooling keeps or drops it depending on the "
                              "kernel MLAS picks (scalar std::max or vector MAXPS lanes); not reproduced")
    xc = np.moveaxis(x, -1, 1) if channels_last else x
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape", ()))
    if len(kernel) != xc.ndim - 2:
        raise ctx.shape_error(f"kernel_shape {list(kernel)} does not fit X of shape {x.shape}")
    strides, dil, begin, out = conv_geometry(ctx, xc.shape[2:], kernel, ceil=bool(ctx.attr("ceil_mode", 0)),
                                             pool=True)
    if x.dtype == np.float32 and all(d == 1 for d in dil) and len(kernel) <= 3:
        end = _end_pads(ctx, xc.shape[2:], kernel, strides, dil, begin, out)
        return mlas_pool(xc, "max", kernel, strides, begin, end, out)
    y, _ = _window_fold(xc, "max", kernel, strides, dil, begin, out, x.dtype.type(lowest))
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if channels_last else y


@register("MaxPool")
def _max_pool(ctx: NodeContext, inputs: list) -> list:
    return [max_pool(ctx, ctx.need(inputs, 0, "X"))]


@register("NhwcMaxPool", domain=MS_DOMAIN)
def _nhwc_max_pool(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "x")
    if x.dtype not in (np.int8, np.uint8):
        raise ctx.dtype_error(f"x must be int8 or uint8, got {x.dtype}")
    return [max_pool(ctx, x, channels_last=True)]


def _pool_params(ctx: NodeContext, inputs: list) -> tuple[np.ndarray, np.float32, int, np.float32, int, IntType]:
    """(x, x_scale, x_zero_point, y_scale, y_zero_point, output type) of a QLinear pooling node."""
    x = ctx.need(inputs, 0, "X")
    if x.dtype not in (np.int8, np.uint8):
        raise ctx.dtype_error(f"X must be int8 or uint8, got {x.dtype}")
    if x.ndim < 3:
        raise ctx.shape_error(f"X of shape {x.shape} needs a batch, a channel and a spatial axis")
    xs = F32(scalar_input(ctx, float_input(ctx, ctx.need(inputs, 1, "x_scale"), "x_scale"), "x_scale"))
    ys = F32(scalar_input(ctx, float_input(ctx, ctx.need(inputs, 3, "y_scale"), "y_scale"), "y_scale"))
    zps = []
    for i, what in ((2, "x_zero_point"), (4, "y_zero_point")):
        z = inputs[i] if len(inputs) > i else None
        if z is not None and z.dtype != x.dtype:
            raise ctx.dtype_error(f"{what} has dtype {z.dtype}, X has {x.dtype}")
        zps.append(0 if z is None else int(scalar_input(ctx, z, what)))
    return x, xs, zps[0], ys, zps[1], qtype(ctx, x.dtype, "X")


def _global_average(ctx: NodeContext, xc: np.ndarray, xs: np.float32, xz: int, ys: np.float32, yz: int,
                    t: IntType) -> np.ndarray:
    """``MlasQLinearGlobalAveragePool`` over the spatial axes of ``xc`` (N, C, *spatial): (N, C)."""
    size = int(np.prod(xc.shape[2:]))
    scale = F32(xs / F32(ys * F32(size)))
    if size >= 1 << 24 or not (F32(2.0**-32) <= scale < F32(256.0)):
        raise ConfigError(f"{ctx.where}: image size {size} and scale {float(scale)!r} are outside ONNX Runtime's "
                          "range (size < 2**24, 2**-32 <= x_scale / (y_scale * size) < 256)")
    acc = xc.reshape(xc.shape[0], xc.shape[1], size).sum(axis=2, dtype=np.int64) - xz * size
    acc = acc.astype(np.int32).astype(np.int64)  # the int32 register (|sum| < 2**32 here)
    r = requantize(acc, float(scale), mode="ort_fp32", out=t, zero_point=yz, in_type="int32")
    return r.values


@register("QLinearGlobalAveragePool", domain=MS_DOMAIN)
def _qlinear_global_average_pool(ctx: NodeContext, inputs: list) -> list:
    x, xs, xz, ys, yz, t = _pool_params(ctx, inputs)
    last = bool(ctx.attr("channels_last", 0))
    xc = np.moveaxis(x, -1, 1) if last else x
    y = _global_average(ctx, xc, xs, xz, ys, yz, t).astype(x.dtype)
    ones = (1,) * (x.ndim - 2)
    return [y.reshape((x.shape[0], *ones, x.shape[-1])) if last else y.reshape(x.shape[:2] + ones)]


@register("QLinearAveragePool", domain=MS_DOMAIN)
def _qlinear_average_pool(ctx: NodeContext, inputs: list) -> list:
    x, xs, xz, ys, yz, t = _pool_params(ctx, inputs)
    last = bool(ctx.attr("channels_last", 0))
    xc = np.moveaxis(x, -1, 1) if last else x
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape", ()))
    if len(kernel) != xc.ndim - 2 or len(kernel) > 3:
        raise ctx.shape_error(f"kernel_shape {list(kernel)} does not fit X of shape {x.shape} (1 to 3 spatial axes)")
    if any(d != 1 for d in (ctx.attr("dilations", None) or [])):
        raise ctx.shape_error("dilations are not supported by ONNX Runtime's QLinearAveragePool")
    strides, dil, begin, out = conv_geometry(ctx, xc.shape[2:], kernel, ceil=bool(ctx.attr("ceil_mode", 0)),
                                             pool=True)
    end = _end_pads(ctx, xc.shape[2:], kernel, strides, dil, begin, out)
    if kernel == tuple(xc.shape[2:]) and not any(begin) and not any(end):
        y = _global_average(ctx, xc, xs, xz, ys, yz, t).reshape(xc.shape[:2] + (1,) * len(kernel))
    else:
        xf = np.subtract(xc, xz, dtype=np.int32).astype(F32) * xs  # ONNX Runtime's dequantized copy
        acc, valid = _window_fold(xf, "sum", kernel, strides, dil, begin, out, F32(0))
        count = np.full(tuple(out), F32(np.prod(kernel))) if ctx.attr("count_include_pad", 0) \
            else valid.astype(F32)
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.rint((acc / count) / ys + F32(yz))
        # static_cast<int32_t> of a NaN or of a value outside int32 gives INT32_MIN on x86-64 (CVTTSS2SI)
        q = np.where(np.isnan(q) | (q < -(2.0**31)) | (q >= 2.0**31), -(2.0**31), q)
        y = np.clip(q, t.min, t.max).astype(np.int64)
    y = y.astype(x.dtype)
    return [np.ascontiguousarray(np.moveaxis(y, 1, -1)) if last else y]


# -- float pooling as MLAS computes it ---------------------------------------------------------------

_F32_LOWEST = np.finfo(np.float32).min


def _maxps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, a, b)


def mlas_pool(x: np.ndarray, kind: str, kernel: tuple[int, ...], strides: list[int], begin: list[int],
              end: list[int], out: list[int]) -> np.ndarray:
    """``MlasPool`` of float32 ``x`` (N, C, *spatial; 1 to 3 spatial axes): ``kind`` "max",
    "avg_include" or "avg_exclude" (``count_include_pad``), the kernel, strides, pads at the start
    and end, and the output sizes; returns (N, C, *out). See the module docstring for the kernels."""
    n, c = x.shape[:2]
    spatial = tuple(x.shape[2:])
    dims = len(spatial)
    xs = np.ascontiguousarray(x, dtype=F32).reshape((n * c, *spatial))
    if kernel == spatial and all(s == 1 for s in strides) and not any(begin) and not any(end):
        y = _pool_global(xs, kind)
    elif dims >= 2 and strides[-1] <= 2 and all(k <= 32 for k in kernel) \
            and begin[-1] + end[-1] + spatial[-1] <= 2048 - 3:
        y = _pool_vector(xs, kind, kernel, strides, begin, out)
    else:  # the generic kernels: a row-major fold over the inputs inside the image
        y, valid = _window_fold(xs[:, None], "max" if kind == "max" else "sum", kernel, strides, [1] * dims, begin,
                                out, _F32_LOWEST if kind == "max" else F32(0))
        y = y[:, 0]
        if kind != "max":
            y = y / (F32(np.prod(kernel)) if kind == "avg_include" else valid.astype(F32))
    return y.reshape((n, c, *out))


def _pool_global(xs: np.ndarray, kind: str) -> np.ndarray:
    flat = xs.reshape(xs.shape[0], -1)
    size = flat.shape[1]
    init = F32(0) if kind != "max" else _F32_LOWEST
    lanes = np.full((flat.shape[0], 4), init, F32)
    for i in range(size // 4):
        v = flat[:, 4 * i:4 * i + 4]
        lanes = lanes + v if kind != "max" else _maxps(lanes, v)
    if kind == "max":
        r = _maxps(_maxps(lanes[:, 0], lanes[:, 2]), _maxps(lanes[:, 1], lanes[:, 3]))
    else:
        r = (lanes[:, 0] + lanes[:, 2]) + (lanes[:, 1] + lanes[:, 3])
    for i in range(size - size % 4, size):
        v = flat[:, i]
        r = r + v if kind != "max" else np.where(r < v, v, r)
    return r if kind == "max" else r / F32(size)


def _pool_vector(xs: np.ndarray, kind: str, kernel: tuple[int, ...], strides: list[int], begin: list[int],
                 out: list[int]) -> np.ndarray:
    """``MlasPool2DVectorKernel`` / ``MlasPool3DVectorKernel``."""
    dims = len(kernel)
    spatial = xs.shape[1:]
    iw, kw, sw, pl = spatial[-1], kernel[-1], strides[-1], begin[-1]
    init = F32(0) if kind != "max" else _F32_LOWEST
    red = (lambda a, b: a + b) if kind != "max" else _maxps  # noqa: E731
    outer = [range(o) for o in out[:-1]]
    y = np.empty((xs.shape[0], *out), F32)
    ow = out[-1]
    starts_w = np.arange(ow) * sw  # each output's window start in the reduction buffer
    width = max(pl + iw + 3, int(starts_w[-1]) + kw) + 1
    for pos in itertools.product(*outer):
        rng, rows = [], 1
        for ax, p in enumerate(pos):
            st = p * strides[ax] - begin[ax]
            en = min(st + kernel[ax], spatial[ax])
            st = 0 if st < 0 or st >= spatial[ax] else st  # size_t arithmetic: a negative start wraps, then 0
            rng.append((st, en))
            rows *= en - st
        block = xs[(slice(None), *(slice(a, b) for a, b in rng))].reshape(xs.shape[0], -1, iw)
        if dims == 2:  # from the window's first row
            col = block[:, 0].copy()
            for j in range(1, block.shape[1]):
                col = red(col, block[:, j])
        else:  # from the initial value
            col = np.full((xs.shape[0], iw), init, F32)
            for j in range(block.shape[1]):
                col = red(col, block[:, j])
        buf = np.full((xs.shape[0], width), init, F32)
        buf[:, pl:pl + iw] = col
        acc = buf[:, starts_w]
        for k in range(1, kw):
            acc = red(acc, buf[:, starts_w + k])
        if kind == "avg_include":
            acc = acc / F32(np.prod(kernel))
        elif kind == "avg_exclude":
            lower = np.maximum(starts_w, pl).astype(F32)
            upper = np.minimum(starts_w + kw, pl + iw).astype(F32)
            acc = acc / np.maximum((upper - lower) * F32(rows), F32(1))
        y[(slice(None), *pos)] = acc
    return y


def _float_pool_geometry(ctx: NodeContext, x: np.ndarray, kernel: tuple[int, ...]
                         ) -> tuple[list[int], list[int], list[int], list[int]]:
    if x.ndim < 3 or x.ndim > 5 or len(kernel) != x.ndim - 2:
        raise ctx.shape_error(f"kernel_shape {list(kernel)} does not fit X of shape {x.shape} (1 to 3 spatial axes)")
    strides, dil, begin, out = conv_geometry(ctx, x.shape[2:], kernel, ceil=bool(ctx.attr("ceil_mode", 0)), pool=True)
    if any(d != 1 for d in dil):
        raise ctx.shape_error(f"dilations {dil}: not supported for average pooling")
    return strides, begin, _end_pads(ctx, x.shape[2:], kernel, strides, dil, begin, out), out


@register("AveragePool")
def _average_pool(ctx: NodeContext, inputs: list) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "X"), "X")
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape", ()))
    include = bool(ctx.attr("count_include_pad", 0))
    if ctx.opset >= 19 or (include and ctx.attr("ceil_mode", 0)):
        return [_average_pool_v19(ctx, x, kernel, include)]
    strides, begin, end, out = _float_pool_geometry(ctx, x, kernel)
    return [mlas_pool(x, "avg_include" if include else "avg_exclude", kernel, strides, begin, end, out)]


def _average_pool_v19(ctx: NodeContext, x: np.ndarray, kernel: tuple[int, ...], include: bool) -> np.ndarray:
    """ONNX Runtime's ``AveragePool`` from opset 19 (``pool_functors.h``, ``AveragePool*DTask``): per
    window a float32 sum from +0 over the inputs inside the image in row-major window order (with
    dilations), divided by their count, or with ``count_include_pad`` by the window's taps up to the
    end of the padding (``1 + (end - start - 1) // dilation`` per axis); a window without inputs is 0."""
    if x.ndim < 3 or x.ndim > 5 or len(kernel) != x.ndim - 2:
        raise ctx.shape_error(f"kernel_shape {list(kernel)} does not fit X of shape {x.shape} (1 to 3 spatial axes)")
    spatial = x.shape[2:]
    strides, dil, begin, out = conv_geometry(ctx, spatial, kernel, ceil=bool(ctx.attr("ceil_mode", 0)), pool=True)
    end = _end_pads(ctx, spatial, kernel, strides, dil, begin, out)
    y, total = _window_fold(x, "sum", kernel, strides, dil, begin, out, F32(0))
    if include:
        count = np.ones(tuple(out), np.int64)
        for ax, (n, k, st, d, b, e) in enumerate(zip(spatial, kernel, strides, dil, begin, end, strict=True)):
            hs = np.arange(out[ax]) * st - b
            he = np.minimum(hs + k * d, n + e)
            shape = [1] * len(kernel)
            shape[ax] = out[ax]
            count = count * (1 + (he - hs - 1) // d).reshape(shape)
    else:
        count = total
    return np.where(total > 0, y / count.astype(F32), y)


def _global_pool(ctx: NodeContext, inputs: list, kind: str) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "X"), "X")
    if x.ndim < 3 or x.ndim > 5:
        raise ctx.shape_error(f"X of shape {x.shape}: 1 to 3 spatial axes are supported")
    if kind == "max" and np.isnan(x).any():
        raise ctx.shape_error("a NaN input: ONNX Runtime's float max pooling keeps or drops it depending on the "
                              "lane it meets; not reproduced")
    r = x.ndim - 2
    y = mlas_pool(x, kind, tuple(x.shape[2:]), [1] * r, [0] * r, [0] * r, [1] * r)
    return [y]


@register("GlobalAveragePool")
def _global_average_pool(ctx: NodeContext, inputs: list) -> list:
    return _global_pool(ctx, inputs, "avg_include")


@register("GlobalMaxPool")
def _global_max_pool(ctx: NodeContext, inputs: list) -> list:
    return _global_pool(ctx, inputs, "max")


# -- ONNX Runtime's NCHWc layout (com.microsoft.nchwc) -------------------------------------------------

NCHWC_DOMAIN = "com.microsoft.nchwc"


def nchwc_block() -> int:
    """MLAS's NCHWc channel block on this CPU (``MlasNchwcGetBlockSize``): 16 with AVX-512F, else 8."""
    try:
        import llvmlite.binding as ll

        return 16 if ll.get_host_cpu_features().get("avx512f") else 8
    except Exception:  # pragma: no cover - llvmlite without the host feature query
        return 8


def _unblock(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """An NCHWc tensor (N, C', *spatial) holding blocked bytes -> the plain (N, C', *spatial) array."""
    b = nchwc_block()
    if x.ndim < 3 or x.shape[1] % b:
        raise ctx.shape_error(f"an NCHWc tensor of shape {x.shape}: channels must be a multiple of the block {b}")
    blocked = np.ascontiguousarray(x).reshape((x.shape[0], x.shape[1] // b, *x.shape[2:], b))
    return np.ascontiguousarray(np.moveaxis(blocked, -1, 2)).reshape(x.shape)


def _block(y: np.ndarray) -> np.ndarray:
    """The plain (N, C', *spatial) array -> the NCHWc tensor holding its blocked bytes."""
    b = nchwc_block()
    split = y.reshape((y.shape[0], y.shape[1] // b, b, *y.shape[2:]))
    return np.ascontiguousarray(np.moveaxis(split, 2, -1)).reshape(y.shape)


@register("ReorderInput", domain=NCHWC_DOMAIN)
def _reorder_input(ctx: NodeContext, inputs: list) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "X"), "X")
    if x.ndim < 3:
        raise ctx.shape_error(f"X of shape {x.shape} needs a batch, a channel and a spatial axis")
    xc = np.moveaxis(x, -1, 1) if ctx.attr("channels_last", 0) else x
    b = nchwc_block()
    c = xc.shape[1]
    padded = np.zeros((xc.shape[0], -(-c // b) * b, *xc.shape[2:]), F32)
    padded[:, :c] = xc
    return [_block(padded)]


@register("ReorderOutput", domain=NCHWC_DOMAIN)
def _reorder_output(ctx: NodeContext, inputs: list) -> list:
    x = float_input(ctx, ctx.need(inputs, 0, "X"), "X")
    c = int(ctx.attr("channels", 0))
    if not 0 < c <= x.shape[1]:
        raise ctx.shape_error(f"channels={c} does not fit the NCHWc tensor of shape {x.shape}")
    y = _unblock(ctx, x)[:, :c]
    return [np.ascontiguousarray(np.moveaxis(y, 1, -1)) if ctx.attr("channels_last", 0) else y]


def _nchwc_pool(ctx: NodeContext, inputs: list, kind: str, global_pool: bool) -> list:
    x = _unblock(ctx, float_input(ctx, ctx.need(inputs, 0, "X"), "X"))
    if kind == "max" and np.isnan(x).any():
        raise ctx.shape_error("a NaN input: ONNX Runtime's float max pooling keeps or drops it depending on the "
                              "kernel; not reproduced")
    r = x.ndim - 2
    if global_pool:
        kernel, strides, begin, out = tuple(x.shape[2:]), [1] * r, [0] * r, [1] * r
        dil = [1] * r
    else:
        kernel = tuple(int(k) for k in ctx.attr("kernel_shape", ()))
        if len(kernel) != r:
            raise ctx.shape_error(f"kernel_shape {list(kernel)} does not fit X of shape {x.shape}")
        strides, dil, begin, out = conv_geometry(ctx, x.shape[2:], kernel, ceil=bool(ctx.attr("ceil_mode", 0)),
                                                 pool=True)
    y, valid = _window_fold(x, "max" if kind == "max" else "sum", kernel, strides, dil, begin, out,
                            _F32_LOWEST if kind == "max" else F32(0))
    if kind != "max":
        y = y / (valid.astype(F32) if kind == "avg_exclude" else F32(np.prod(kernel)))
    return [_block(y)]


register("MaxPool", domain=NCHWC_DOMAIN)(lambda ctx, i: _nchwc_pool(ctx, i, "max", False))
register("GlobalMaxPool", domain=NCHWC_DOMAIN)(lambda ctx, i: _nchwc_pool(ctx, i, "max", True))
register("AveragePool", domain=NCHWC_DOMAIN)(lambda ctx, i: _nchwc_pool(
    ctx, i, "avg_include" if ctx.attr("count_include_pad", 0) else "avg_exclude", False))
register("GlobalAveragePool", domain=NCHWC_DOMAIN)(lambda ctx, i: _nchwc_pool(ctx, i, "avg_include", True))
