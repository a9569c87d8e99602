"""A damaged numba cache entry of an intsim kernel is reported, discarded and recompiled.

The subprocess tests use a private ``NUMBA_CACHE_DIR`` (never the repository's cache): one cold
run compiles ``_kernels._gemm_int64`` (an int32 matmul into a 64-bit accumulator whose products
only int64 arithmetic holds exactly; the fastest GEMM kernel to compile), and every case starts
from a copy of that healthy cache, damages one file, then runs the same computation twice in new
processes: the first must succeed with the exact result and one stderr line naming the damaged
file, the second must be silent (the cache healed).
By default each file kind (``.nbi``, ``.nbc``) is truncated and bit-flipped in the middle; with
``INTSIM_EXHAUSTIVE=1`` every file is damaged at several offsets.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intsim.core import jitcache as _jitcache

A = [[2**31 - 1, 3], [-(2**31), -7]]
B = [[2**31 - 1, -5], [11, 2**31 - 1]]

PROBE = f"""
import numpy as np, intsim
A = np.array({A}, np.int32)
B = np.array({B}, np.int32)
r = intsim.matmul(A, B, intsim.Datapath(a="int32", b="int32", acc_bits=64))
print(r.values.tolist(), int(r.n_overflow))
"""

CORRUPT = "intsim: discarded a corrupt numba cache entry "
NOTICE = "intsim: compiling numba kernels ("
EXHAUSTIVE = os.environ.get("INTSIM_EXHAUSTIVE") == "1"


def _expected() -> str:
    """The exact products in Python ints (no output overflows 64 bits)."""
    vals = [[sum(a * B[k][j] for k, a in enumerate(row)) for j in range(len(B[0]))] for row in A]
    return f"{vals} 0"


def _run(cache: Path, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("INTSIM_QUIET", "NUMBA_DEBUG_CACHE")}
    e.update(NUMBA_CACHE_DIR=str(cache), **env)
    return subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True, text=True, timeout=600)


def _ok(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == _expected(), out.stdout


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """A numba cache root holding the compiled entry of the probe (written by a cold run)."""
    root = tmp_path_factory.mktemp("healthy-cache")
    first = _run(root)
    _ok(first)
    assert first.stderr.count(NOTICE) == 1, first.stderr  # the cold run announces its compile, once
    files = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert any(n.endswith(".nbi") for n in files) and any(n.endswith(".nbc") for n in files), files
    return root


def _copy(healthy: Path, tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    shutil.copytree(healthy, root)
    return root


def _damage(path: Path, how: str, frac: float) -> None:
    data = bytearray(path.read_bytes())
    i = min(int(len(data) * frac), len(data) - 1)
    if how == "truncate":
        del data[i:]
    else:
        data[i] ^= 0x10
    path.write_bytes(bytes(data))


def _cases():
    fracs = (0.0, 0.01, 0.25, 0.5, 0.75, 0.999) if EXHAUSTIVE else (0.5,)
    return [(kind, how, f) for kind in (".nbi", ".nbc") for how in ("truncate", "flip") for f in fracs]


@pytest.mark.parametrize(("kind", "how", "frac"), _cases())
def test_damaged_cache_file_is_discarded_and_recompiled(healthy, tmp_path, kind, how, frac):
    root = _copy(healthy, tmp_path)
    targets = sorted(p for p in root.rglob(f"*{kind}"))
    assert targets
    for target in targets:
        _damage(target, how, frac)
        bystanders = [target.parent / n for n in ("unrelated.1.nbc", "unrelated.nbi", "notes.txt")]
        for p in bystanders:
            p.write_bytes(b"not intsim's")
        second = _run(root)
        _ok(second)
        lines = [ln for ln in second.stderr.splitlines() if ln.startswith(CORRUPT)]
        assert len(lines) == 1 and str(target) in lines[0] and lines[0].endswith("; recompiling"), second.stderr
        assert NOTICE in second.stderr  # the entry really was recompiled
        assert all(p.read_bytes() == b"not intsim's" for p in bystanders)  # nothing else was deleted
        third = _run(root)
        _ok(third)
        assert third.stderr == "", third.stderr  # healed: loaded from the cache, nothing printed


def test_payload_llvm_refuses_is_discarded(healthy, tmp_path):
    """A data file with a valid checksum whose bitcode LLVM cannot parse (the error numba raises when
    it rebuilds the library) is a miss too; INTSIM_QUIET silences the compile notice, not this line."""
    root = _copy(healthy, tmp_path)
    (target,) = root.rglob("*.nbc")
    rewrite = f"""
import hashlib, pickle
from intsim.core import jitcache as j
from numba.core.serialize import dumps
p = {str(target)!r}
raw = open(p, "rb").read()
key, data = pickle.loads(raw[len(j._DATA_MAGIC) + 32:])
name, kind, (obj, bitcode) = data[0]
assert kind == "object", kind
payload = dumps((key, ((name, kind, (obj, b"BC\\xc0\\xde not bitcode")),) + tuple(data[1:])))
open(p, "wb").write(j._DATA_MAGIC + hashlib.sha256(payload).digest() + payload)
"""
    subprocess.run([sys.executable, "-c", rewrite], check=True, env=dict(os.environ, NUMBA_CACHE_DIR=str(root)))
    second = _run(root, INTSIM_QUIET="1")
    _ok(second)
    assert second.stderr.startswith(CORRUPT + str(target)), second.stderr
    assert "could not be loaded" in second.stderr and NOTICE not in second.stderr, second.stderr
    third = _run(root)
    _ok(third)
    assert third.stderr == "", third.stderr


# ---- the file format, in-process (no compile) --------------------------------------------------
BASE = "mod.kernel-12.py311"
KEY = (("int64",), ("x86_64", "cpu", ""), ("code", "closure"))


def _cache_file(d: Path, stamp=("src", "deps")) -> _jitcache.CheckedIndexDataCacheFile:
    return _jitcache.CheckedIndexDataCacheFile(cache_path=str(d), filename_base=BASE, source_stamp=stamp)


def test_checked_files_round_trip_and_stale_entries_are_misses(tmp_path):
    cf = _cache_file(tmp_path)
    assert cf.load(KEY) is None
    cf.save(KEY, {"payload": 1})
    cf.save(("other",), [2])
    assert cf.load(KEY) == {"payload": 1} and cf.load(("other",)) == [2]
    assert cf.last_data_path == str(tmp_path / f"{BASE}.2.nbc")
    assert _cache_file(tmp_path, stamp=("edited", "deps")).load(KEY) is None  # source changed: stale
    # a data file holding another key (left over, or being rewritten) is a miss, not that kernel
    (tmp_path / f"{BASE}.1.nbc").write_bytes((tmp_path / f"{BASE}.2.nbc").read_bytes())
    assert cf.load(KEY) is None
    assert (tmp_path / f"{BASE}.1.nbc").exists()  # not corrupt: kept, overwritten by the next save


def test_numba_format_index_is_stale_not_corrupt(tmp_path, capsys):
    """An index in numba's own format (written before checksums) is silently ignored and rewritten."""
    import numba

    with open(tmp_path / f"{BASE}.nbi", "wb") as f:
        pickle.dump(numba.__version__, f, protocol=-1)
        f.write(pickle.dumps((("src", "deps"), {KEY: f"{BASE}.1.nbc"})))
    (tmp_path / f"{BASE}.1.nbc").write_bytes(pickle.dumps(("not", "checked")))
    cf = _cache_file(tmp_path)
    assert cf.load(KEY) is None
    assert capsys.readouterr().err == ""
    cf.save(KEY, "fresh")
    assert cf.load(KEY) == "fresh"


def _rewrite_index(path: Path, entry) -> None:
    """An index with a valid checksum around ``entry`` (as if written by a buggy writer)."""
    head = pickle.dumps(_jitcache._FORMAT, protocol=-1)
    payload = pickle.dumps(entry)
    digest = hashlib.sha256(head + _jitcache._INDEX_MAGIC + payload).digest()
    path.write_bytes(head + _jitcache._INDEX_MAGIC + digest + payload)


@pytest.mark.parametrize("entry", [
    ("src", "deps"),  # not (stamp, overloads)
    (("src", "deps"), {}, "extra"),
    (("src", "deps"), ["not", "a dict"]),
    (("src", "deps"), {KEY: "../../etc/passwd"}),  # a data name outside the entry's files
    (("src", "deps"), {KEY: 7}),
])
def test_index_with_wrong_structure_is_corrupt(tmp_path, capsys, entry):
    cf = _cache_file(tmp_path)
    cf.save(KEY, "x")
    bystanders = [tmp_path / n for n in (f"{BASE}.nbc", f"{BASE}x.1.nbc", f"{BASE}.1.nbc.tmp", "other.1.nbc",
                                         "other.nbi", f"x{BASE}.1.nbc")]
    for p in bystanders:
        p.write_bytes(b"not ours")
    _rewrite_index(tmp_path / f"{BASE}.nbi", entry)
    assert cf.load(KEY) is None
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{CORRUPT}{tmp_path / (BASE + '.nbi')} (index has the wrong structure); recompiling"], err
    # the index and its numbered data file went; nothing else was touched
    assert not (tmp_path / f"{BASE}.nbi").exists() and not (tmp_path / f"{BASE}.1.nbc").exists()
    assert all(p.read_bytes() == b"not ours" for p in bystanders)
    cf.save(KEY, "healed")
    assert cf.load(KEY) == "healed"


@pytest.mark.parametrize("which", ["index", "data"])
@pytest.mark.parametrize("how", ["empty", "truncate", "flip-first", "flip-last"])
def test_damaged_files_in_process(tmp_path, capsys, which, how):
    cf = _cache_file(tmp_path)
    cf.save(KEY, list(range(100)))
    path = tmp_path / (f"{BASE}.nbi" if which == "index" else f"{BASE}.1.nbc")
    data = bytearray(path.read_bytes())
    if how == "empty":
        data = bytearray()
    elif how == "truncate":
        del data[len(data) // 2:]
    else:
        data[0 if how == "flip-first" else -1] ^= 0x01
    path.write_bytes(bytes(data))
    assert cf.load(KEY) is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"{CORRUPT}{path} (") and err[0].endswith("); recompiling"), err
    assert not path.exists()
    cf.save(KEY, "healed")
    assert cf.load(KEY) == "healed"
    assert capsys.readouterr().err == ""


def test_intsim_kernels_use_the_healing_cache():
    from intsim import ibert

    kernel = ibert._k_softmax
    assert isinstance(kernel._cache, _jitcache.HealingFunctionCache)
    assert isinstance(kernel._cache._cache_file, _jitcache.CheckedIndexDataCacheFile)
