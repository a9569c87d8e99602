"""The optional dependencies of ``intsim sweep`` (the extra ``intsim[sweep]``), imported when needed:
pyarrow for the Parquet files, matplotlib for the plots (``dask.distributed`` is imported by
:mod:`.runner`)."""

from __future__ import annotations

from typing import Any

from ...core.errors import ModelNotInstalledError

__all__ = ["INSTALL", "pyarrow_modules", "pyplot"]

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
