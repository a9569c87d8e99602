"""Every GEMM engine (the integer dot-product engines of intsim.hw.intdot and the float paths), forced
one at a time, against the Python-int oracle; engine selection, self-test and fallback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intsim import AccumulatorOverflow, ConfigError, Datapath, IntType, matmul
from intsim.hw import intdot
from intsim.hw.intdot import ENGINES, K_BLOCK, available_engines, cpu_engines, gemm_engine
from intsim.hw.unpack import unpack_matmul
from intsim.oracles.gemm import matmul as gemm_oracle
from intsim.testing.strategies import interesting_values

#: "float" (no integer engine) and every integer engine, skipped where the CPU lacks it.
ENGINE_PARAMS = ["float"] + [pytest.param(e, marks=pytest.mark.skipif(e not in cpu_engines(),
                                                                      reason=f"this CPU lacks {e}"))
                             for e in ENGINES]
FLOAT_METHODS = ("float32-blas", "float64-blas", "int64", "none")
# 8-bit-or-narrower operand types the engines serve (and one they do not: int9)
TYPES = [IntType(8), IntType(8, False), IntType(4), IntType(4, False), IntType(7, False), IntType(2), IntType(1),
         IntType(9)]


def oracle_check(A, B, dp, bias=None, engine=None):
    """matmul(A, B, dp, bias) equals the oracle (values, flags, first k, or the raised event); returns the result."""
    vals, flags, firstk, event = gemm_oracle(
        np.asarray(A).tolist(), np.asarray(B).tolist(), dp.acc_bits, dp.overflow, dp.k_chunk, dp.chunk_bits,
        dp.chunk_overflow, None if bias is None else list(bias), n=np.shape(B)[1])
    if event is not None:
        with pytest.raises(AccumulatorOverflow) as ei:
            matmul(A, B, dp, bias=bias)
        i, j, k, value, _ = event
        assert (ei.value.index, ei.value.k, ei.value.value) == ((i, j), k, value)
        return None
    r = matmul(A, B, dp, bias=bias)
    assert r.values.dtype == np.int64 and r.values.tolist() == vals
    assert r.overflow.tolist() == flags and r.first_overflow_k.tolist() == firstk
    if engine is not None:
        assert_method(r, engine, A, B)
    return r


def assert_engine_exact(engine, A, B, dp):
    """matmul(A, B, dp) with ``engine`` forced equals the int64 product, computed by that engine
    whenever it can serve the operands; returns the result."""
    with gemm_engine(engine):
        r = matmul(A, B, dp)
    assert np.array_equal(r.values, A.astype(np.int64) @ B.astype(np.int64))
    assert_method(r, engine, A, B)
    return r


def assert_method(r, engine, A, B):
    """The forced engine computed the cleared outputs whenever it can serve the operands."""
    if r.method == "none":
        return
    A, B = np.asarray(A), np.asarray(B)
    eight = A.size and B.size and -128 <= A.min() and A.max() <= 255 and -128 <= B.min() and B.max() <= 255 \
        and not (A.min() < 0 and A.max() > 127) and not (B.min() < 0 and B.max() > 127)
    if engine == "float" or not eight:
        assert r.method in FLOAT_METHODS
    else:
        assert r.method == engine


@st.composite
def engine_cases(draw, max_dim=20, max_k=70):
    a, b = draw(st.sampled_from(TYPES)), draw(st.sampled_from(TYPES))
    acc_bits = draw(st.sampled_from([32, 32, 20, 16, 64]))
    dp = Datapath(a=a, b=b, acc_bits=acc_bits, overflow=draw(st.sampled_from(["raise", "wrap", "saturate"])))
    M, K, N = draw(st.integers(0, max_dim)), draw(st.integers(0, max_k)), draw(st.integers(0, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mode = draw(st.sampled_from(["uniform", "extremes", "drawn"]))
    if mode == "drawn" and M * K + K * N <= 400:
        A = np.array(draw(st.lists(interesting_values(a), min_size=M * K, max_size=M * K)), np.int64).reshape(M, K)
        B = np.array(draw(st.lists(interesting_values(b), min_size=K * N, max_size=K * N)), np.int64).reshape(K, N)
    elif mode == "extremes":
        A = rng.choice([a.min, a.max, 0], size=(M, K))
        B = rng.choice([b.min, b.max, 0], size=(K, N))
    else:
        A = rng.integers(a.min, a.max + 1, (M, K))
        B = rng.integers(b.min, b.max + 1, (K, N))
    dtype = draw(st.sampled_from([None, "narrow", "noncontig"]))
    if dtype == "narrow":
        A, B = A.astype(a.dtype), B.astype(b.dtype)
    elif dtype == "noncontig":
        A = np.asfortranarray(A)[:, ::1]
        B = np.repeat(B, 2, axis=1)[:, ::2]
    bias = None
    if draw(st.booleans()) and N:
        bias = rng.integers(max(dp.acc.min, -(2**40)), min(dp.acc.max, 2**40) + 1, N).tolist()
    return dp, A, B, bias


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@settings(max_examples=120)
@given(case=engine_cases())
def test_forced_engine_matches_oracle(engine, case):
    dp, A, B, bias = case
    with gemm_engine(engine):
        oracle_check(A, B, dp, bias, engine)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 200), st.integers(1, 60))
def test_forced_engine_int8_shapes(engine, seed, M, K, N):
    """K around the vector width (4 bytes per lane) and the tile sizes; M, N partial tiles."""
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    assert_engine_exact(engine, A, B, Datapath(acc_bits=64))


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_pair_saturation_operands(engine):
    """255 * 127 + 255 * 127 = 64770 saturates an int16 pair sum (VPMADDUBSW would give 32767)."""
    dp = Datapath(a=IntType(8, False), b=IntType(8), acc_bits=32)
    for K in (1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 517):
        A = np.full((9, K), 255, np.uint8)
        B = np.full((K, 50), 127, np.int8)
        B[:, 1] = -128
        with gemm_engine(engine):
            r = matmul(A, B, dp)
        assert (r.values[:, 0] == 255 * 127 * K).all() and (r.values[:, 1] == -255 * 128 * K).all()
        assert_method(r, engine, A, B)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_most_negative_operands(engine):
    for K in (1, 4, 6, 33):
        A = np.full((3, K), -128, np.int8)
        B = np.full((K, 5), -128, np.int8)
        B[:, 2] = 127
        with gemm_engine(engine):
            r = matmul(A, B, Datapath(acc_bits=32))
        assert (r.values[:, [0, 1, 3, 4]] == 16384 * K).all() and (r.values[:, 2] == -128 * 127 * K).all()
        assert_method(r, engine, A, B)
    # both operands unsigned 8-bit (B shifted by -128), and |A| @ |B| of the overflow proof
    A = np.full((2, 9), 255, np.uint8)
    B = np.full((9, 3), 255, np.uint8)
    with gemm_engine(engine):
        r = matmul(A, B, Datapath(a=IntType(8, False), b=IntType(8, False), acc_bits=32))
    assert (r.values == 255 * 255 * 9).all()
    assert_method(r, engine, A, B)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("a_signed", [True, False])
@pytest.mark.parametrize("b_signed", [True, False])
def test_every_sign_combination(engine, a_signed, b_signed):
    """Signed and unsigned 8-bit operands in all four combinations (AMX multiplies each with its own
    instruction), with rows of extremes, K a multiple of 64 (A read in place, a partial last block
    of rows) and not (A copied)."""
    ta, tb = IntType(8, a_signed), IntType(8, b_signed)
    rng = np.random.default_rng(1 + 2 * a_signed + b_signed)
    for M, K, N in ((70, 128, 40), (64, 192, 33), (33, 64, 17), (96, 64, 64), (40, 100, 50)):
        A = rng.integers(ta.min, ta.max + 1, (M, K)).astype(ta.dtype)
        B = rng.integers(tb.min, tb.max + 1, (K, N)).astype(tb.dtype)
        A[0], A[-1] = ta.min, ta.max
        B[:, 0], B[:, -1] = tb.min, tb.max
        assert_engine_exact(engine, A, B, Datapath(a=ta, b=tb, acc_bits=32))


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_row_strided_operands(engine):
    """Byte operands whose rows are contiguous but further apart than K (a column slice of a wider
    matrix; AMX reads such an A in place), with K a multiple of 64 and a partial last block of rows."""
    rng = np.random.default_rng(8)
    wide = rng.integers(-128, 128, (77, 300), dtype=np.int8)
    for A in (wide[:, 10:138], wide[3:70, 100:292], wide[::2, :64]):
        B = rng.integers(-128, 128, (A.shape[1], 45), dtype=np.int8)
        assert_engine_exact(engine, A, B, Datapath(acc_bits=32))


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_unsigned_times_unsigned_past_its_int32_block(engine):
    """255 * 255 products: 33025 of them fit an int32 lane, 33026 do not (AMX's unsigned x unsigned
    blocks are 33024 k); K = 2 * 33024 + 69: two full blocks and a partial one."""
    K = 2 * 33024 + 69
    A = np.full((33, K), 255, np.uint8)
    A[1, ::3] = 0
    B = np.full((K, 3), 255, np.uint8)
    B[::7, 1] = 1
    with gemm_engine(engine):
        r = matmul(A, B, Datapath(a=IntType(8, False), b=IntType(8, False), acc_bits=64))
    assert r.values.tolist() == (A.astype(np.int64) @ B.astype(np.int64)).tolist()
    assert_method(r, engine, A, B)


def _dot_to(target: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 vectors a, b of length K with a @ b == target, the largest products first."""
    a = np.zeros(K, np.int64)
    b = np.zeros(K, np.int64)
    units = [(-128, -128), (127, 127), (127, 1), (1, 1)] if target >= 0 else \
        [(-128, 127), (127, -127), (127, -1), (1, -1)]
    rem = abs(target)
    k = 0
    for x, y in units:
        n = rem // abs(x * y)
        a[k:k + n], b[k:k + n] = x, y
        rem -= n * abs(x * y)
        k += n
    assert rem == 0 and k <= K
    return a, b


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_outputs_at_the_int32_boundary(engine):
    """Outputs of exactly 2**31 - 1 and -2**31 fit the 32-bit accumulator; 2**31 does not. Each row
    of A meets its column of B on its own block of k (the other outputs are 0)."""
    K0 = 132200
    targets = [2**31 - 1, -(2**31), 2**31 - 2]
    A = np.zeros((3, 3 * K0), np.int8)
    B = np.zeros((3 * K0, 3), np.int8)
    for t, target in enumerate(targets):
        a, b = _dot_to(target, K0)
        A[t, t * K0:(t + 1) * K0] = a
        B[t * K0:(t + 1) * K0, t] = b
    dp = Datapath(acc_bits=32, overflow="raise")
    with gemm_engine(engine):
        r = matmul(A[:, ::-1], B[::-1], dp)  # reversed: the small products come first
    assert r.values.tolist() == np.diag(targets).tolist()
    assert r.n_scanned == 1  # only -2**31: the bound is symmetric (|value| <= 2**31 - 1 clears)
    assert_method(r, engine, A, B)
    with gemm_engine(engine), pytest.raises(AccumulatorOverflow) as ei:
        matmul(A, B, dp, bias=np.array([1, 0, 0]))
    assert ei.value.index == (0, 0) and ei.value.value == 2**31


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_k_longer_than_one_int32_block(engine):
    """K beyond K_BLOCK: int32 lanes per block, blocks added in int64; the lane of one block at its
    extreme (255 * -128 * K_BLOCK)."""
    K = 2 * K_BLOCK + 5
    A = np.full((2, K), 255, np.uint8)
    A[1, ::3] = 0
    B = np.full((K, 3), -128, np.int8)
    B[::7, 1] = 127
    with gemm_engine(engine):
        r = matmul(A, B, Datapath(a=IntType(8, False), acc_bits=64))
    assert r.values.tolist() == (A.astype(np.int64) @ B.astype(np.int64)).tolist()
    assert_method(r, engine, A, B)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_tiny_empty_and_noncontiguous(engine):
    rng = np.random.default_rng(5)
    with gemm_engine(engine):
        for M, K, N in ((0, 3, 2), (2, 0, 3), (3, 2, 0), (1, 1, 1), (1, 3, 1), (9, 5, 49), (17, 4, 97)):
            A = rng.integers(-128, 128, (M, K), dtype=np.int8)
            B = rng.integers(-128, 128, (K, N), dtype=np.int8)
            r = matmul(A, B)
            assert r.values.shape == (M, N)
            assert np.array_equal(r.values, A.astype(np.int64) @ B.astype(np.int64))
        big = rng.integers(-128, 128, (40, 90), dtype=np.int8)
        for A, B in ((big[::2, 1::3], big[1:31, ::3].T), (big.T[:50:3], big[:, 7:77:2]),
                     (np.asfortranarray(big[:, :33]), np.asfortranarray(big[:33, 40:]))):
            r = matmul(A, B)
            assert np.array_equal(r.values, A.astype(np.int64) @ B.astype(np.int64))
            assert_method(r, engine, A, B)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["wrap", "saturate", "raise"]))
def test_mixed_cleared_and_scanned(engine, seed, policy):
    """Some outputs overflow (scanned in order), the rest go to the engine."""
    rng = np.random.default_rng(seed)
    A = rng.integers(-8, 8, (12, 64))
    B = rng.integers(-8, 8, (64, 10))
    A[3] = 7
    B[:, 4] = 7
    with gemm_engine(engine):
        r = oracle_check(A, B, Datapath(a=IntType(4), b=IntType(4), acc_bits=12, overflow=policy),
                         engine=engine)
    if r is not None:
        assert r.n_scanned > 0


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_unpack_matmul_uses_the_engine(engine):
    rng = np.random.default_rng(3)
    A = rng.integers(-2000, 2000, (40, 70))
    B = rng.integers(-300, 300, (70, 30))
    for dp in (Datapath(acc_bits=32), Datapath(a=IntType(4), b=IntType(4), acc_bits=32)):
        with gemm_engine(engine):
            r = unpack_matmul(A, B, dp, "row", "col")
        assert r.values.tolist() == (A @ B).tolist()
        for g in r.gemms:
            assert g.method == ("float32-blas" if engine == "float" else engine) or g.method == "none"


# ---- selection ------------------------------------------------------------------------------


def test_environment_variable_selects(monkeypatch):
    A = np.full((40, 40), 3, np.int8)
    monkeypatch.setenv("INTSIM_GEMM_ENGINE", "float")
    assert matmul(A, A).method == "float32-blas"
    monkeypatch.setenv("INTSIM_GEMM_ENGINE", "auto")
    assert matmul(A, A).method in (*available_engines(), "float32-blas")
    monkeypatch.setenv("INTSIM_GEMM_ENGINE", "no-such-engine")
    with pytest.raises(ConfigError, match="unknown GEMM engine"):
        matmul(A, A)
    # a context wins over the environment
    with gemm_engine("float"):
        assert matmul(A, A).method == "float32-blas"
    with pytest.raises(ConfigError, match="unknown GEMM engine"):
        with gemm_engine("vpmaddubsw"):
            pass


def test_auto_prefers_the_fastest_engine(monkeypatch):
    monkeypatch.delenv("INTSIM_GEMM_ENGINE", raising=False)
    A = np.full((64, 64), -128, np.int8)
    r = matmul(A, A, Datapath(acc_bits=32))
    avail = available_engines()
    assert r.method == (avail[0] if avail else "float32-blas")
    assert (r.values == 64 * 16384).all()


def test_forcing_an_engine_the_cpu_lacks(monkeypatch):
    monkeypatch.setattr(intdot, "_CPU_ENGINES", ())
    with pytest.raises(ConfigError, match="not supported by this CPU"):
        with gemm_engine("vnni512"):
            pass
    monkeypatch.setenv("INTSIM_GEMM_ENGINE", "vnni256")
    with pytest.raises(ConfigError, match="does not support"):
        matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8))
    # without the instructions, auto falls back to the float paths
    monkeypatch.setenv("INTSIM_GEMM_ENGINE", "auto")
    A = np.full((64, 64), 100, np.int8)
    r = matmul(A, A)
    assert r.method == "float32-blas" and (r.values == 64 * 10000).all()


@pytest.mark.skipif(not cpu_engines(), reason="this CPU has no integer dot-product engine")
def test_failed_self_test_disables_the_engine(monkeypatch):
    """An engine whose known-answer test fails (here: a VPMADDUBSW-like int16 pair saturation) is
    never used: a warning, then the float paths."""
    engine = cpu_engines()[0]
    real = intdot._run

    def saturating(eng, A, B, ca, cb):
        out = real(eng, A, B, ca, cb)
        return np.where(out > 32767 * A.shape[1] // 2, 32767 * A.shape[1] // 2, out)

    monkeypatch.setattr(intdot, "_run", saturating)
    monkeypatch.setattr(intdot, "_TESTED", {})
    with pytest.warns(RuntimeWarning, match="self-test"):
        assert engine not in available_engines()
    A = np.full((64, 64), 255, np.uint8)
    B = np.full((64, 64), 127, np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with gemm_engine(engine):
            r = matmul(A, B, Datapath(a=IntType(8, False), acc_bits=32))
    assert r.method == "float32-blas" and (r.values == 64 * 255 * 127).all()


# ---- the first-exit scan of the outputs in doubt (k_chunk 1, wrap / raise) --------------------


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("bits", [4, 8, 12, 20])
@given(seed=st.integers(0, 2**32 - 1), policy=st.sampled_from(["wrap", "raise"]),
       acc_bits=st.sampled_from([16, 24, 32]))
@settings(max_examples=25)
def test_first_exit_scan(engine, bits, seed, policy, acc_bits):
    """Outputs in doubt whose register leaves its range late (after many blocks that provably stay
    inside), early, or never; operands of int16 and of int64 width (the scan's two copies)."""
    rng = np.random.default_rng(seed)
    t = IntType(bits)
    dp = Datapath(a=t, b=t, acc_bits=max(acc_bits, 2 * bits + 2), overflow=policy)
    M, K, N = int(rng.integers(1, 9)), int(rng.integers(1, 400)), int(rng.integers(1, 9))
    A = rng.integers(t.min, t.max + 1, (M, K))
    B = rng.integers(t.min, t.max + 1, (K, N))
    # a drift of one sign for some columns, so that some outputs cross the limit late
    B[:, ::2] = np.minimum(np.abs(B[:, ::2]), t.max)
    A[::2] = np.minimum(np.abs(A[::2]), t.max)
    lim = dp.acc.max
    bias = rng.integers(-lim // 2, lim // 2 + 1, N)
    bias[::3] = max(0, lim - int(rng.integers(0, max(1, t.max * t.max * K))))
    with gemm_engine(engine):
        oracle_check(A, B, dp, bias.tolist(), engine)


def test_first_overflow_k_is_a_plain_array():
    """first_overflow_k is materialized at first access: a writable C-contiguous int64 (M, N) array."""
    A = np.full((3, 4), 7, np.int8)
    r = matmul(A, A.T.copy(), Datapath(a=IntType(8), b=IntType(8), acc_bits=32))
    fk = r.first_overflow_k
    assert fk.dtype == np.int64 and fk.shape == (3, 3) and fk.flags.c_contiguous and fk.flags.writeable
    assert (fk == -1).all() and r.first_overflow_k is fk
    r = matmul(A, A.T.copy(), Datapath(a=IntType(8), b=IntType(8), acc_bits=8, overflow="wrap"))
    assert r.first_overflow_k.tolist() == [[2] * 3] * 3 and r.overflow.all()


# ---- the one-pass operand statistics of the overflow proof ------------------------------------


@given(st.integers(0, 2**32 - 1), st.integers(0, 40), st.integers(0, 300))
def test_abs_stats_and_byte_range_match_numpy(seed, R, C):
    """max |x| and sum |x| per row and per column of int8 data (-128 included: |-128| = 128), and the
    min / max of int8 and uint8 data, as numpy computes them in int64."""
    from intsim.hw import gemm_kernels as kern

    rng = np.random.default_rng(seed)
    X = rng.choice(np.array([-128, -127, -1, 0, 1, 127], np.int8), size=(R, C)) if seed % 2 else \
        rng.integers(-128, 128, (R, C), dtype=np.int8)
    X64 = np.abs(X.astype(np.int64))
    for axis in (0, 1):
        mx, sm = kern.abs_stats(X, axis)
        want_max = X64.max(axis=axis, initial=0)
        assert mx.tolist() == want_max.tolist() and sm.tolist() == X64.sum(axis=axis).tolist()
    if X.size:
        assert kern.byte_range(X) == (int(X.min()), int(X.max()))
        U = X.view(np.uint8)
        assert kern.byte_range(U) == (int(U.min()), int(U.max()))
    assert kern.byte_range(X.astype(np.int16)) is None


def test_abs_stats_past_the_int32_partial_blocks():
    """Sums over more than 2**16 entries (the int32 partial-sum blocks) of |-128|."""
    from intsim.hw import gemm_kernels as kern

    K = 3 * 65536 + 7
    X = np.full((2, K), -128, np.int8)
    X[1, ::2] = 5
    mx, sm = kern.abs_stats(X, 1)
    assert mx.tolist() == [128, 128] and sm.tolist() == [128 * K, 128 * (K // 2) + 5 * (K - K // 2)]
    mx, sm = kern.abs_stats(np.ascontiguousarray(X.T), 0)
    assert mx.tolist() == [128, 128] and sm.tolist() == [128 * K, 128 * (K // 2) + 5 * (K - K // 2)]


def test_a_wrong_engine_result_is_caught_by_the_spot_check(monkeypatch):
    """An engine (or BLAS) that returns a wrong value for a block of outputs is caught by the int64
    recomputation of a few cleared outputs spread over the rows, not returned."""
    from intsim.hw import gemm

    real = gemm._product

    def wrong(A, B, pmax, ranges, bias):
        values, method = real(A, B, pmax, ranges, bias)
        values[values.shape[0] // 2:, :] += 1  # the lower half of the rows
        return values, method

    monkeypatch.setattr(gemm, "_product", wrong)
    rng = np.random.default_rng(4)
    A = rng.integers(-128, 128, (100, 70), dtype=np.int8)
    B = rng.integers(-128, 128, (70, 40), dtype=np.int8)
    with pytest.raises(RuntimeError, match="internal check failed"):
        matmul(A, B, Datapath(acc_bits=32))


def test_heap_tunables_are_applied_once_and_can_be_turned_off():
    """On Linux with glibc, importing intsim raises the two malloc tunables (True); INTSIM_KEEP_HEAP=0
    leaves glibc's defaults (False); elsewhere nothing changes (False)."""
    import os
    import platform
    import subprocess
    import sys

    code = "import intsim.core.heap as h, intsim; print(h.keep_heap())"
    expect = "True" if sys.platform == "linux" and platform.libc_ver()[0] == "glibc" else "False"
    for env, want in (({}, expect), ({"INTSIM_KEEP_HEAP": "0"}, "False")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "INTSIM_QUIET": "1", **env})
        assert out.stdout.strip() == want
