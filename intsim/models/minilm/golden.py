"""Golden vectors: one integer MiniLM encoder layer as a case of the golden suite (operator
``minilm_int.encoder_layer``, :mod:`intsim.golden.minilm_op`)."""

from __future__ import annotations

from ...core.deprecation import renamed_keyword
from .config import DEFAULT_CONFIG
from .nonlinear import DEFAULT_NONLINEAR

__all__ = ["golden_spec"]


@renamed_keyword("profile", "nonlinear")
def golden_spec(configuration: str = DEFAULT_CONFIG, nonlinear: str = DEFAULT_NONLINEAR, layer: int = 0,
                tokens: int = 16, seed: int = 7) -> str:
    """TOML text of a one-case golden suite for one encoder layer (for :func:`intsim.golden.parse_spec`).

    >>> print(golden_spec(tokens=8).splitlines()[5])
    name = "minilm_w8a8_ibert_layer0_T8"
    >>> print(golden_spec(tokens=8).splitlines()[-1])
    config = { configuration = "w8a8", nonlinear = "ibert", layer = 0 }
    """
    name = f"minilm_{configuration}_{nonlinear}_layer{layer}_T{tokens}".replace("-", "_")
    return (f'[suite]\nname = "minilm_encoder_layer"\nseed = {seed}\n\n[[case]]\nname = "{name}"\n'
            f'operator = "minilm_int.encoder_layer"\n'
            f'description = "integer MiniLM encoder layer {layer}, {configuration}, nonlinear {nonlinear}, '
            f'one sentence of {tokens} tokens (heavy-tailed residual-stream input)"\n'
            f"shape = {{ T = {tokens} }}\n"
            f'config = {{ configuration = "{configuration}", nonlinear = "{nonlinear}", layer = {layer} }}\n')
