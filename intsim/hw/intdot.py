"""Exact 8-bit integer GEMM engines on the CPU's integer dot-product instructions (internal).

:func:`intsim.matmul` computes the outputs its bound proves cannot overflow by the fastest
exact method; for operands of 8 bits or fewer that is one of the engines here:

``"vnni512"``
    AVX-512 VNNI ``VPDPBUSD zmm`` (16 int32 lanes), register tile 8 rows x 48 columns.
``"vnni256"``
    AVX-VNNI (VEX) or AVX-512 VNNI+VL ``VPDPBUSD ymm`` (8 int32 lanes), tile 4 rows x 24
    columns (16 vector registers).

``VPDPBUSD`` (Intel SDM, "VPDPBUSD - Multiply and Add Unsigned and Signed Bytes") adds to
each int32 lane the four products ``zext(a_byte) * sext(b_byte)`` of that lane, without
intermediate saturation and with the final 32-bit add wrapping (only ``VPDPBUSDS``
saturates; ``VPMADDUBSW`` saturates int16 pair sums and is never used).

Exactness, by construction
--------------------------
* Operand shift: A (any values in [-128, 255] of one of the ranges [0, 255] or [-128, 127])
  becomes ``Au = A + ca`` in [0, 255] (``ca`` = 0 or 128); B becomes ``Bs = B - cb`` in
  [-128, 127] (``cb`` = 0 or 128). Then, exactly in integers,
  ``A @ B = Au @ Bs - ca * colsum(Bs) + cb * rowsum(A)``; the two correction terms are
  formed in int64 (|terms| <= 128 * 255 * K < 2**63 for every K numpy can hold).
* int32 lanes: one lane of ``Au @ Bs`` over a block of at most :data:`K_BLOCK` = 65536
  consecutive k is a sum of at most 65536 products in [-32640, 32385], so every partial
  sum lies in [-2139095040, 2122383360], inside int32: the lane never wraps. Longer K is
  split into such blocks and the block results are added in int64.
* Padding: K is padded to a multiple of 4, and M and N to whole tiles, with zero bytes,
  whose products are 0.
* The operation order inside a lane does not matter: integer addition without overflow is
  associative.

Engine choice
-------------
An engine is *available* when the JIT's target CPU has the instruction set extension
(checked before any code using the instruction is compiled) and the engine passed its
known-answer self-test at first use (operands 255 x 127 whose pair sums saturate int16,
-128 operands, K not a multiple of 4, partial tiles), compared with int64 arithmetic.

:func:`gemm_engine` (a context manager) or the environment variable ``INTSIM_GEMM_ENGINE``
selects the engines: ``"auto"`` (default: the fastest available), ``"float"`` (no integer
engine: the float BLAS / int64 paths of :func:`intsim.matmul` only), or a comma-separated
list of engine names, tried in order (forcing an engine this CPU lacks raises
:class:`~intsim.core.errors.ConfigError`). Operands an engine cannot serve (wider than
8 bits) always take the float / int64 paths. The engine used is named by
:attr:`intsim.GemmResult.method`.

>>> import numpy as np
>>> from intsim import Datapath, IntType, matmul
>>> A = np.full((64, 64), 255); B = np.full((64, 64), 127)  # 255*127 + 255*127 saturates int16
>>> dp = Datapath(a=IntType(8, signed=False), b=IntType(8), acc_bits=32)
>>> with gemm_engine(*available_engines()):  # an integer engine if this CPU has one
...     r = matmul(A, B, dp)
>>> int(r.values[0, 0]) == 64 * 255 * 127, r.method in ("float32-blas", *ENGINES)
(True, True)
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config
from numba.extending import intrinsic

from ..core.errors import ConfigError

__all__ = ["ENGINES", "ENV_VAR", "K_BLOCK", "available_engines", "cpu_engines", "engine_product",
           "gemm_engine", "selected_engines"]

#: The integer engines, fastest first.
ENGINES: tuple[str, ...] = ("vnni512", "vnni256")
#: The environment variable read when no :func:`gemm_engine` context is active.
ENV_VAR = "INTSIM_GEMM_ENGINE"
#: The longest K block accumulated in int32 lanes (see the module docstring: no lane can wrap).
K_BLOCK = 65536

#: Register tiles (rows MR, int32 lanes per vector, vectors NV per row): NR = lanes * NV columns.
_TILES = {"vnni512": (8, 16, 3), "vnni256": (4, 8, 3)}
#: k4 steps (4 k each) per cache block of the packed panels.
_KC4 = 128
#: Row micro-panels per parallel work item.
_ROW_PANELS = 8
#: In "auto", calls below this many MACs keep the float path (the engine's fixed cost dominates).
_AUTO_MIN_MACS = 1 << 15

# llvm feature names (llvmlite.binding.get_host_cpu_features) each engine needs.
_FEATURES = {"vnni512": ({"avx512f", "avx512bw", "avx512vnni"},),
             "vnni256": ({"avxvnni"}, {"avx512f", "avx512vl", "avx512vnni"})}


# ---------------------------------------------------------------------------------------------
# CPU features
# ---------------------------------------------------------------------------------------------

def _target_features() -> set[str]:
    """The llvm features numba's JIT compiles for: the host's, unless NUMBA_CPU_NAME names another CPU
    (then only the features listed in NUMBA_CPU_FEATURES count)."""
    name = config.CPU_NAME
    if name and name != "host":
        feats = config.CPU_FEATURES or ""
        return {f[1:] for f in feats.split(",") if f.startswith("+")}
    try:
        import llvmlite.binding as ll

        return {k for k, v in ll.get_host_cpu_features().items() if v}
    except Exception:  # pragma: no cover - llvmlite without host feature query
        return set()


_CPU_ENGINES: tuple[str, ...] | None = None


def cpu_engines() -> tuple[str, ...]:
    """The engines whose instructions the JIT target CPU has (before any self-test), fastest first."""
    global _CPU_ENGINES
    if _CPU_ENGINES is None:
        feats = _target_features()
        _CPU_ENGINES = tuple(e for e in ENGINES if any(req <= feats for req in _FEATURES[e]))
    return _CPU_ENGINES


# ---------------------------------------------------------------------------------------------
# The micro-kernel: one MR x NR int32 tile, C += Au_panel @ Bs_panel, in LLVM IR
# ---------------------------------------------------------------------------------------------

def _make_ukernel(lanes: int, mr: int, nv: int):
    """An intrinsic ``uk(a_addr, lda, b_addr, c_addr, k4, ldc)``: for k4 steps, the int32 tile at c_addr
    (row stride ldc elements, mr rows, nv*lanes columns) += A times the packed B panel, one VPDPBUSD per
    row and vector. A: mr rows of unsigned bytes at a_addr, row stride lda bytes (per step, each row's
    next 4 bytes, broadcast to every lane); B panel: per step nv*lanes int32 words, each the 4 signed
    bytes of 4 consecutive k of one column."""
    i32 = ir.IntType(32)
    i64 = ir.IntType(64)
    vec = ir.VectorType(i32, lanes)
    fname = f"llvm.x86.avx512.vpdpbusd.{32 * lanes}"
    nr = nv * lanes

    @intrinsic
    def uk(typingctx, a_addr, lda, b_addr, c_addr, k4, ldc):
        sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            a_i, lda_i, b_i, c_i, n4, ld = args
            mod = builder.module
            fn = mod.globals.get(fname)
            if fn is None:
                fn = ir.Function(mod, ir.FunctionType(vec, [vec, vec, vec]), name=fname)
            p32 = ir.PointerType(i32)
            pvec = ir.PointerType(vec)
            a_rows = [builder.inttoptr(builder.add(a_i, builder.mul(lda_i, ir.Constant(i64, r))), p32)
                      for r in range(mr)]
            b_p = builder.inttoptr(b_i, pvec)
            c_p = builder.inttoptr(c_i, p32)
            accs0 = []
            for r in range(mr):
                for v in range(nv):
                    off = builder.add(builder.mul(ld, ir.Constant(i64, r)), ir.Constant(i64, v * lanes))
                    ptr = builder.bitcast(builder.gep(c_p, [off], source_etype=i32), pvec)
                    accs0.append(builder.load(ptr, align=4, typ=vec))
            pre = builder.block
            loop = builder.append_basic_block("vnni_loop")
            done = builder.append_basic_block("vnni_done")
            builder.cbranch(builder.icmp_signed(">", n4, ir.Constant(i64, 0)), loop, done)
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(ir.Constant(i64, 0), pre)
            phis = []
            for a0 in accs0:
                p = builder.phi(vec)
                p.add_incoming(a0, pre)
                phis.append(p)
            boff = builder.mul(k, ir.Constant(i64, nv))
            bvs = [builder.load(builder.gep(b_p, [builder.add(boff, ir.Constant(i64, v))], source_etype=vec),
                                align=4, typ=vec) for v in range(nv)]
            zero_mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
            new = []
            for r in range(mr):
                aw = builder.load(builder.gep(a_rows[r], [k], source_etype=i32), align=4, typ=i32)
                splat = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, ir.Undefined), aw,
                                                                      ir.Constant(i32, 0)),
                                               ir.Constant(vec, ir.Undefined), zero_mask)
                for v in range(nv):
                    new.append(builder.call(fn, [phis[r * nv + v], splat, bvs[v]]))
            k_next = builder.add(k, ir.Constant(i64, 1))
            end = builder.block
            k.add_incoming(k_next, end)
            for p, nval in zip(phis, new, strict=True):
                p.add_incoming(nval, end)
            builder.cbranch(builder.icmp_signed("<", k_next, n4), loop, done)
            builder.position_at_end(done)
            outs = []
            for idx, a0 in enumerate(accs0):
                ph = builder.phi(vec)
                ph.add_incoming(a0, pre)
                ph.add_incoming(new[idx], end)
                outs.append(ph)
            for r in range(mr):
                for v in range(nv):
                    off = builder.add(builder.mul(ld, ir.Constant(i64, r)), ir.Constant(i64, v * lanes))
                    ptr = builder.bitcast(builder.gep(c_p, [off], source_etype=i32), pvec)
                    builder.store(outs[r * nv + v], ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    uk.tile = (mr, nr)
    return uk


_uk512 = _make_ukernel(lanes=_TILES["vnni512"][1], mr=_TILES["vnni512"][0], nv=_TILES["vnni512"][2])
_uk256 = _make_ukernel(lanes=_TILES["vnni256"][1], mr=_TILES["vnni256"][0], nv=_TILES["vnni256"][2])
_MR512, _MR256 = _TILES["vnni512"][0], _TILES["vnni256"][0]


# ---------------------------------------------------------------------------------------------
# Packing and the parallel drivers
# ---------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _pack_b(Bu, Bs, nr, out, colsum, q0, q1):
    """out[q, s, c] = the 4 bytes Bu[4*s + t, q*nr + c], t = 0..3, as one little-endian word (0 right of
    the last column): column panels q0 to q1 - 1 of nr columns; colsum[j] = sum_k Bs[k, j]. Bu and Bs
    are the same (4*S, N) bytes viewed unsigned and signed."""
    N = Bs.shape[1]
    S = out.shape[1]
    for q in range(q0, q1):
        j0 = q * nr
        w = min(nr, N - j0)
        t = np.zeros(nr, np.int64)
        for s in range(S):
            r0, r1, r2, r3 = Bu[4 * s], Bu[4 * s + 1], Bu[4 * s + 2], Bu[4 * s + 3]
            g0, g1, g2, g3 = Bs[4 * s], Bs[4 * s + 1], Bs[4 * s + 2], Bs[4 * s + 3]
            o = out[q, s]
            for c in range(w):
                j = j0 + c
                o[c] = (np.uint32(r0[j]) | (np.uint32(r1[j]) << np.uint32(8)) | (np.uint32(r2[j]) << np.uint32(16))
                        | (np.uint32(r3[j]) << np.uint32(24)))
                t[c] += np.int64(g0[j]) + np.int64(g1[j]) + np.int64(g2[j]) + np.int64(g3[j])
            for c in range(w, nr):
                o[c] = 0
        for c in range(w):
            colsum[j0 + c] = t[c]


@njit(cache=True, inline="always")
def _epilogue(Cw, out, rowterm, colterm, i0, j0, first):
    """Inside out: out[i0 + r, j0 + c] = Cw[r, c] + rowterm[i0 + r] + colterm[j0 + c] if first (the
    first K block), else out[i0 + r, j0 + c] += Cw[r, c]; in int64."""
    M, N = out.shape
    h = min(Cw.shape[0], M - i0)
    w = min(Cw.shape[1], N - j0)
    for r in range(h):
        i = i0 + r
        if first:
            ri = rowterm[i]
            for c in range(w):
                out[i, j0 + c] = np.int64(Cw[r, c]) + ri + colterm[j0 + c]
        else:
            for c in range(w):
                out[i, j0 + c] += np.int64(Cw[r, c])


@njit(cache=True, nogil=True)
def _drive512(Au, Bp, out, rowterm, colterm, kblock4, w0, w1):
    """out (int64, M x N) = Au @ Bp + rowterm[:, None] + colterm[None, :] with 8 x 48 zmm tiles, for
    the work items w0 to w1 - 1 (item w: column panel w // rb, row panels 8 * (w % rb) onward, rb row
    blocks); the k4 steps in blocks of kblock4 accumulated in int32 tiles, the blocks added in int64."""
    Q, S, nr = Bp.shape
    mr = _MR512
    P = Au.shape[0] // mr
    lda = Au.shape[1]
    a0, b0 = np.int64(Au.ctypes.data), np.int64(Bp.ctypes.data)
    rb = (P + _ROW_PANELS - 1) // _ROW_PANELS
    for w in range(w0, w1):
        q = w // rb
        pb = (w % rb) * _ROW_PANELS
        pe = min(pb + _ROW_PANELS, P)
        Cw = np.empty(((pe - pb) * mr, nr), np.int32)
        c0 = np.int64(Cw.ctypes.data)
        for s0 in range(0, S, kblock4):
            s1 = min(S, s0 + kblock4)
            Cw[:] = 0
            for kb in range(s0, s1, _KC4):
                n4 = min(_KC4, s1 - kb)
                b_addr = b0 + (q * S + kb) * nr * 4
                for p in range(pb, pe):
                    _uk512(a0 + p * mr * lda + kb * 4, lda, b_addr, c0 + (p - pb) * mr * nr * 4, n4, nr)
            _epilogue(Cw, out, rowterm, colterm, pb * mr, q * nr, s0 == 0)


@njit(cache=True, nogil=True)
def _drive256(Au, Bp, out, rowterm, colterm, kblock4, w0, w1):
    """As :func:`_drive512` with 4 x 24 ymm tiles."""
    Q, S, nr = Bp.shape
    mr = _MR256
    P = Au.shape[0] // mr
    lda = Au.shape[1]
    a0, b0 = np.int64(Au.ctypes.data), np.int64(Bp.ctypes.data)
    rb = (P + _ROW_PANELS - 1) // _ROW_PANELS
    for w in range(w0, w1):
        q = w // rb
        pb = (w % rb) * _ROW_PANELS
        pe = min(pb + _ROW_PANELS, P)
        Cw = np.empty(((pe - pb) * mr, nr), np.int32)
        c0 = np.int64(Cw.ctypes.data)
        for s0 in range(0, S, kblock4):
            s1 = min(S, s0 + kblock4)
            Cw[:] = 0
            for kb in range(s0, s1, _KC4):
                n4 = min(_KC4, s1 - kb)
                b_addr = b0 + (q * S + kb) * nr * 4
                for p in range(pb, pe):
                    _uk256(a0 + p * mr * lda + kb * 4, lda, b_addr, c0 + (p - pb) * mr * nr * 4, n4, nr)
            _epilogue(Cw, out, rowterm, colterm, pb * mr, q * nr, s0 == 0)


_DRIVERS = {"vnni512": _drive512, "vnni256": _drive256}


def _run(engine: str, A: np.ndarray, B: np.ndarray, ca: int, cb: int) -> np.ndarray:
    """Exact int64 ``A @ B`` with engine ``engine``; ``A + ca`` in [0, 255], ``B - cb`` in [-128, 127]."""
    M, K = A.shape
    N = B.shape[1]
    mr, lanes, nv = _TILES[engine]
    nr = lanes * nv
    P, Q, S = -(-M // mr), -(-N // nr), -(-K // 4)
    # Au = A + ca as bytes: A mod 256, then (for ca = 128) XOR 0x80 maps [-128, 127] onto [0, 255].
    # Rows padded to whole tiles, K to a multiple of 4, with zero bytes.
    Au = np.zeros((P * mr, 4 * S), np.uint8)
    Au[:M, :K] = A.view(np.uint8) if A.dtype == np.int8 else A
    if ca:
        np.bitwise_xor(Au[:M, :K], 0x80, out=Au[:M, :K])
    # Bs = B - cb as signed bytes: B mod 256, then (for cb = 128) XOR 0x80 maps [0, 255] onto [-128, 127].
    Bs = np.zeros((4 * S, N), np.int8)
    Bs[:K] = B.view(np.int8) if B.dtype == np.uint8 else B
    if cb:
        np.bitwise_xor(Bs[:K], np.int8(-128), out=Bs[:K])
    Bp = np.empty((Q, S, nr), np.uint32)
    colsum = np.empty(N, np.int64)
    Bu = Bs.view(np.uint8)
    _parallel(lambda q0, q1: _pack_b(Bu, Bs, nr, Bp, colsum, q0, q1), Q, K * N)
    # A @ B = Au @ Bs - ca * colsum(Bs) + cb * rowsum(A), rowsum(A) = rowsum(Au) - ca * K
    colterm = colsum * -ca
    rowterm = (Au[:M].sum(axis=1, dtype=np.int64) - ca * K) * cb if cb else np.zeros(M, np.int64)
    out = np.empty((M, N), np.int64)
    drive = _DRIVERS[engine]
    n_items = -(-P // _ROW_PANELS) * Q
    _parallel(lambda w0, w1: drive(Au, Bp, out, rowterm, colterm, K_BLOCK // 4, w0, w1), n_items, M * K * N)
    return out


#: Work below this size (MACs or bytes) runs in the calling thread only.
_PARALLEL_MIN = 1 << 22
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> int:
    try:
        return max(1, int(numba.get_num_threads()))
    except Exception:  # pragma: no cover
        return 1


def _parallel(fn, n: int, work: int) -> None:
    """fn(i0, i1) over chunks covering range(n), on the calling thread and up to get_num_threads() - 1
    pool threads (numba kernels release the GIL). Chunks are taken dynamically from a shared counter,
    and the call returns as soon as every chunk is done: a pool thread that the OS schedules late
    finds no chunk left, so nobody waits for it (a static split would)."""
    global _pool
    t = _threads()
    if t == 1 or work < _PARALLEL_MIN or n < 2:
        fn(0, n)
        return
    n_chunks = min(n, 8 * t)
    bounds = [n * c // n_chunks for c in range(n_chunks + 1)]
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "error": None}
    finished = threading.Event()

    def worker() -> None:
        while True:
            with lock:
                c = state["next"]
                if c >= n_chunks or state["error"] is not None:
                    return
                state["next"] = c + 1
            try:
                fn(bounds[c], bounds[c + 1])
            except BaseException as exc:  # pragma: no cover - re-raised in the caller
                with lock:
                    state["error"] = exc
                finished.set()
                return
            with lock:
                state["done"] += 1
                if state["done"] == n_chunks:
                    finished.set()

    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, t - 1), thread_name_prefix="intsim-gemm")
        pool = _pool
    for _ in range(t - 1):
        pool.submit(worker)
    worker()
    finished.wait()
    if state["error"] is not None:
        raise state["error"]


# ---------------------------------------------------------------------------------------------
# Self-test, selection
# ---------------------------------------------------------------------------------------------

_lock = threading.Lock()
_TESTED: dict[str, bool] = {}
_local = threading.local()


def _self_test_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(21)
    cases = []
    # 255 * 127 + 255 * 127 = 64770 saturates an int16 pair sum (VPMADDUBSW would give 32767); K = 6.
    cases.append((np.full((3, 6), 255, np.int64), np.full((6, 5), 127, np.int64)))
    cases.append((np.full((2, 5), 255, np.int64), np.full((5, 3), -128, np.int64)))
    A = rng.integers(-128, 128, (13, 37))
    B = rng.integers(-128, 128, (37, 70))
    A[0] = -128
    B[:, 0] = -128
    cases.append((A, B))
    cases.append((rng.integers(0, 256, (17, 131)), rng.integers(0, 256, (131, 50))))
    return cases


def _self_test(engine: str) -> bool:
    """The known-answer test of ``engine`` against int64 arithmetic (see the module docstring)."""
    for A, B in _self_test_cases():
        ca = 128 if A.min() < 0 else 0
        cb = 128 if B.max() > 127 else 0
        if not np.array_equal(_run(engine, A, B, ca, cb), A @ B):
            warnings.warn(f"intsim: the {engine} integer GEMM engine failed its known-answer self-test on this "
                          "CPU; it is disabled and the float paths are used", RuntimeWarning, stacklevel=3)
            return False
    return True


def available_engines() -> tuple[str, ...]:
    """The engines this CPU has and that passed their self-test (running it at first call), fastest first."""
    return tuple(e for e in cpu_engines() if _usable(e))


def _usable(engine: str) -> bool:
    if engine not in cpu_engines():
        return False
    with _lock:
        if engine not in _TESTED:
            _TESTED[engine] = _self_test(engine)
        return _TESTED[engine]


def _parse(spec: str) -> tuple[str, ...] | None:
    """The engine list of a selection string (None: "auto")."""
    s = spec.strip().lower()
    if s in ("", "auto"):
        return None
    if s in ("float", "none", "blas"):
        return ()
    names = tuple(n.strip() for n in s.split(",") if n.strip())
    for n in names:
        if n not in ENGINES:
            raise ConfigError(f"unknown GEMM engine {n!r} (in {spec!r}); valid: auto, float, "
                              f"or a comma-separated list of {', '.join(ENGINES)}")
    return names


def selected_engines() -> tuple[str, ...] | None:
    """The engine selection in effect: None for ``"auto"``, else the tuple of forced engines (empty:
    ``"float"``). The innermost :func:`gemm_engine` context wins over ``INTSIM_GEMM_ENGINE``."""
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    return _parse(os.environ.get(ENV_VAR, "auto"))


@contextlib.contextmanager
def gemm_engine(*names: str) -> Iterator[None]:
    """Within the ``with`` block (this thread), :func:`intsim.matmul` uses only the named engines:
    ``gemm_engine("auto")``, ``gemm_engine("float")`` (no integer engine), or engine names from
    :data:`ENGINES` tried in order. Forcing an engine this CPU lacks raises ConfigError here.

    >>> import numpy as np, intsim
    >>> with gemm_engine("float"):
    ...     intsim.matmul(np.array([[1, 2]]), np.array([[3], [4]])).method
    'float32-blas'
    """
    sel = _parse(",".join(names)) if names else None
    if sel:
        missing = [n for n in sel if n not in cpu_engines()]
        if missing:
            raise ConfigError(f"GEMM engine {missing[0]} is not supported by this CPU (available: "
                              f"{', '.join(cpu_engines()) or 'none'})")
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(sel)
    try:
        yield
    finally:
        stack.pop()


def engine_product(A: np.ndarray, B: np.ndarray, amin: int, amax: int, bmin: int, bmax: int
                   ) -> tuple[np.ndarray, str] | None:
    """Exact int64 ``A @ B`` and the engine's name, by the selected integer engine, or None when no
    engine is selected for these operands (entries of A in [amin, amax], of B in [bmin, bmax]).

    Serves A inside [0, 255] or [-128, 127] and B inside [-128, 127] or [0, 255] (see the module
    docstring for why the result is exact). Raises ConfigError when ``INTSIM_GEMM_ENGINE`` forces an
    engine this CPU lacks.
    """
    if amin >= 0 and amax <= 255:
        ca = 0
    elif amin >= -128 and amax <= 127:
        ca = 128
    else:
        return None
    if bmin >= -128 and bmax <= 127:
        cb = 0
    elif bmin >= 0 and bmax <= 255:
        cb = 128
    else:
        return None
    sel = selected_engines()
    if sel is None:
        M, K = A.shape
        if M * K * B.shape[1] < _AUTO_MIN_MACS:
            return None
        sel = cpu_engines()
    else:
        for n in sel:
            if n not in cpu_engines():
                raise ConfigError(f"{ENV_VAR} forces GEMM engine {n}, which this CPU does not support "
                                  f"(available: {', '.join(cpu_engines()) or 'none'})")
    for engine in sel:
        if _usable(engine):
            return _run(engine, A, B, ca, cb), engine
    return None


def warm_up() -> None:
    """Compile (or load from the on-disk cache) the kernels of every engine this CPU has."""
    for e in cpu_engines():
        _usable(e)


KERNELS = (_pack_b, _drive512, _drive256)
