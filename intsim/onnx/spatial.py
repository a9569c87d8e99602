"""Padding and nearest-neighbour resizing, as ONNX Runtime's CPU kernels compute them (values move;
none is computed, so any dtype is exact once the indices are ONNX Runtime's).

``Pad`` (opsets 2 to 21)
    ``constant`` (``constant_value``, default 0), ``reflect``, ``edge`` and ``wrap`` modes; the pads
    as an attribute (before opset 11) or an input, with ``axes`` (opset 18); a negative pad crops.
``Resize`` / ``Upsample`` with ``mode="nearest"``
    each output index ``i`` of an axis maps to the input index ONNX Runtime computes in float32
    (``onnxruntime/core/providers/cpu/tensor/upsamplebase.h``): the coordinate
    ``half_pixel`` ``(i + 0.5) / scale - 0.5``, ``asymmetric`` ``i / scale``, ``pytorch_half_pixel``
    (``0`` for an output of length 1), ``align_corners`` ``i * (in - 1) / (out - 1)``,
    ``tf_half_pixel_for_nn`` ``(i + 0.5) / scale``; then ``nearest_mode`` ``round_prefer_floor``
    (default), ``round_prefer_ceil``, ``floor`` or ``ceil``, clamped to the input (``Upsample`` and
    ``Resize`` before opset 11: ``asymmetric``, then ``ceil`` when down-sampling, else truncation). The scale of an axis
    is the ``scales`` input, or ``float32(out) / float32(in)`` from ``sizes`` (``keep_aspect_ratio_policy``
    ``stretch``); the output length ``floor(in * scale)`` in float32. Linear and cubic modes and
    ``tf_crop_and_resize`` are refused (ShapeError naming the node). Known difference: with the
    ``round_prefer_*`` modes, ONNX Runtime 1.32 rounds some coordinates that fall one or two float32
    ULPs below a half (e.g. ``9 / 1.2f = 7.4999995``) up, as if they were the half; intsim rounds the
    float32 value as the source above does, so such an index can differ (``intsim onnx check``
    reports it). Exact halves, integer ratios and the ``floor``/``ceil`` modes agree.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import NodeContext, register

__all__ = ["nearest_indices"]

F32 = np.float32
_MODES = ("half_pixel", "asymmetric", "pytorch_half_pixel", "align_corners", "tf_half_pixel_for_nn")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _int_list(ctx: NodeContext, inputs: list, i: int, what: str) -> list[int] | None:
    if i >= len(inputs) or inputs[i] is None or inputs[i].size == 0:
        return None
    x = inputs[i]
    if x.dtype.kind not in "iu":
        raise ctx.dtype_error(f"{what} must be an integer tensor, got {x.dtype}")
    return [int(v) for v in x.reshape(-1)]


@register("Pad")
def _pad(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "data")
    mode = _text(ctx.attr("mode", "constant"))
    if ctx.opset < 11:
        pads = list(ctx.attr("pads", None) or [])
        value = ctx.attr("value", 0.0)
    else:
        pads = _int_list(ctx, inputs, 1, "pads") or []
        cv = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].size else None
        value = cv.reshape(-1)[0] if cv is not None else 0
    axes = _int_list(ctx, inputs, 3, "axes") if ctx.opset >= 18 else None
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    if len(pads) != 2 * len(axes):
        raise ctx.shape_error(f"pads {pads} must have two entries per padded axis ({len(axes)} axes of {x.shape})")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.shape_error(f"mode {mode!r} is not one of constant, reflect, edge, wrap")
    before, after = [0] * x.ndim, [0] * x.ndim
    for j, a in enumerate(axes):
        before[a], after[a] = pads[j], pads[j + len(axes)]
    crop = tuple(slice(max(0, -b), x.shape[a] - max(0, -e) if e < 0 else None)
                 for a, (b, e) in enumerate(zip(before, after, strict=True)))
    x = x[crop]
    widths = [(max(0, b), max(0, e)) for b, e in zip(before, after, strict=True)]
    if mode != "constant" and any(w != (0, 0) and n == 0 for w, n in zip(widths, x.shape, strict=True)):
        raise ctx.shape_error(f"mode {mode} cannot pad an empty axis of {x.shape}")
    if mode == "reflect" and any(max(w) >= n and w != (0, 0) for w, n in zip(widths, x.shape, strict=True)):
        raise ctx.shape_error(f"reflect pads {pads} must be shorter than the axes of {x.shape}")
    if mode == "constant":
        return [np.pad(x, widths, mode="constant", constant_values=np.asarray(value).astype(x.dtype))]
    return [np.pad(x, widths, mode=mode)]


def nearest_indices(n_in: int, n_out: int, scale: np.float32, mode: str, nearest: str) -> np.ndarray:
    """The input index of every output index of one axis (see the module docstring), int64."""
    i = np.arange(n_out, dtype=F32)
    s = F32(scale)
    with np.errstate(all="ignore"):
        if mode == "half_pixel":
            x = (i + F32(0.5)) / s - F32(0.5)
        elif mode == "asymmetric":
            x = i / s
        elif mode == "pytorch_half_pixel":
            x = (i + F32(0.5)) / s - F32(0.5) if n_out > 1 else np.zeros(n_out, F32)
        elif mode == "align_corners":
            x = i * F32(n_in - 1) / F32(n_out - 1) if n_out > 1 else np.zeros(n_out, F32)
        else:  # tf_half_pixel_for_nn
            x = (i + F32(0.5)) / s
        if nearest == "round_prefer_floor":
            idx = np.where(x == np.trunc(x) + F32(0.5), np.floor(x), np.sign(x) * np.floor(np.abs(x) + F32(0.5)))
        elif nearest == "round_prefer_ceil":
            idx = np.sign(x) * np.floor(np.abs(x) + F32(0.5))  # std::round: half away from zero
        elif nearest == "floor":
            idx = np.floor(x)
        elif nearest == "ceil":
            idx = np.ceil(x)
        else:  # "simple" (Upsample, Resize-10): ceil when down-sampling, else truncation
            idx = np.ceil(x) if s < 1 else np.trunc(x)
    return np.clip(idx.astype(np.int64), 0, n_in - 1)


def _resize_nearest(ctx: NodeContext, x: np.ndarray, scales: list[float] | None, sizes: list[int] | None,
                    axes: list[int], legacy: bool = False) -> np.ndarray:
    if legacy:  # Upsample and Resize-10: asymmetric coordinates, "simple" rounding
        mode, nearest = "asymmetric", "simple"
    else:
        mode = _text(ctx.attr("coordinate_transformation_mode", "half_pixel"))
        nearest = _text(ctx.attr("nearest_mode", "round_prefer_floor"))
    if mode not in _MODES:
        raise ctx.shape_error(f"coordinate_transformation_mode {mode!r} is not supported; supported: "
                              f"{', '.join(_MODES)}")
    if nearest not in _NEAREST and not legacy:
        raise ctx.shape_error(f"nearest_mode {nearest!r} is not one of {', '.join(_NEAREST)}")
    full_scales = [F32(1)] * x.ndim
    out_shape = list(x.shape)
    if sizes is not None:
        policy = _text(ctx.attr("keep_aspect_ratio_policy", "stretch"))
        if policy != "stretch":
            raise ctx.shape_error(f"keep_aspect_ratio_policy {policy!r} is not supported (stretch only)")
        if len(sizes) != len(axes):
            raise ctx.shape_error(f"sizes {sizes} must have one entry per axis ({len(axes)})")
        for a, n in zip(axes, sizes, strict=True):
            full_scales[a] = F32(F32(n) / F32(x.shape[a])) if x.shape[a] else F32(1)
            out_shape[a] = n
    else:
        if scales is None or len(scales) != len(axes):
            raise ctx.shape_error(f"needs scales (one per axis, {len(axes)}) or sizes, got scales {scales}")
        for a, s in zip(axes, scales, strict=True):
            if not s > 0:
                raise ctx.shape_error(f"scale {s} of axis {a} must be positive")
            full_scales[a] = F32(s)
            out_shape[a] = int(math.floor(F32(F32(x.shape[a]) * F32(s))))
    y = x
    for a in range(x.ndim):
        if out_shape[a] != x.shape[a] or full_scales[a] != 1:
            idx = nearest_indices(x.shape[a], out_shape[a], full_scales[a], mode, nearest)
            y = np.take(y, idx, axis=a)
    return np.ascontiguousarray(y)


@register("Resize")
def _resize(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "X")
    mode = _text(ctx.attr("mode", "nearest"))
    if mode != "nearest":
        raise ctx.shape_error(f"mode {mode!r} is not supported (nearest only)")
    if ctx.opset < 11:
        sc = ctx.need(inputs, 1, "scales")
        return [_resize_nearest(ctx, x, [float(v) for v in sc.reshape(-1)], None, list(range(x.ndim)), legacy=True)]
    scales_in = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].size else None
    sizes = _int_list(ctx, inputs, 3, "sizes")
    if scales_in is not None and sizes is not None:
        raise ctx.shape_error("give scales or sizes, not both")
    if scales_in is not None and scales_in.dtype != F32:
        raise ctx.dtype_error(f"scales must be float32, got {scales_in.dtype}")
    axes = list(ctx.attr("axes", None) or range(x.ndim))
    axes = [a % x.ndim for a in axes]
    scales = [float(v) for v in scales_in.reshape(-1)] if scales_in is not None else None
    return [_resize_nearest(ctx, x, scales, sizes, axes)]


@register("Upsample")
def _upsample(ctx: NodeContext, inputs: list) -> list:
    x = ctx.need(inputs, 0, "X")
    if _text(ctx.attr("mode", "nearest")) != "nearest":
        raise ctx.shape_error("only mode='nearest' is supported")
    sc = inputs[1] if len(inputs) > 1 and inputs[1] is not None else np.asarray(ctx.attr("scales", []), F32)
    return [_resize_nearest(ctx, x, [float(v) for v in sc.reshape(-1)], None, list(range(x.ndim)), legacy=True)]
