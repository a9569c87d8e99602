"""Exact 8-bit integer GEMM engines on the CPU's integer dot-product instructions (internal).

:func:`intsim.matmul` computes the outputs its bound proves cannot overflow by the fastest
exact method; for operands of 8 bits or fewer that is one of the engines here:

``"amx"``
    Intel AMX (AMX-TILE + AMX-INT8): a 32 x 32 int32 block in four 16 x 16 accumulator tiles,
    per step of 64 k two A tiles (16 rows x 64 bytes) and two B tiles (16 rows of 4 k x 16
    columns of bytes), by the one of ``TDPBUSD``, ``TDPBSSD``, ``TDPBUUD``, ``TDPBSUD`` whose
    byte signedness is that of the operands (A unsigned or signed, B signed or unsigned), so the
    operands are multiplied as they are. A is read in place (tile rows at A's row stride) when K
    is a multiple of 64 and its rows are contiguous bytes, else from a zero-padded copy; B is
    packed in the column panels below; every packed buffer starts on a cache line. Linux only:
    the process asks the kernel for the tile data state
    (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, Linux 5.16+) before the engine
    counts as present on the CPU.
``"vnni512"``
    AVX-512 VNNI ``VPDPBUSD zmm`` (16 int32 lanes), register tile 8 rows x 48 columns.
``"vnni256"``
    AVX-VNNI (VEX) or AVX-512 VNNI+VL ``VPDPBUSD ymm`` (8 int32 lanes), tile 4 rows x 24
    columns (16 vector registers).

``VPDPBUSD`` (Intel SDM, "VPDPBUSD - Multiply and Add Unsigned and Signed Bytes") adds to
each int32 lane the four products ``zext(a_byte) * sext(b_byte)`` of that lane, without
intermediate saturation and with the final 32-bit add wrapping (only ``VPDPBUSDS``
saturates; ``VPMADDUBSW`` saturates int16 pair sums and is never used). ``TDPBUSD`` (Intel
SDM, "TDPBSSD/TDPBSUD/TDPBUSD/TDPBUUD - Dot Product of Signed/Unsigned Bytes with Dword
Accumulation") adds, the same way, to each int32 element of the accumulator tile the four
products of each of 16 byte groups (32-bit adds; the bounds below keep every sum inside int32,
so no add wraps); ``TDPBSSD``, ``TDPBUUD`` and ``TDPBSUD`` differ only in which bytes are
sign-extended (A and B; neither; A).

Exactness, by construction
--------------------------
* Operand shift (the VNNI engines; AMX needs none): A (any values in [-128, 255] of one of the
  ranges [0, 255] or [-128, 127]) becomes ``Au = A + ca`` in [0, 255] (``ca`` = 0 or 128); B
  becomes ``Bs = B - cb`` in [-128, 127] (``cb`` = 0 or 128). Then, exactly in integers,
  ``A @ B = Au @ Bs - ca * colsum(Bs) + cb * rowsum(A)``; the two correction terms are
  formed in int64 (|terms| <= 128 * 255 * K < 2**63 for every K numpy can hold).
* int32 lanes: one lane (or AMX tile element) of ``Au @ Bs`` over a block of at most
  :data:`K_BLOCK` = 65536 consecutive k is a sum of at most 65536 products in
  [-32640, 32385], so every partial sum lies in [-2139095040, 2122383360], inside int32: the
  lane never wraps. On AMX the products of signed x signed bytes lie in [-16256, 16384] (the
  same block), those of unsigned x unsigned bytes in [0, 65025]: their blocks are 33024 k
  (a multiple of 64; 33024 * 65025 = 2147385600 <= 2**31 - 1). Longer K is split into such blocks and the block
  results are added in int64 (the first block's int64 results are written with non-temporal
  stores).
* Padding: K is padded to a multiple of 4 (64 for AMX), and M and N to whole tiles, with zero
  bytes, whose products are 0.
* The operation order inside a lane does not matter: integer addition without overflow is
  associative.

Engine choice
-------------
An engine is *available* when the JIT's target CPU has the instruction set extension
(checked before any code using the instruction is compiled) and the engine passed its
known-answer self-test at first use (operands 255 x 127 whose pair sums saturate int16,
-128 operands, every combination of signed and unsigned operands at their extremes, K not a
multiple of 4 and a multiple of 64, partial tiles), compared with int64 arithmetic.

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

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config
from numba.extending import intrinsic

from ..core.errors import ConfigError
from .chunks import run_chunks

__all__ = ["ENGINES", "ENV_VAR", "K_BLOCK", "available_engines", "cpu_engines", "engine_product",
           "gemm_engine", "selected_engines"]

#: The integer engines, fastest first.
ENGINES: tuple[str, ...] = ("amx", "vnni512", "vnni256")
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
#: AMX: a parallel work item is a region of _AMX_GP x _AMX_GQ blocks of 32 x 32 (128 rows x 256 columns: each
#: packed B panel pair is reused by 4 row blocks while in cache; its int32 scratch is 128 KB, in L2). Measured
#: on a 2-core Xeon with AMX against 1 x 8 blocks: 1024^3 the same, 1024 x 2048 x 1024 12% and
#: 512 x 4096 x 4096 25% faster.
_AMX_GP, _AMX_GQ = 4, 8
#: Packing moves about this many times fewer bytes per unit of run_chunks work than a GEMM does MACs
#: (packing 1 MB takes about as long as 32 M MACs): its work estimate for the thread pool.
_PACK_WEIGHT = 32
#: In "auto", calls below this many MACs keep the float path (the engine's fixed cost dominates).
_AUTO_MIN_MACS = 1 << 15

# llvm feature names (llvmlite.binding.get_host_cpu_features) each engine needs.
_FEATURES = {"amx": ({"amx-tile", "amx-int8"},),
             "vnni512": ({"avx512f", "avx512bw", "avx512vnni"},),
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
        _CPU_ENGINES = tuple(e for e in ENGINES if any(req <= feats for req in _FEATURES[e])
                             and (e != "amx" or _amx_permitted()))
    return _CPU_ENGINES


def _amx_permitted() -> bool:
    """Ask the Linux kernel for the AMX tile data state of this process (arch_prctl
    ARCH_REQ_XCOMP_PERM with XFEATURE_XTILEDATA, Linux 5.16+); True when it is granted. Without it the
    first tile instruction would fault."""
    import ctypes
    import platform
    import sys

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sys_arch_prctl, arch_get_xcomp_perm, arch_req_xcomp_perm, xtiledata = 158, 0x1022, 0x1023, 18
        if libc.syscall(sys_arch_prctl, arch_req_xcomp_perm, xtiledata) != 0:
            return False
        perm = ctypes.c_uint64(0)
        if libc.syscall(sys_arch_prctl, arch_get_xcomp_perm, ctypes.byref(perm)) != 0:
            return False
        return bool(perm.value >> xtiledata & 1)
    except Exception:  # pragma: no cover - no libc syscall()
        return False


# ---------------------------------------------------------------------------------------------
# The micro-kernel: one MR x NR int32 tile, C += Au_panel @ Bs_panel, in LLVM IR
# ---------------------------------------------------------------------------------------------

def _loop_begin(builder, n, name: str):
    """Open the counted loop ``for k in range(n)`` in LLVM IR (skipped when n <= 0): returns
    (k, pre, loop, done), the builder inside the loop body; close it with :func:`_loop_end`."""
    i64 = ir.IntType(64)
    pre = builder.block
    loop = builder.append_basic_block(f"{name}_loop")
    done = builder.append_basic_block(f"{name}_done")
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), pre)
    return k, pre, loop, done


def _loop_end(builder, k, n, loop, done):
    """Close the loop of :func:`_loop_begin`: k + 1, back to the body while below n; the builder
    continues after the loop. Returns the block the back edge leaves from (for the body's phis)."""
    k_next = builder.add(k, ir.Constant(ir.IntType(64), 1))
    end = builder.block
    k.add_incoming(k_next, end)
    builder.cbranch(builder.icmp_signed("<", k_next, n), loop, done)
    builder.position_at_end(done)
    return end


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
            k, pre, loop, done = _loop_begin(builder, n4, "vnni")
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
            end = _loop_end(builder, k, n4, loop, done)
            for p, nval in zip(phis, new, strict=True):
                p.add_incoming(nval, end)
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
# AMX: one 32 x 32 int32 block (four 16 x 16 tiles) over a K block, in LLVM IR
# ---------------------------------------------------------------------------------------------

#: AMX block: rows and columns of the four accumulator tiles, bytes of k per step (one A tile row).
_AMX_MR, _AMX_NR, _AMX_KB = 32, 32, 64
#: The tile configuration (palette 1): tiles 0-7 of 16 rows x 64 bytes (the 64-byte LDTILECFG layout:
#: palette id, start row, 14 reserved bytes, 16 x 2-byte bytes-per-row, 16 x 1-byte rows; unused 0).
_AMX_CFG = np.zeros(64, np.uint8)
_AMX_CFG[0] = 1
_AMX_CFG[16:32].view(np.uint16)[:] = 64
_AMX_CFG[48:56] = 16


def _amx_decl(builder, name, args):
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(ir.VoidType(), args), name=name)
    return fn


@intrinsic
def _amx_config(typingctx, cfg_addr):
    """LDTILECFG from the 64 bytes at cfg_addr (this thread's tile configuration)."""
    def codegen(context, builder, signature, args):
        p8 = ir.PointerType(ir.IntType(8))
        builder.call(_amx_decl(builder, "llvm.x86.ldtilecfg", [p8]), [builder.inttoptr(args[0], p8)])
        return context.get_dummy_value()

    return types.void(types.int64), codegen


@intrinsic
def _amx_release(typingctx):
    """TILERELEASE: back to the initial tile state (the OS then saves no tile data for this thread)."""
    def codegen(context, builder, signature, args):
        builder.call(_amx_decl(builder, "llvm.x86.tilerelease", []), [])
        return context.get_dummy_value()

    return types.void(), codegen


#: The AMX dot-product instructions by operand signedness (A, B): u = unsigned bytes, s = signed bytes.
_AMX_DOTS = {("u", "s"): "tdpbusd", ("s", "s"): "tdpbssd", ("u", "u"): "tdpbuud", ("s", "u"): "tdpbsud"}
#: The kinds of :func:`_drive_amx` (an index into this tuple).
_AMX_KINDS = tuple(_AMX_DOTS)


def _amx_k_block(kind: tuple[str, str]) -> int:
    """The longest K block (a multiple of 64) whose int32 tile elements cannot wrap with operands of
    ``kind``: every product lies in [pmin, pmax] (u x u: [0, 65025]; s x s: [-16256, 16384]; u x s and
    s x u: [-32640, 32385]), so a sum of n products stays inside int32 while n * max(|pmin|, pmax) is
    at most 2**31 - 1, rounded down to a multiple of 64: 33024 k for u x u, K_BLOCK = 65536 k
    otherwise."""
    lo = {"u": (0, 255), "s": (-128, 127)}
    (a0, a1), (b0, b1) = lo[kind[0]], lo[kind[1]]
    worst = max(abs(x * y) for x in (a0, a1) for y in (b0, b1))
    n = min(K_BLOCK, (2**31 - 1) // worst)
    return n - n % _AMX_KB


def _make_amx_block(dot_name: str):
    """An intrinsic ``blk(a_addr, a1_addr, lda, a_step, b_addr, b_next, c_addr, ldc, n_steps)``: the int32
    block at c_addr (32 x 32, row stride ldc bytes) = A times B over n_steps steps of 64 k by the AMX
    instruction ``dot_name`` (TDPBUSD, TDPBSSD, TDPBUUD or TDPBSUD: which operand bytes are signed).
    A: two groups of 16 rows, at a_addr and a1_addr, row stride lda bytes, per step 64 bytes of each
    row, the next step a_step bytes further (a row-major byte array read in place: a_step = 64).
    B: two packed column panels of 16 columns, at b_addr and b_addr + b_next, each per step 16 rows
    (4 k) of 64 bytes (16 columns x the 4 bytes of 4 consecutive k of one column), the next step
    1024 bytes further. Tiles 0-3 accumulate (rows 0-15 / 16-31 x columns 0-15 / 16-31), 4-5 hold A,
    6-7 B; needs the configuration of _AMX_CFG loaded."""
    @intrinsic
    def blk(typingctx, a_addr, a1_addr, lda, a_step, b_addr, b_next, c_addr, ldc, n_steps):
        sig = types.void(*([types.int64] * 9))

        def codegen(context, builder, signature, args):
            a_i, a1_i, lda_i, astep, b_i, bq_i, c_i, ldc_i, n = args
            i8, i64 = ir.IntType(8), ir.IntType(64)
            p8 = ir.PointerType(i8)
            zero = _amx_decl(builder, "llvm.x86.tilezero", [i8])
            load = _amx_decl(builder, "llvm.x86.tileloadd64", [i8, p8, i64])
            store = _amx_decl(builder, "llvm.x86.tilestored64", [i8, p8, i64])
            dot = _amx_decl(builder, f"llvm.x86.{dot_name}", [i8, i8, i8])

            def tile(t):
                return ir.Constant(i8, t)

            def ptr(x):
                return builder.inttoptr(x, p8)

            for t in range(4):
                builder.call(zero, [tile(t)])
            b1 = builder.add(b_i, bq_i)
            k, _, loop, done = _loop_begin(builder, n, "amx")
            ka = builder.mul(k, astep)
            kb = builder.mul(k, ir.Constant(i64, 16 * _AMX_KB))
            row64 = ir.Constant(i64, 64)
            builder.call(load, [tile(4), ptr(builder.add(a_i, ka)), lda_i])
            builder.call(load, [tile(6), ptr(builder.add(b_i, kb)), row64])
            builder.call(dot, [tile(0), tile(4), tile(6)])
            builder.call(load, [tile(7), ptr(builder.add(b1, kb)), row64])
            builder.call(dot, [tile(1), tile(4), tile(7)])
            builder.call(load, [tile(5), ptr(builder.add(a1_i, ka)), lda_i])
            builder.call(dot, [tile(2), tile(5), tile(6)])
            builder.call(dot, [tile(3), tile(5), tile(7)])
            _loop_end(builder, k, n, loop, done)
            c1 = builder.add(c_i, builder.mul(ldc_i, ir.Constant(i64, 16)))
            for t, base, off in ((0, c_i, 0), (1, c_i, 64), (2, c1, 0), (3, c1, 64)):
                builder.call(store, [tile(t), ptr(builder.add(base, ir.Constant(i64, off))), ldc_i])
            return context.get_dummy_value()

        return sig, codegen

    return blk


_amx_us = _make_amx_block(_AMX_DOTS["u", "s"])
_amx_ss = _make_amx_block(_AMX_DOTS["s", "s"])
_amx_uu = _make_amx_block(_AMX_DOTS["u", "u"])
_amx_su = _make_amx_block(_AMX_DOTS["s", "u"])


# ---------------------------------------------------------------------------------------------
# Packing and the parallel drivers
# ---------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _pack_a(A8, xa, Au, rowsum, i0, i1):
    """Rows i0 to i1 - 1 of Au = A8 XOR xa, zero bytes right of A8's K columns and below its M rows;
    rowsum[i] = the sum of row i of Au (for i < M; rowsum may be empty: not wanted)."""
    M, K = A8.shape
    x = np.uint8(xa)
    for i in range(i0, i1):
        o = Au[i]
        if i < M:
            a = A8[i]
            for k in range(K):
                o[k] = a[k] ^ x
            for k in range(K, o.size):
                o[k] = 0
            if rowsum.size:
                t = np.int64(0)
                for k in range(K):
                    t += np.int64(o[k])
                rowsum[i] = t
        else:
            for k in range(o.size):
                o[k] = 0


@njit(cache=True, nogil=True)
def _pad_a(A8, r0, out, i0, i1):
    """Rows i0 to i1 - 1 of out = rows r0 + i of A8, zero bytes right of A8's K columns and below its
    last row (the padded copy the AMX driver reads where A8 itself cannot be read in place)."""
    M, K = A8.shape
    for i in range(i0, i1):
        o = out[i]
        n = K if r0 + i < M else 0
        if n:
            a = A8[r0 + i]
            for k in range(K):
                o[k] = a[k]
        for k in range(n, o.size):
            o[k] = 0


@njit(cache=True, inline="always")  # a part of _pack_b, compiled into it
def _pack_b_rows(B8, x, out8, s0, s1):
    """:func:`_pack_b` for the k4 rows s0 to s1 - 1 (all inside B8) and the whole panels."""
    N = B8.shape[1]
    nr = out8.shape[2] // 4
    for s in range(s0, s1):
        r0 = B8[4 * s]
        r1 = B8[4 * s + 1]
        r2 = B8[4 * s + 2]
        r3 = B8[4 * s + 3]
        for q in range(N // nr):
            o = out8[q, s]
            for c in range(nr):
                j = q * nr + c
                o[4 * c] = r0[j] ^ x
                o[4 * c + 1] = r1[j] ^ x
                o[4 * c + 2] = r2[j] ^ x
                o[4 * c + 3] = r3[j] ^ x


@njit(cache=True, inline="always")  # a part of _pack_b, compiled into it
def _colsum(B8, x, colsum, j0, j1):
    """colsum[j] = sum_k int8(B8[k, j] XOR x) for j0 <= j < j1, x = 0 or 0x80: from the unsigned byte
    sums U_j and the counts H_j of bytes >= 128, int8(u) = u - 256 [u >= 128] and int8(u XOR 0x80) =
    u - 128, so the sum is U_j - 256 H_j (x = 0) or U_j - 128 K (x = 0x80). int32 partial sums over at
    most 2**16 rows (<= 2**24), then int64."""
    K = B8.shape[0]
    w = j1 - j0
    su = np.zeros(w, np.int64)
    hi = np.zeros(w, np.int64)
    ps = np.zeros(w, np.int32)
    ph = np.zeros(w, np.int32)
    for k0 in range(0, K, 65536):
        for k in range(k0, min(K, k0 + 65536)):
            row = B8[k, j0:j1]
            for c in range(w):
                u = np.int32(row[c])
                ps[c] += u
                ph[c] += u >> 7
        for c in range(w):
            su[c] += ps[c]
            hi[c] += ph[c]
            ps[c] = 0
            ph[c] = 0
    for c in range(w):
        colsum[j0 + c] = su[c] - 128 * K if x else su[c] - 256 * hi[c]


@njit(cache=True, nogil=True)
def _pack_b(B8, xb, out8, colsum, s0, s1, j0, j1):
    """The packed panels of Bs = B8 XOR xb viewed as signed bytes, zero-padded to 4*S rows:
    bytes 4c to 4c + 3 of out8[q, s] = Bs[4s + t, q*nr + c], t = 0..3 (nr = out8.shape[2] // 4; zero
    bytes right of the last column), for s0 <= s < s1 (each word: the 4 bytes of 4 consecutive k of one
    column, little-endian). colsum[j] = sum_k Bs[k, j] (signed) for j0 <= j < j1."""
    K, N = B8.shape
    Q = out8.shape[0]
    nr = out8.shape[2] // 4
    x = np.uint8(xb)
    full_q = N // nr
    _pack_b_rows(B8, x, out8, s0, max(s0, min(s1, K // 4)))
    for s in range(s0, s1):  # the partial and padding panels, and the rows past K
        for q in range(0 if 4 * s + 3 >= K else full_q, Q):
            o = out8[q, s]
            for c in range(nr):
                j = q * nr + c
                for t in range(4):
                    k = 4 * s + t
                    o[4 * c + t] = B8[k, j] ^ x if k < K and j < N else np.uint8(0)
    if j1 > j0:
        _colsum(B8, x, colsum, j0, j1)


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


@intrinsic
def _nt_row(typingctx, c_addr, o_addr, t_addr, ri, n8):
    """o[c] = int64(cw[c]) + ri + t[c] for c < 8 * n8: cw int32 at c_addr (32-byte aligned), t int64 at
    t_addr, o int64 at o_addr (64-byte aligned), written with non-temporal 64-byte stores (the output is
    not read again soon; no read-for-ownership of its cache lines). Callers end with :func:`_sfence`."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        c_i, o_i, t_i, ri, n = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        v32, v64 = ir.VectorType(i32, 8), ir.VectorType(i64, 8)
        splat = builder.shuffle_vector(builder.insert_element(ir.Constant(v64, ir.Undefined), ri, ir.Constant(i32, 0)),
                                       ir.Constant(v64, ir.Undefined), ir.Constant(ir.VectorType(i32, 8), [0] * 8))
        k, _, loop, done = _loop_begin(builder, n, "nt")
        cv = builder.load(builder.inttoptr(builder.add(c_i, builder.mul(k, ir.Constant(i64, 32))), ir.PointerType(v32)),
                          align=32, typ=v32)
        tv = builder.load(builder.inttoptr(builder.add(t_i, builder.mul(k, ir.Constant(i64, 64))), ir.PointerType(v64)),
                          align=8, typ=v64)
        val = builder.add(builder.add(builder.sext(cv, v64), splat), tv)
        st = builder.store(val, builder.inttoptr(builder.add(o_i, builder.mul(k, ir.Constant(i64, 64))),
                                                 ir.PointerType(v64)), align=64)
        st.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(i32, 1)]))
        _loop_end(builder, k, n, loop, done)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _sfence(typingctx):
    """SFENCE: the non-temporal stores before it are globally visible before any store after it."""
    def codegen(context, builder, signature, args):
        builder.call(_amx_decl(builder, "llvm.x86.sse.sfence", []), [])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, inline="always")
def _epilogue_nt(Cw, out, rowterm, colterm, i0, j0):
    """:func:`_epilogue` of a first K block with non-temporal stores, when the output rows and the region
    allow (64-byte aligned rows, whole 8-column groups); else the plain epilogue."""
    M, N = out.shape
    h = min(Cw.shape[0], M - i0)
    w = min(Cw.shape[1], N - j0)
    o0 = np.int64(out.ctypes.data)
    if (o0 % 64 != 0) or (N % 8 != 0) or (w % 8 != 0) or (j0 % 8 != 0):
        _epilogue(Cw, out, rowterm, colterm, i0, j0, True)
        return
    c0 = np.int64(Cw.ctypes.data)
    t0 = np.int64(colterm.ctypes.data) + j0 * 8
    ldc = Cw.shape[1] * 4
    for r in range(h):
        _nt_row(c0 + r * ldc, o0 + ((i0 + r) * N + j0) * 8, t0, rowterm[i0 + r], w // 8)


@njit(cache=True, nogil=True)
def _drive_amx(cfg, kind, am0, lda_m, p_main, At, Bp, out, rowterm, colterm, kblock, w0, w1):
    """As :func:`_drive512` with 32 x 32 AMX blocks by the instruction of ``_AMX_KINDS[kind]`` (the
    operand bytes as they are: no shift, so rowterm and colterm hold only a bias): row block p < p_main
    is read in place from rows 32p to 32p + 31 of the bytes at address am0 (row stride lda_m), row
    block p_main (if any) from At (32 rows); both row-major bytes with at least 64 * (S // 16)
    columns, zero past K. Item w is the region of _AMX_GP x _AMX_GQ blocks at row block
    _AMX_GP * (w // cb) and column block _AMX_GQ * (w % cb) (cb column groups; column block q: the
    packed panels 2q and 2q + 1 of 16 columns). Per K block of kblock steps of 64 k the region is
    computed into an int32 scratch, then added to the int64 output row by row."""
    Q, S, nr = Bp.shape
    T = S // 16
    P = p_main + (1 if At.shape[0] else 0)
    b0 = np.int64(Bp.ctypes.data)
    nq = Q // 2
    cb = (nq + _AMX_GQ - 1) // _AMX_GQ
    h, wd = _AMX_GP * _AMX_MR, _AMX_GQ * _AMX_NR
    raw = np.empty(h * wd + 16, np.int32)
    off = (-np.int64(raw.ctypes.data) % 64) // 4  # 64-byte aligned tile rows
    Cw = raw[off:off + h * wd].reshape(h, wd)
    c0 = np.int64(Cw.ctypes.data)
    ldc = wd * 4
    _amx_config(np.int64(cfg.ctypes.data))
    for w in range(w0, w1):
        pb = (w // cb) * _AMX_GP
        pe = min(pb + _AMX_GP, P)
        qb = (w % cb) * _AMX_GQ
        qe = min(qb + _AMX_GQ, nq)
        for t0 in range(0, T, kblock):
            n_steps = min(kblock, T - t0)
            for p in range(pb, pe):
                if p < p_main:
                    lda = lda_m
                    a_addr = am0 + 32 * p * lda + 64 * t0
                else:
                    lda = np.int64(At.strides[0])
                    a_addr = np.int64(At.ctypes.data) + 64 * t0
                a1 = a_addr + 16 * lda
                for q in range(qb, qe):
                    b_addr = b0 + (2 * q * S + 16 * t0) * nr * 4
                    c_addr = c0 + (p - pb) * _AMX_MR * ldc + (q - qb) * _AMX_NR * 4
                    if kind == 0:
                        _amx_us(a_addr, a1, lda, 64, b_addr, S * nr * 4, c_addr, ldc, n_steps)
                    elif kind == 1:
                        _amx_ss(a_addr, a1, lda, 64, b_addr, S * nr * 4, c_addr, ldc, n_steps)
                    elif kind == 2:
                        _amx_uu(a_addr, a1, lda, 64, b_addr, S * nr * 4, c_addr, ldc, n_steps)
                    else:
                        _amx_su(a_addr, a1, lda, 64, b_addr, S * nr * 4, c_addr, ldc, n_steps)
            if t0 == 0:
                _epilogue_nt(Cw, out, rowterm, colterm, pb * _AMX_MR, qb * _AMX_NR)
            else:
                _epilogue(Cw, out, rowterm, colterm, pb * _AMX_MR, qb * _AMX_NR, False)
    _sfence()
    _amx_release()


_DRIVERS = {"vnni512": _drive512, "vnni256": _drive256}  # "amx": _drive_amx (its own arguments)


def _aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """np.empty(shape, dtype) starting on a 64-byte boundary (a cache line: a tile row or vector load
    that straddles two lines costs two)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + 64, np.uint8)
    off = -raw.ctypes.data % 64
    return raw[off:off + n].view(dtype).reshape(shape)


def _bytes(X: np.ndarray) -> np.ndarray:
    """X mod 256 as a C-contiguous uint8 array (a view when X already is one of 8-bit bytes)."""
    if X.dtype in (np.int8, np.uint8):
        return np.ascontiguousarray(X).view(np.uint8)
    return np.ascontiguousarray(X.astype(np.uint8))  # integer casts keep the low byte


def _run(engine: str, A: np.ndarray, B: np.ndarray, ca: int, cb: int, bias: np.ndarray | None = None) -> np.ndarray:
    """Exact int64 ``A @ B`` (plus ``bias[j]`` on column j when given, int64) with engine ``engine``;
    ``A + ca`` in [0, 255], ``B - cb`` in [-128, 127]. The int64 correction terms and adds wrap modulo
    2**64 (numpy and numba integer arithmetic), so every output that fits int64 is exact."""
    if engine == "amx":
        return _run_amx(A, B, ca, cb, bias)
    M, K = A.shape
    N = B.shape[1]
    mr, lanes, nv = _TILES[engine]
    nr = lanes * nv
    Q, S = -(-N // nr), -(-K // 4)
    P = -(-M // mr)
    # Au = A + ca as bytes: A mod 256, then (for ca = 128) XOR 0x80 maps [-128, 127] onto [0, 255].
    # Bs = B - cb as signed bytes: B mod 256, then (for cb = 128) XOR 0x80 maps [0, 255] onto [-128, 127].
    # Rows padded to whole tiles, K to a multiple of 4, columns to whole panels, with zero bytes.
    A8, B8 = _bytes(A), _bytes(B)
    rowsum = np.empty(M if cb else 0, np.int64)
    Bp8 = _aligned_empty((Q, S, 4 * nr), np.uint8)
    colsum = np.zeros(N, np.int64)  # needed only when ca != 0
    xa, xb = (0x80 if ca else 0), (0x80 if cb else 0)
    cs = N if ca else 0
    Au = _aligned_empty((P * mr, 4 * S), np.uint8)

    def pack(i0: int, i1: int) -> None:  # i: a k4 row of Bp; rows and columns of A and B in proportion
        _pack_b(B8, xb, Bp8, colsum, i0, i1, i0 * cs // S, i1 * cs // S)
        _pack_a(A8, xa, Au, rowsum, i0 * (P * mr) // S, i1 * (P * mr) // S)

    run_chunks(pack, S, _PACK_WEIGHT * K * (M + N))
    # A @ B = Au @ Bs - ca * colsum(Bs) + cb * rowsum(A), rowsum(A) = rowsum(Au) - ca * K
    colterm = colsum * -ca
    if bias is not None:
        colterm += bias
    rowterm = (rowsum - ca * K) * cb if cb else np.zeros(M, np.int64)
    out = _aligned_empty((M, N), np.int64)
    Bp = Bp8.view(np.uint32)
    n_items = -(-P // _ROW_PANELS) * Q
    drive = _DRIVERS[engine]

    def work(w0: int, w1: int) -> None:
        drive(Au, Bp, out, rowterm, colterm, K_BLOCK // 4, w0, w1)

    run_chunks(work, n_items, M * K * N)
    return out


def _run_amx(A: np.ndarray, B: np.ndarray, ca: int, cb: int, bias: np.ndarray | None) -> np.ndarray:
    """:func:`_run` on AMX: no operand shift, the instruction whose byte signedness matches the operands
    (A unsigned when ca = 0, signed when ca = 128; B signed when cb = 0, unsigned when cb = 128), so no
    correction terms. A is read in place when K is a multiple of 64 and A's rows are contiguous bytes at
    a positive row stride (only a partial last block of 32 rows is copied, zero-padded); else a
    zero-padded copy of A is read. B is packed into column panels."""
    M, K = A.shape
    N = B.shape[1]
    kind = (("s" if ca else "u"), ("u" if cb else "s"))
    Q, S = 2 * -(-N // _AMX_NR), 16 * -(-K // _AMX_KB)
    K64 = 4 * S
    B8 = _bytes(B)
    Bp8 = _aligned_empty((Q, S, 64), np.uint8)
    no_colsum = np.empty(0, np.int64)
    At = _aligned_empty((0, K64), np.uint8)
    if K == K64 and A.dtype in (np.int8, np.uint8) and A.strides[1] == 1 and A.strides[0] >= K and M:
        # A's rows read in place (any row stride); a partial last block of rows is copied, zero-padded
        A8, p_main = A.view(np.uint8), M // _AMX_MR
        if M > p_main * _AMX_MR:
            At = _aligned_empty((_AMX_MR, K64), np.uint8)
            At[:M - p_main * _AMX_MR] = A8[p_main * _AMX_MR:]
            At[M - p_main * _AMX_MR:] = 0
        Am = A8
        pad_src = None
    else:  # a zero-padded copy of A
        p_main = -(-M // _AMX_MR)
        Am = _aligned_empty((p_main * _AMX_MR, K64), np.uint8)
        pad_src = _bytes(A)
    n_pad = Am.shape[0] if pad_src is not None else 0

    def pack(i0: int, i1: int) -> None:  # i: a k4 row of Bp; rows of the padded A in proportion
        _pack_b(B8, 0, Bp8, no_colsum, i0, i1, 0, 0)
        if n_pad:
            _pad_a(pad_src, 0, Am, i0 * n_pad // S, i1 * n_pad // S)

    run_chunks(pack, S, _PACK_WEIGHT * K * (N + n_pad))
    colterm = np.zeros(N, np.int64) if bias is None else np.asarray(bias, np.int64)
    rowterm = np.zeros(M, np.int64)
    out = _aligned_empty((M, N), np.int64)
    Bp = Bp8.view(np.uint32)
    P = p_main + (1 if At.shape[0] else 0)
    am0, lda_m = np.int64(Am.ctypes.data), np.int64(Am.strides[0])
    n_items = -(-P // _AMX_GP) * -(-(Q // 2) // _AMX_GQ)
    k_idx = _AMX_KINDS.index(kind)
    kblock = _amx_k_block(kind) // _AMX_KB

    def work(w0: int, w1: int) -> None:
        _drive_amx(_AMX_CFG, k_idx, am0, lda_m, p_main, At, Bp, out, rowterm, colterm, kblock, w0, w1)

    run_chunks(work, n_items, M * K * N)
    return out


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
    cases.append((rng.integers(-128, 128, (9, 70)), rng.integers(0, 256, (70, 33))))  # signed x unsigned
    # K a multiple of 64 (AMX reads A in place) with a partial last block of rows; the extremes of each
    # sign combination: 255 * 255, -128 * -128, -128 * 255, 255 * -128
    for a, b in ((255, 255), (-128, -128), (-128, 255), (255, -128)):
        A = rng.integers(min(a, 0), max(a, 0) + 1, (35, 128))
        B = rng.integers(min(b, 0), max(b, 0) + 1, (128, 40))
        A[:3] = a
        B[:, :2] = b
        cases.append((A, B))
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


def engine_product(A: np.ndarray, B: np.ndarray, amin: int, amax: int, bmin: int, bmax: int,
                   bias: np.ndarray | None = None) -> tuple[np.ndarray, str] | None:
    """Exact int64 ``A @ B`` (plus ``bias[j]`` on column j, int64, when given; exact when every output
    fits int64) and the engine's name, by the selected integer engine, or None when no engine is
    selected for these operands (entries of A in [amin, amax], of B in [bmin, bmax]).

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
            return (_run(engine, A, B, ca, cb) if bias is None else _run(engine, A, B, ca, cb, bias)), engine
    return None


def warm_up() -> None:
    """Compile (or load from the on-disk cache) the kernels of every engine this CPU has."""
    for e in cpu_engines():
        _usable(e)


KERNELS = (_pack_a, _pad_a, _pack_b, _drive512, _drive256, _drive_amx)
