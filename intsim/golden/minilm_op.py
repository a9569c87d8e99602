"""The ``minilm_int.encoder_layer`` golden operator: one integer MiniLM encoder layer
(:mod:`intsim.models.minilm`) as a golden-vector case, with every intermediate integer tensor and
the layer's integer parameters as taps. Registered by :mod:`intsim.golden.operators` when the
registry is first listed or searched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.inttype import IntType
from ..models.minilm import CONFIGURATIONS, DEFAULT_CONFIG, DEFAULT_NONLINEAR, NONLINEAR, get_config, load_int_minilm
from .keys import check_keys, int_key
from .opbase import Case, GoldenOperator, OpRun, TensorDecl

__all__ = ["EncoderLayerOperator"]


class EncoderLayerOperator(GoldenOperator):
    """One integer MiniLM encoder layer on one sentence of ``T`` tokens.

    shape ``T`` (1 to 64); config ``configuration`` (default ``w8a8``), ``nonlinear`` (the
    family of integer softmax/GELU/LayerNorm, default ``ibert``; ``profile``, its old name, is
    accepted too), ``layer`` (0); input ``x``: the residual-stream integers ``[T, 384]``
    (default distribution: heavy-tailed, scale_bits 11, 1% outliers, 2 outlier channels,
    like the real stream). Output ``y``: the next layer's residual-stream input. Taps:
    every intermediate integer tensor in order, then the layer's integer parameters
    (``param.*``: weights, biases, requantization mantissas ``m`` and shifts ``k``).
    Needs the MiniLM model (the parameters are calibrated and quantized from it).
    """

    name = "minilm_int.encoder_layer"
    summary = "one integer-only MiniLM encoder layer (attention, FFN, LayerNorms) on one sentence"
    CONFIG = {"configuration": DEFAULT_CONFIG, "nonlinear": DEFAULT_NONLINEAR, "layer": 0}

    def resolve(self, spec: Any) -> Any:
        where = spec.where
        check_keys(spec.shape, {"T"}, f"{where}: shape")
        T = int_key(spec.shape, "T", f"{where}: shape", 1, 64)
        check_keys(spec.config, {*self.CONFIG, "profile"}, f"{where}: config")
        # "profile", the old name of "nonlinear", is accepted and kept as written (old suites still verify)
        nl_key = "profile" if "profile" in spec.config else "nonlinear"
        if nl_key == "profile" and "nonlinear" in spec.config:
            raise ConfigError(f"{where}: config: give nonlinear or its old name profile, not both")
        cfg = {"configuration": DEFAULT_CONFIG, nl_key: DEFAULT_NONLINEAR, "layer": 0}
        cfg.update(spec.config)
        if not isinstance(cfg["configuration"], str) or cfg["configuration"] not in CONFIGURATIONS:
            raise ConfigError(f"{where}: config.configuration: unknown {cfg['configuration']!r}; valid: "
                              f"{', '.join(CONFIGURATIONS)}")
        c = get_config(cfg["configuration"])
        if not isinstance(cfg[nl_key], str) or cfg[nl_key] not in NONLINEAR:
            raise ConfigError(f"{where}: config.{nl_key}: unknown nonlinear family {cfg[nl_key]!r}; valid: "
                              f"{', '.join(NONLINEAR)}")
        int_key(cfg, "layer", f"{where}: config", 0, 5)
        t = IntType(c.residual_bits)
        decls = [TensorDecl("x", "input", (T, 384), t)]
        dist = spec.inputs or {"x": {"dist": "heavy_tailed", "scale_bits": 11, "outlier_rate": 0.01,
                                     "outlier_channels": 2}}
        inputs = self._inputs(replace(spec, inputs=dist), decls)
        return Case(spec.name, self.name, spec.seed, {"T": T}, cfg, inputs, tuple(decls), spec.description)

    def run(self, case: Any, inputs: Mapping[str, np.ndarray]) -> Any:
        c = case.config
        m = load_int_minilm(c["configuration"], c.get("nonlinear", c.get("profile"))).model
        li = int(c["layer"])
        x = inputs["x"]
        rec: dict[str, np.ndarray] = {}
        fwd = m.forward(x, [x.shape[0]], layers=[li], record=rec)
        t_out = IntType(m.config.residual_bits)
        outputs = [(TensorDecl("y", "output", tuple(fwd.residual.shape), t_out),
                    fwd.residual.astype(t_out.dtype))]
        taps = []
        params = {k.split(".", 1)[1]: v for k, v in m.parameters().items() if k.startswith(f"l{li}.")}
        items = [(k.split(".", 1)[1], v) for k, v in rec.items() if k.startswith(f"l{li}.")]
        items += [("param." + k, v) for k, v in params.items()]
        for tname, arr in items:
            a = np.asarray(arr)
            t = _fit_type(a)
            taps.append((TensorDecl(tname.replace(".", "_"), "tap", tuple(a.shape), t), a.astype(t.dtype)))
        return OpRun(outputs, taps, None)


def _fit_type(a: np.ndarray) -> IntType:
    """The narrowest of int8/16/32/64 (or uint8/16/32 for non-negative data) holding ``a``."""
    lo = int(a.min()) if a.size else 0
    hi = int(a.max()) if a.size else 0
    for bits in (8, 16, 32, 64):
        t = IntType(bits)
        if t.min <= lo and hi <= t.max:
            return t
    raise ConfigError(f"a tensor with values in [{lo}, {hi}] does not fit 64 bits")  # pragma: no cover
