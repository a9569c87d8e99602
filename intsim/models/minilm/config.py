"""The integer configurations of the MiniLM pass (:class:`IntConfig`): the linear mode, the GEMM
back-end, the register widths and the overflow policy; :data:`CONFIGURATIONS` names the three of issue 7.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ConfigError

__all__ = ["IntConfig", "CONFIGURATIONS", "DEFAULT_CONFIG", "get_config"]

_POLICIES = ("raise", "wrap", "saturate")
_LINEARS = ("static", "llm_int8")
_GEMMS = ("direct", "unpack")
_STRATEGIES = ("row", "col", "both", "plan")
_ACT_QUANTS = ("per_token", "static")
_OUTLIER_SCOPES = ("sequence", "batch")


@dataclass(frozen=True)
class IntConfig:
    """One integer configuration of the MiniLM pass.

    Attributes
    ----------
    name:
        label used in reports.
    linear:
        ``"static"``: per-tensor static activation scale, per-output-channel weights, one
        GEMM; ``"llm_int8"``: the LLM.int8() decomposition (see the module docs).
    gemm:
        ``"direct"``: :func:`intsim.matmul` on the datapath; ``"unpack"``:
        :func:`intsim.hw.unpack.unpack_matmul` onto ``mult_bits``-bit multipliers.
    mult_bits:
        multiplier operand width of the ``unpack`` datapath (``direct`` uses the operand widths).
    acc_bits:
        accumulator register width of every GEMM (the LLM.int8() outlier GEMM uses 48).
    act_bits:
        width of the linear layers' input activations (8, or 16 for ``llm_int8``).
    act_quant:
        how the ``static`` linear mode quantizes a linear layer's input to ``act_bits``:
        ``"per_token"`` (default): the producer writes a 16-bit register at a static per-tensor
        step (``headroom`` times the calibrated maximum), and each token is then quantized onto
        its own range at run time, exactly in integers (:func:`intsim.ops.illm.dynamic_requant`,
        I-LLM's DI-MatMul), the GEMM result rescaled per token; ``"static"``: one calibrated
        per-tensor step (``act_margin`` times the calibrated maximum), fixed for every input.
        The I-LLM non-linear family is per-token whatever this says.
    weight_bits:
        width of the per-channel symmetric weights (``[-(2**(b-1)-1), 2**(b-1)-1]``).
    residual_bits:
        width of the residual stream and of the residual-add register (LayerNorm input).
    gelu_bits:
        width of the per-tensor GELU input.
    prob_bits:
        unsigned width of the softmax output (probabilities at scale ``2**-prob_bits``).
    headroom:
        residual-stream and GELU-input scales map ``headroom * calibrated max`` to the
        largest register value (the rest of each register is headroom for unseen inputs).
    overflow:
        policy of every accumulator and register: ``raise``, ``wrap`` or ``saturate``
        (events are recorded under every policy; ``raise`` stops at the first).
    unpack_strategy:
        IM-Unpack strategies (A, B) for ``unpack``.
    outlier_threshold:
        LLM.int8(): real magnitude from which a feature column is an outlier (6.0 in the paper).
    weight_rounding:
        how the weights' integers are chosen on their per-output-channel steps: ``"gptq"``
        (default): GPTQ's error-compensating rounding on the calibration inputs (Frantar et al.,
        "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", 2023);
        ``"nearest"``: each weight rounded to nearest, ties to even. Either way the result is a
        plain integer matrix; only the choice of integers differs.
    outlier_scope:
        LLM.int8(): over which tokens a column's maximum decides that it is an outlier:
        ``"sequence"`` (default: each sentence on its own, so a sentence's result does not depend on
        the other sentences of the batch) or ``"batch"`` (the paper's choice: every token of the
        batch, so one sentence's outliers change the arithmetic of all the others).
    smooth:
        migration strength alpha of the static per-input-channel smoothing of the linear
        layers' inputs (SmoothQuant's rule ``f[k] = max|X[:, k]|**alpha / max|W[k, :]|**(1-alpha)``,
        calibrated): the producer's requantization divides channel k by ``f[k]`` (its dyadic
        multipliers are per channel) and the weights' input row k is multiplied by ``f[k]``
        before their per-output-channel quantization. 0 disables it; ``"auto"`` picks, per
        layer and linear input, the alpha in 0.5, 0.6, ..., 0.9 whose simulated W/A quantization of
        the tuning part of the calibration corpus (at most 1024 evenly spaced tokens, float32;
        never the evaluation text) gives the smallest output error.
    act_margin:
        ``act_quant="static"`` only: the linear inputs' per-tensor step maps ``act_margin *
        calibrated max`` (after smoothing) to the largest value, leaving room for inputs beyond the
        calibration set. ``"auto"`` (default) picks it per layer and linear input from 1.25,
        1.5, 2 (at least 1.25: headroom for unseen text), together with the smoothing alpha, on
        the tuning text. (Per-token inputs have no static step; their 16-bit pre-quantization
        register uses ``headroom``.)

    >>> IntConfig().describe().split(", ")[:3]
    ['w8a8: static linear', 'per-token activations', 'smoothing alpha auto']
    """

    name: str = "w8a8"
    linear: str = "static"
    gemm: str = "direct"
    mult_bits: int = 8
    acc_bits: int = 32
    act_bits: int = 8
    weight_bits: int = 8
    residual_bits: int = 16
    gelu_bits: int = 16
    prob_bits: int = 12
    headroom: float = 2.0
    overflow: str = "saturate"
    unpack_strategy: tuple[str, str] = ("col", "row")
    outlier_threshold: float = 6.0
    smooth: float | str = "auto"
    act_margin: float | str = "auto"
    act_quant: str = "per_token"
    outlier_scope: str = "sequence"
    weight_rounding: str = "gptq"

    def __post_init__(self) -> None:
        def bits(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"IntConfig.{name} must be an integer from {lo} to {hi}, got {v!r}")

        if self.linear not in _LINEARS:
            raise ConfigError(f"IntConfig.linear: unknown {self.linear!r}; valid: {', '.join(_LINEARS)}")
        if self.gemm not in _GEMMS:
            raise ConfigError(f"IntConfig.gemm: unknown {self.gemm!r}; valid: {', '.join(_GEMMS)}")
        if self.act_quant not in _ACT_QUANTS:
            raise ConfigError(f"IntConfig.act_quant: unknown {self.act_quant!r}; valid: {', '.join(_ACT_QUANTS)}")
        if self.weight_rounding not in ("nearest", "gptq"):
            raise ConfigError(f"IntConfig.weight_rounding: unknown {self.weight_rounding!r}; valid: nearest, gptq")
        if self.outlier_scope not in _OUTLIER_SCOPES:
            raise ConfigError(f"IntConfig.outlier_scope: unknown {self.outlier_scope!r}; valid: "
                              f"{', '.join(_OUTLIER_SCOPES)}")
        if self.overflow not in _POLICIES:
            raise ConfigError(f"IntConfig.overflow: unknown {self.overflow!r}; valid: {', '.join(_POLICIES)}")
        bits("mult_bits", 2, 16)
        bits("acc_bits", 16, 64)
        bits("act_bits", 2, 16)
        bits("weight_bits", 2, 16)
        bits("residual_bits", 8, 24)
        bits("gelu_bits", 8, 24)
        bits("prob_bits", 4, 15)
        if not (isinstance(self.headroom, (int, float)) and 1.0 <= float(self.headroom) <= 64.0):
            raise ConfigError(f"IntConfig.headroom must be a number from 1 to 64, got {self.headroom!r}")
        if (not isinstance(self.unpack_strategy, tuple) or len(self.unpack_strategy) != 2
                or any(s not in _STRATEGIES for s in self.unpack_strategy)):
            raise ConfigError(f"IntConfig.unpack_strategy must be a pair from {_STRATEGIES}, "
                              f"got {self.unpack_strategy!r}")
        if self.linear == "llm_int8" and self.act_bits < 9:
            raise ConfigError("IntConfig: llm_int8 needs act_bits > 8 (its outlier columns keep 16-bit values)")
        if not (isinstance(self.outlier_threshold, (int, float)) and self.outlier_threshold > 0):
            raise ConfigError(f"IntConfig.outlier_threshold must be > 0, got {self.outlier_threshold!r}")
        if self.act_margin != "auto" and not (isinstance(self.act_margin, (int, float))
                                              and not isinstance(self.act_margin, bool)
                                              and 0.25 <= float(self.act_margin) <= 16.0):
            raise ConfigError(f"IntConfig.act_margin must be a number from 0.25 to 16 or 'auto', got "
                              f"{self.act_margin!r}")
        if self.smooth != "auto" and not (isinstance(self.smooth, (int, float)) and not isinstance(self.smooth, bool)
                                          and 0.0 <= float(self.smooth) <= 1.0):
            raise ConfigError(f"IntConfig.smooth must be a number from 0 to 1 or 'auto', got {self.smooth!r}")

    def describe(self) -> str:
        """One line: ``name: linear, GEMMs, widths, policy``."""
        g = f"IM-Unpack onto int{self.mult_bits} ({'/'.join(self.unpack_strategy)})" if self.gemm == "unpack" \
            else "direct GEMMs"
        sm = "" if not self.smooth else (", smoothing alpha auto" if self.smooth == "auto"
                                         else f", smoothing alpha {self.smooth:g}")
        lin = (f"static linear, {'per-token' if self.act_quant == 'per_token' else 'per-tensor'} activations"
               if self.linear == "static" else f"llm.int8 linear (outliers per {self.outlier_scope})")
        return (f"{self.name}: {lin}{sm}, {g}, W{self.weight_bits} A{self.act_bits}, acc{self.acc_bits}, "
                f"probabilities {self.prob_bits} bits, residual {self.residual_bits} bits, overflow={self.overflow}")


#: The named configurations: ``w8a8`` (per-token activations), ``w8a8-static`` (one calibrated
#: step per tensor), ``w8a8-unpack4`` (``w8a8`` on int4 multipliers) and ``llm-int8``.
CONFIGURATIONS: dict[str, IntConfig] = {
    "w8a8": IntConfig(),
    "w8a8-static": IntConfig(name="w8a8-static", act_quant="static"),
    "w8a8-unpack4": IntConfig(name="w8a8-unpack4", gemm="unpack", mult_bits=4),
    # GPTQ's compensation would land partly on the outlier columns, whose int16 weights replace the int8 ones
    "llm-int8": IntConfig(name="llm-int8", linear="llm_int8", act_bits=16, smooth=0.0, weight_rounding="nearest"),
}
DEFAULT_CONFIG = "w8a8"


def get_config(config: IntConfig | str) -> IntConfig:
    """An :class:`IntConfig` by name (:data:`CONFIGURATIONS`), or the given one unchanged.

    >>> get_config("llm-int8").act_bits
    16
    """
    if isinstance(config, IntConfig):
        return config
    if isinstance(config, str) and config in CONFIGURATIONS:
        return CONFIGURATIONS[config]
    raise ConfigError(f"unknown configuration {config!r}; valid: {', '.join(CONFIGURATIONS)}")

