"""The optional dependencies of ``intsim sweep`` (the extra ``intsim[sweep]``), imported when needed:
pyarrow for the Parquet files, matplotlib for the plots (``dask.distributed`` is imported by
:mod:`.runner`)."""

from __future__ import annotations

from typing import Any

from ...core.errors import ModelNotInstalledError

__all__ = ["INSTALL", "pyarrow_modules", "pyplot", "plot_ratio_vs_bits"]

INSTALL = "pip install 'intsim[sweep]' (dask[distributed] and pyarrow)"
"""How to install what the sweep needs, for the error messages."""


def pyarrow_modules() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``; ModelNotInstalledError saying how to install them if missing."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ModelNotInstalledError(f"intsim sweep needs pyarrow: {INSTALL}") from None
    return pa, pq


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg back-end, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_ratio_vs_bits(plt: Any, series: dict[str, dict[int, list[int]]], bits: list[int], title: str,
                       path: Any) -> None:
    """One line per label of ``series`` (label -> bits -> [unpacked MACs, MACs]): the unpack ratio
    against the bit-width, log scale, written to ``path`` (PNG without a software tag)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for label, pts in series.items():
        bs = sorted(pts)
        ax.plot(bs, [pts[b][0] / pts[b][1] if pts[b][1] else 1.0 for b in bs], marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xticks(bits)
    ax.set_xlabel("bit-width b")
    ax.set_ylabel("unpack ratio  sum M'K'N' / sum MKN")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
