"""Reading an ONNX model and checking the feeds given to it.

:func:`load_model` reads a ``.onnx`` file with the ``onnx`` package, resolves its external data
(the ``location`` of every externally stored tensor, relative to the model's folder, is checked
to exist and to hold the bytes it declares before anything is read) and runs ``onnx.checker``;
a model the checker rejects is a :class:`~intsim.core.errors.FileFormatError` naming the file
and the checker's message. :func:`check_feeds` checks a feed dictionary against the graph's
inputs: every input that is not an initializer must be fed, under its name, with the declared
element type (:class:`~intsim.core.errors.DTypeError`) and a shape that matches every fixed
dimension (:class:`~intsim.core.errors.ShapeError`; symbolic dimensions such as ``"N"`` must
agree between the inputs that share them). Unknown names are refused too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, DTypeError, FileFormatError, ModelNotInstalledError, ShapeError

__all__ = ["import_onnx", "load_model", "check_feeds", "graph_inputs", "onnx_dtype", "load_feeds"]


def import_onnx() -> Any:
    """The ``onnx`` module, or ModelNotInstalledError saying which extra brings it."""
    try:
        import onnx
    except ImportError:
        raise ModelNotInstalledError("the onnx package is not installed: pip install 'intsim[onnx]'") from None
    return onnx


def onnx_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype of an ONNX ``TensorProto`` element type (ConfigError for one without)."""
    onnx = import_onnx()
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        known = elem_type in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(elem_type) if known else elem_type
        raise ConfigError(f"ONNX element type {name} has no numpy dtype intsim can run") from None


def _external_entries(tensor: Any) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _all_tensors(graph: Any):
    """Every TensorProto of a graph and its subgraphs (initializers and constant attributes)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for g in attr.graphs:
                yield from _all_tensors(g)


def load_model(path: str | os.PathLike[str], *, check: bool = True) -> Any:
    """Read the ONNX model at ``path`` (an ``onnx.ModelProto``), its external data included.

    Raises FileFormatError when the file is missing or not an ONNX model, when an externally
    stored tensor's file is missing or shorter than its ``offset + length``, and (``check=True``)
    when ``onnx.checker.check_model`` rejects the model; each message names the file (and the
    tensor).
    """
    onnx = import_onnx()
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such ONNX model file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"{p}: not a readable ONNX model ({exc})") from None
    base = p.parent
    external = [t for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    for t in external:
        info = _external_entries(t)
        loc = info.get("location")
        if not loc:
            raise FileFormatError(f"{p}: tensor {t.name!r} is stored externally but names no location")
        f = (base / loc).resolve()
        if not f.is_file():
            raise FileFormatError(f"{p}: the external data of tensor {t.name!r} is missing: {f} does not exist")
        need = int(info.get("offset", 0)) + int(info.get("length", 0))
        if need and f.stat().st_size < need:
            raise FileFormatError(f"{p}: the external data of tensor {t.name!r} is truncated: {f} holds "
                                  f"{f.stat().st_size} bytes, the tensor needs bytes up to {need}")
    if external:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(base))
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FileFormatError(f"{p}: the model fails onnx.checker: {first}") from None
    return model


def graph_inputs(model: Any) -> list[Any]:
    """The graph inputs a caller must feed (``ValueInfoProto``), initializers excluded."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def check_feeds(model: Any, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The feeds as numpy arrays, checked against the graph's inputs (see the module docstring).

    Raises ConfigError (a missing or unknown name), DTypeError (an element type other than the
    declared one), ShapeError (a rank or fixed dimension other than the declared one, or a
    symbolic dimension bound to two different lengths); each message names the input.
    """
    onnx = import_onnx()
    declared = graph_inputs(model)
    names = [i.name for i in declared]
    unknown = sorted(set(feeds) - set(names))
    if unknown:
        raise ConfigError(f"feed {unknown[0]!r} is not an input of the graph; its inputs: {', '.join(names)}")
    out: dict[str, np.ndarray] = {}
    symbols: dict[str, tuple[str, int]] = {}
    for vi in declared:
        if vi.name not in feeds:
            raise ConfigError(f"graph input {vi.name!r} is not fed; feed every input: {', '.join(names)}")
        arr = np.asarray(feeds[vi.name])
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise ConfigError(f"graph input {vi.name!r} is not a tensor; intsim runs tensor inputs only")
        want = onnx_dtype(tt.elem_type)
        if arr.dtype != want:
            raise DTypeError(f"feed {vi.name!r} has dtype {arr.dtype}, the graph declares "
                             f"{onnx.TensorProto.DataType.Name(tt.elem_type)} ({want})")
        if tt.HasField("shape"):
            dims = list(tt.shape.dim)
            if arr.ndim != len(dims):
                raise ShapeError(f"feed {vi.name!r} has shape {arr.shape} (rank {arr.ndim}), the graph declares "
                                 f"rank {len(dims)}")
            for axis, (d, n) in enumerate(zip(dims, arr.shape, strict=True)):
                if d.HasField("dim_value") and d.dim_value != n:
                    raise ShapeError(f"feed {vi.name!r} has length {n} along axis {axis}, the graph declares "
                                     f"{d.dim_value} (shape {arr.shape})")
                if d.HasField("dim_param") and d.dim_param:
                    seen = symbols.setdefault(d.dim_param, (vi.name, n))
                    if seen[1] != n:
                        raise ShapeError(f"feed {vi.name!r} has length {n} along axis {axis}, but dimension "
                                         f"{d.dim_param!r} is {seen[1]} in feed {seen[0]!r}")
        out[vi.name] = arr
    return out


def load_feeds(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (FileFormatError for a missing or unreadable one)."""
    import zipfile

    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p}: no such feeds file (an .npz of input name -> array)")
    if not p.is_file():
        raise FileFormatError(f"{p}: not a regular file (the feeds must be an .npz of input name -> array)")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"{p}: not a readable .npz file ({exc})") from None
