"""ONNX Runtime's float32 CPU kernels, operation for operation (internal to :mod:`intsim.onnx`).

Each kernel here repeats, element by element, the float32 operation sequence of the kernel
ONNX Runtime 1.32's CPU execution provider runs on an x86-64 CPU with AVX-512F (the dispatch
of ``onnxruntime/core/mlas/lib/platform.cpp``, which also needs AVX2 and FMA3): the same
constants, every fused multiply-add as one (one rounding, through LLVM's ``llvm.fma.f32``,
exact on every host CPU), every separate multiply and add as separate float32 operations, x86
``MINPS``/``MAXPS`` semantics (``min(a, b) = a if a < b else b``, so a NaN in ``a`` gives
``b``), and, for reductions, the same vector width, lane assignment and order of partial sums.
The results are bit-identical to ONNX Runtime's on such a CPU (tests/test_onnx_float_exact.py
checks every kernel against ONNX Runtime itself). On a CPU without AVX-512F (or without
AVX2/FMA3) ONNX Runtime dispatches other kernels, and its own results there may differ from
these in the last bits: each function says which of its results depend on the dispatch.

Provenance: the kernels were read in ONNX Runtime's sources (the files below; the stored copies
were of several commits around 1.32) and the installed 1.32.0 wheel decided every point where
versions differ, by tests against it and, for the LayerNorm kernel, by its disassembly
(``objdump`` of ``onnxruntime_pybind11_state``): the erf clamp is 3.925 (3.725 in older
releases) applied as ``min(3.925, |x|)`` (a NaN stays NaN); exp clamps above too (88.776);
tanh is the rational Eigen form (not the ``_nc``/``_dc`` form of some revisions); the GELU kernel
passes NaNs through; LayerNormalization rows of 8 or more take the AVX2 kernel with a float64
mean, shorter rows and SkipLayerNormalization a float32 Welford loop.

>>> import numpy as np
>>> x = np.array([0.5, -1.0, 4.0], dtype=np.float32)
>>> erf(x).tolist()  # MlasErfKernelFma3, vs math.erf: 0.52049987..., -0.84270079..., 0.99999998...
[0.5204998850822449, -0.8427007794380188, 1.0]

Kernels (``onnxruntime/core/mlas/lib/...`` unless named otherwise):

=====================  ======================================================================
:func:`erf`            ``x86_64/ErfKernelFma3.S`` (constants in ``erf.cpp``)
:func:`exp`            ``x86_64/TransKernelAvx512F.S`` (``MlasComputeExpF32KernelAvx512F``)
:func:`tanh`           ``x86_64/TanhKernelFma3.S`` (constants in ``tanh.cpp``)
:func:`logistic`       ``x86_64/LogisticKernelFma3.S`` (constants in ``logistic.cpp``)
:func:`softmax`        ``compute.cpp`` ``MlasComputeSoftmax`` with ``SoftmaxKernelAvx512F.S``,
                       ``TransKernelAvx512F.S`` (sum of exps) and ``SoftmaxKernelAvx.S``
:func:`layer_norm`     ``layernorm_kernel_avx2.cpp`` (rows of 8 or more) and the Welford
                       loop of ``onnxruntime/core/providers/cpu/nn/layer_norm_impl.cc``
:func:`gelu`           ``onnxruntime/core/providers/cpu/tensor/gelu.cc`` and
                       ``intrinsics/avx512/gelu_avx512f.cpp`` (erf form)
:func:`gelu_tanh`      ``onnxruntime/contrib_ops/cpu/bert/bias_gelu.cc`` (tanh form)
:func:`sum_rows`       Eigen's vectorized ``sum()`` (4-float SSE packets) as
                       ``onnxruntime/core/providers/cpu/reduction/reduction_ops.cc`` uses it
:func:`sum_middle`     ``x86_64/SgemmKernelM1Avx.S`` (a ones vector times a matrix)
=====================  ======================================================================
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["erf", "exp", "tanh", "logistic", "softmax", "log_softmax", "layer_norm", "welford_layer_norm",
           "gelu", "gelu_tanh", "sum_rows", "sum_blocks", "sum_middle", "powf",
           "fma32", "REFERENCE_ORT", "REFERENCE_FEATURES", "reference_dispatch", "warm_up"]

F32 = np.float32

#: The ONNX Runtime release whose CPU kernels these are (major.minor).
REFERENCE_ORT = "1.32"
#: The CPU features (llvm names) under which ONNX Runtime dispatches these kernels.
REFERENCE_FEATURES = frozenset({"avx512f", "avx2", "fma"})


def reference_dispatch() -> bool:
    """Whether this host's CPU has :data:`REFERENCE_FEATURES`, i.e. whether ONNX Runtime running
    here takes the kernels this module copies (the arithmetic here runs on any CPU).

    >>> isinstance(reference_dispatch(), bool)
    True
    """
    try:
        import llvmlite.binding as ll

        feats = {k for k, v in ll.get_host_cpu_features().items() if v}
    except Exception:  # pragma: no cover - llvmlite without the host feature query
        return False
    return REFERENCE_FEATURES <= feats


# ---------------------------------------------------------------------------------------------
# primitives
# ---------------------------------------------------------------------------------------------

@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` in float32 with one rounding (``VFMADD...PS``), for numba code."""
    if not (a == types.float32 and b == types.float32 and c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float32, as int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _float(typingctx, i):
    """The float32 with the bits of the int32 ``i``."""
    if i != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _f64_from_bits(typingctx, i):
    """The float64 with the bits of the int64 ``i``."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, inline="always", error_model="numpy")
def _i32(v):
    """int64 -> int32, two's-complement wrap."""
    v = v & 0xFFFFFFFF
    return np.int32(v - 0x100000000 if v >= 0x80000000 else v)


@njit(cache=True, inline="always", error_model="numpy")
def _maxps(a, b):
    """x86 ``MAXPS``/``MAXSS`` with src1 ``a`` and src2 ``b``: ``a if a > b else b``."""
    return a if a > b else b


@njit(cache=True, inline="always", error_model="numpy")
def _minps(a, b):
    """x86 ``MINPS``/``MINSS`` with src1 ``a`` and src2 ``b``: ``a if a < b else b``."""
    return a if a < b else b


_QNAN = np.int32(-4194304)  # 0xFFC00000, the x86 default NaN


@njit(cache=True, inline="always", error_model="numpy")
def _scalef(p, m):
    """AVX-512 ``VSCALEFPS``: ``p * 2**floor(m)`` rounded once to float32 (round to nearest even,
    denormal results kept), with the instruction's NaN and infinity cases. The product is formed
    exactly in float64 (|floor(m)| is clamped to 400, beyond which float32 overflows or flushes
    the same way), then rounded once."""
    if p != p:
        return p
    if m != m:
        return m
    if m == np.inf:
        if p == 0:
            return _float(_QNAN)
        return F32(np.inf) if p > 0 else F32(-np.inf)
    if m == -np.inf:
        if p == np.inf or p == -np.inf:
            return _float(_QNAN)
        return p * F32(0.0)
    e = int(min(max(math.floor(float(m)), -400.0), 400.0))
    return np.float32(float(p) * _f64_from_bits((e + 1023) << 52))  # exact in float64, one rounding


def _unary(kernel, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=F32)
    out = np.empty_like(x)
    kernel(x.reshape(-1), out.reshape(-1))
    return out


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=F32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    return x


_ONE = F32(1.0)
_ZERO = F32(0.0)
_HALF = F32(0.5)


# ---------------------------------------------------------------------------------------------
# erf
# ---------------------------------------------------------------------------------------------

_ERF_UPPER = F32(3.925)
_ERF_SPLIT = F32(0.921875)
_ERF_S0, _ERF_S1, _ERF_S2 = F32(-5.99104969e-4), F32(4.99339588e-3), F32(-2.67667342e-2)
_ERF_S3, _ERF_S4, _ERF_S5M1 = F32(1.12818025e-1), F32(-3.76124859e-1), F32(1.28379151e-1)
_ERF_B0, _ERF_B1, _ERF_B2 = F32(1.72948930e-5), F32(-3.83208680e-4), F32(3.88393435e-3)
_ERF_B3, _ERF_B4, _ERF_B5 = F32(-2.42545605e-2), F32(1.06777847e-1), F32(6.34846687e-1)
_ERF_B6M1 = F32(1.28717512e-1)
_ERF_EXP_LOWER = F32(-88.3762626647949)
_LOG2E = F32(1.44269504088896341)
_LN2_HI, _LN2_LO = F32(-6.93145752e-1), F32(-1.42860677e-6)
_ERF_E0, _ERF_E1, _ERF_E2 = F32(1.38319808e-3), F32(8.37550033e-3), F32(4.16689515e-2)
_ERF_E3, _ERF_E4, _ERF_E5, _ERF_E6 = F32(1.66664466e-1), F32(4.99999851e-1), F32(1.0), F32(1.0)
_ROUND_BIAS = F32(12582912.0)  # 1.5 * 2**23 (MLAS_ROUNDING_BIAS_MAGIC)


@njit(cache=True, error_model="numpy")
def _erf1(x):
    xb = np.int64(_bits(x))
    sign = xb & 0x80000000
    a = _minps(_ERF_UPPER, _float(_i32(xb & 0x7FFFFFFF)))  # a NaN stays NaN
    s = a * a
    p = fma32(_ERF_S0, s, _ERF_S1)
    p = fma32(p, s, _ERF_S2)
    p = fma32(p, s, _ERF_S3)
    p = fma32(p, s, _ERF_S4)
    p = fma32(p, s, _ERF_S5M1)
    p = fma32(p, a, a)
    big = _ERF_SPLIT <= a
    small_bits = np.int64(0) if big else np.int64(_bits(p)) & 0xFFFFFFFF
    ab = a if big else _ZERO
    q = fma32(_ERF_B0, ab, _ERF_B1)
    q = fma32(q, ab, _ERF_B2)
    q = fma32(q, ab, _ERF_B3)
    q = fma32(q, ab, _ERF_B4)
    q = fma32(q, ab, _ERF_B5)
    q = fma32(q, ab, _ERF_B6M1)
    q = -fma32(q, ab, ab)
    q = _maxps(q, _ERF_EXP_LOWER)
    r = fma32(_LOG2E, q, _ROUND_BIAS) - _ROUND_BIAS
    f = fma32(r, _LN2_HI, q)
    f = fma32(r, _LN2_LO, f)
    y = fma32(_ERF_E0, f, _ERF_E1)
    y = fma32(y, f, _ERF_E2)
    y = fma32(y, f, _ERF_E3)
    y = fma32(y, f, _ERF_E4)
    y = fma32(y, f, _ERF_E5)
    y = fma32(y, f, _ERF_E6)
    scale = _float(_i32((np.int64(int(r)) + 127) << 23))  # VCVTTPS2DQ, +127, << 23
    y = _ONE - y * scale
    return _float(_i32((np.int64(_bits(y)) & 0xFFFFFFFF) | small_bits | sign))


@njit(cache=True, error_model="numpy")
def _erf_kernel(x, out):
    for i in range(x.size):
        out[i] = _erf1(x[i])


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise erf (float32) as ``MlasErfKernelFma3``, which ``Erf`` and ``Gelu`` run.

    ``|x|`` is clamped to 3.925; below 0.921875 an odd polynomial in ``x**2`` (six FMAs), from
    there on ``1 - exp(-p(|x|))`` with a degree-8 polynomial ``p`` and MLAS's own exp (range
    reduction by ``ln 2`` in two FMAs, degree-6 polynomial, scale ``2**n`` built in the exponent
    field); the sign is or-ed back in. The clamp ``min(3.925, |x|)`` keeps a NaN (quieted, sign
    kept, as ONNX Runtime 1.32 returns it); infinities give ``+-1.0``. The same kernel runs on every
    AVX2+FMA3 CPU; without FMA3 ONNX Runtime takes the SSE2 ``MlasErfKernel`` (no FMA: other
    roundings).

    >>> erf(np.array([0.1, 1.0], np.float32)).tolist()
    [0.11246291548013687, 0.8427007794380188]
    """
    return _unary(_erf_kernel, x)


# ---------------------------------------------------------------------------------------------
# exp
# ---------------------------------------------------------------------------------------------

_EXP_LOWER = F32(-103.9720840454)
_EXP_UPPER = F32(88.7762626647950)
_EXP_P0 = F32(float.fromhex("0x1.694000p-10"))
_EXP_P1 = F32(float.fromhex("0x1.125edcp-7"))
_EXP_P2 = F32(float.fromhex("0x1.555b5ap-5"))
_EXP_P3 = F32(float.fromhex("0x1.555450p-3"))
_EXP_P4 = F32(float.fromhex("0x1.fffff6p-2"))
_EXP_P56 = F32(1.0)


@njit(cache=True, inline="always", error_model="numpy")
def _exp512(x):
    v = _minps(_EXP_UPPER, _maxps(_EXP_LOWER, x))
    m = fma32(_LOG2E, v, _ROUND_BIAS) - _ROUND_BIAS
    v = fma32(m, _LN2_HI, v)
    v = fma32(m, _LN2_LO, v)
    p = fma32(_EXP_P0, v, _EXP_P1)
    p = fma32(p, v, _EXP_P2)
    p = fma32(p, v, _EXP_P3)
    p = fma32(p, v, _EXP_P4)
    p = fma32(p, v, _EXP_P56)
    p = fma32(p, v, _EXP_P56)
    return _scalef(p, m)


@njit(cache=True, error_model="numpy")
def _exp_kernel(x, out):
    for i in range(x.size):
        out[i] = _exp512(x[i])


def exp(x: np.ndarray) -> np.ndarray:
    """Elementwise exp (float32) as ``MlasComputeExpF32KernelAvx512F`` (the ``Exp`` operator).

    ``x`` is clamped to [-103.972, 88.776] (``MAXPS``/``MINPS``: a NaN stays NaN),
    ``m = round(x * log2(e))`` by the ``1.5 * 2**23`` trick in one FMA,
    ``r = x + m * ln2_hi + m * ln2_lo`` in two FMAs, a degree-6 polynomial in six FMAs, then
    ``VSCALEFPS(p, m)``: results below ``2**-126`` are denormal (rounded once) or 0, above
    ``FLT_MAX`` infinite (``exp(+inf) = +inf``, ``exp(-inf) = 0``). CPUs without AVX-512F take
    ``MlasComputeExpF32KernelFma3`` (a two-step scale instead of ``VSCALEFPS``): the same values in
    the normal range, possibly other ones for denormal results.

    >>> exp(np.array([0.0, 1.0, -104.0], np.float32)).tolist()
    [1.0, 2.7182817459106445, 0.0]
    """
    return _unary(_exp_kernel, x)


# ---------------------------------------------------------------------------------------------
# tanh and logistic
# ---------------------------------------------------------------------------------------------

_TH_LO, _TH_HI = F32(-9.0), F32(9.0)
_TH_A13, _TH_A11, _TH_A9 = F32(-2.76076847742355e-16), F32(2.00018790482477e-13), F32(-8.60467152213735e-11)
_TH_A7, _TH_A5, _TH_A3 = F32(5.12229709037114e-08), F32(1.48572235717979e-05), F32(6.37261928875436e-04)
_TH_A1 = F32(4.89352455891786e-03)
_TH_B6, _TH_B4 = F32(1.19825839466702e-06), F32(1.18534705686654e-04)
_TH_B2, _TH_B0 = F32(2.26843463243900e-03), F32(4.89352518554385e-03)


@njit(cache=True, inline="always", error_model="numpy")
def _tanh1(x):
    v = _minps(_TH_HI, _maxps(_TH_LO, x))
    s = v * v
    p = fma32(s, _TH_A13, _TH_A11)
    p = fma32(p, s, _TH_A9)
    p = fma32(p, s, _TH_A7)
    p = fma32(p, s, _TH_A5)
    p = fma32(p, s, _TH_A3)
    p = fma32(p, s, _TH_A1)
    p = p * v
    q = fma32(s, _TH_B6, _TH_B4)
    q = fma32(q, s, _TH_B2)
    q = fma32(q, s, _TH_B0)
    return p / q


@njit(cache=True, error_model="numpy")
def _tanh_kernel(x, out):
    for i in range(x.size):
        out[i] = _tanh1(x[i])


def tanh(x: np.ndarray) -> np.ndarray:
    """Elementwise tanh (float32) as ``MlasComputeTanhF32KernelFma3`` (``Tanh``, the tanh forms
    of ``Gelu``/``FastGelu``): ``x`` clamped to [-9, 9], then ``x * p(x**2) / q(x**2)`` (Eigen's
    rational approximation: degree-6 and degree-3 polynomials by FMA, one multiply, one divide).
    A NaN stays NaN. Without FMA3 ONNX Runtime takes the SSE2 ``MlasTanhKernel`` (no FMA).

    >>> tanh(np.array([0.5, 20.0], np.float32)).tolist()
    [0.46211716532707214, 1.0]
    """
    return _unary(_tanh_kernel, x)


_LG_LO, _LG_HI = F32(-18.0), F32(18.0)
_LG_A9, _LG_A7, _LG_A5 = F32(4.37031012579801e-11), F32(1.15627324459942e-07), F32(6.08574864600143e-05)
_LG_A3, _LG_A1 = F32(8.51377133304701e-03), F32(2.48287947061529e-01)
_LG_B10, _LG_B8, _LG_B6 = F32(6.10247389755681e-13), F32(5.76102136993427e-09), F32(6.29106785017040e-06)
_LG_B4, _LG_B2, _LG_B0 = F32(1.70198817374094e-03), F32(1.16817656904453e-01), F32(9.93151921023180e-01)


@njit(cache=True, error_model="numpy")
def _logistic_kernel(x, out):
    for i in range(x.size):
        v = _minps(_LG_HI, _maxps(_LG_LO, x[i]))
        s = v * v
        p = fma32(s, _LG_A9, _LG_A7)
        p = fma32(s, p, _LG_A5)
        p = fma32(s, p, _LG_A3)
        p = fma32(s, p, _LG_A1)
        q = fma32(s, _LG_B10, _LG_B8)
        q = fma32(s, q, _LG_B6)
        q = fma32(s, q, _LG_B4)
        q = fma32(s, q, _LG_B2)
        q = fma32(s, q, _LG_B0)
        out[i] = _maxps(_ZERO, (v * p) / q + _HALF)


def logistic(x: np.ndarray) -> np.ndarray:
    """Elementwise sigmoid (float32) as ``MlasLogisticKernelFma3`` (``Sigmoid``,
    ``QLinearSigmoid``'s table): ``x`` clamped to [-18, 18], ``x * p(x**2) / q(x**2) + 0.5`` with
    Eigen's degree-4/5 polynomials by FMA, then ``max(0, .)`` (no upper clamp: the polynomial
    stays at or below 1). A NaN stays NaN. Without FMA3: the SSE2 ``MlasLogisticKernel``.

    >>> logistic(np.array([0.0, 2.0, -30.0], np.float32)).tolist()
    [0.5, 0.8807970881462097, 0.0]
    """
    return _unary(_logistic_kernel, x)


# ---------------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------------

_LOWEST = F32(np.finfo(np.float32).min)


@njit(cache=True, error_model="numpy")
def _reduce_max(x):
    """MlasReduceMaximumF32KernelAvx512F: four 8-lane accumulators over 32-element blocks, one
    over the 8-element blocks, a 8 -> 1 tree, then the 0-7 leftover elements one by one."""
    n = x.size
    m = _LOWEST
    i = 0
    if n >= 8:
        acc = np.full((4, 8), _LOWEST, dtype=np.float32)
        if n >= 32:
            while n - i >= 32:
                for k in range(4):
                    for j in range(8):
                        acc[k, j] = _maxps(acc[k, j], x[i + 8 * k + j])
                i += 32
            for j in range(8):
                acc[0, j] = _maxps(_maxps(acc[0, j], acc[1, j]), _maxps(acc[2, j], acc[3, j]))
        while n - i >= 8:
            for j in range(8):
                acc[0, j] = _maxps(acc[0, j], x[i + j])
            i += 8
        t0 = _maxps(acc[0, 0], acc[0, 4])
        t1 = _maxps(acc[0, 1], acc[0, 5])
        t2 = _maxps(acc[0, 2], acc[0, 6])
        t3 = _maxps(acc[0, 3], acc[0, 7])
        m = _maxps(_maxps(t0, t2), _maxps(t1, t3))
    while i < n:
        m = _maxps(m, x[i])
        i += 1
    return m


@njit(cache=True, error_model="numpy")
def _sum_exp(x, out, negmax, store):
    """MlasComputeSumExpF32KernelAvx512F: exp(x - max) per element into ``out``, summed in 16
    lanes (lane j takes elements 16k + j in order), then (hi 8 + lo 8) and a pairwise tree."""
    n = x.size
    acc = np.zeros(16, dtype=np.float32)
    i = 0
    while i < n:
        k = min(16, n - i)
        for j in range(k):
            e = _exp512(negmax + x[i + j])
            acc[j] = acc[j] + e
            if store:
                out[i + j] = e
        i += 16
    a = np.empty(8, dtype=np.float32)
    for j in range(8):
        a[j] = acc[8 + j] + acc[j]
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


@njit(cache=True, error_model="numpy")
def _softmax_kernel(x, out):
    for r in range(x.shape[0]):
        negmax = -_reduce_max(x[r])
        scale = _ONE / _sum_exp(x[r], out[r], negmax, True)
        for j in range(x.shape[1]):
            out[r, j] = scale * out[r, j]


@njit(cache=True, error_model="numpy")
def _log_softmax_kernel(x, out):
    for r in range(x.shape[0]):
        negmax = -_reduce_max(x[r])
        lg = math.log(_sum_exp(x[r], out[r], negmax, False))
        for j in range(x.shape[1]):
            out[r, j] = (negmax + x[r, j]) - lg


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax of every row of a 2-D float32 array as ``MlasComputeSoftmax`` (``Softmax``).

    Per row: the maximum (``MlasReduceMaximumF32KernelAvx512F``: 8-lane ``MAXPS`` blocks, a
    tree, leftovers in order), ``e = exp(x + (-max))`` with the exp of :func:`exp` (the same
    -103.97 clamp and ``VSCALEFPS``), their sum in 16 float32 lanes (element ``i`` in lane
    ``i % 16``, in order; lanes 8-15 added to 0-7, then ``((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7))``),
    ``scale = 1.0f / sum`` and ``y = scale * e``. The lane structure of the sum is AVX-512F's: on
    an AVX2 CPU ONNX Runtime sums in 8 lanes (``MlasComputeSumExpF32KernelFma3``), so its sums,
    and every output of a row longer than 8, may differ in the last bit there. A row holding
    ``+inf`` gives NaN (``inf - inf``), as ONNX Runtime's does.

    >>> softmax(np.array([[0.0, 1.0, 2.0]], np.float32)).tolist()
    [[0.09003057330846786, 0.2447284758090973, 0.6652409434318542]]
    """
    x = _rows(x)
    out = np.empty_like(x)
    _softmax_kernel(x, out)
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """LogSoftmax of every row as ``MlasComputeSoftmax(LogSoftmax=true)``: the maximum and the
    sum of exps of :func:`softmax`, then ``(x + (-max)) - logf(sum)`` (the C library's ``logf``,
    as ONNX Runtime calls ``std::log(float)``). Same dispatch note as :func:`softmax`."""
    x = _rows(x)
    out = np.empty_like(x)
    _log_softmax_kernel(x, out)
    return out


# ---------------------------------------------------------------------------------------------
# layer normalization
# ---------------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _ln_avx2_row(x, scale, bias, has_bias, eps, out):
    """One row (n >= 8) as MlasLayerNormKernelAvx2; returns (mean, 1 / denominator)."""
    n = x.size
    # pass 1: sum in float64, 4 lanes (VCVTPS2PD, VADDPD), lanes (0+2)+(1+3), leftovers in order
    l0 = l1 = l2 = l3 = 0.0
    i = 0
    while i + 4 <= n:
        l0 += float(x[i])
        l1 += float(x[i + 1])
        l2 += float(x[i + 2])
        l3 += float(x[i + 3])
        i += 4
    s = (l0 + l2) + (l1 + l3)
    while i < n:
        s += float(x[i])
        i += 1
    mean = np.float32(s / float(n))
    # pass 2: squared deviations in float32, 8 lanes by FMA, then a 4-wide multiply with
    # in-order adds for a leftover of 4-7, FMAs for the last 0-3
    acc = np.zeros(8, dtype=np.float32)
    i = 0
    while i + 8 <= n:
        for j in range(8):
            d = x[i + j] - mean
            acc[j] = fma32(d, d, acc[j])
        i += 8
    v = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
    if n - i >= 4:
        for j in range(4):
            d = x[i + j] - mean
            v = v + d * d
        i += 4
    while i < n:
        d = x[i] - mean
        v = fma32(d, d, v)
        i += 1
    inv = _ONE / np.float32(math.sqrt(v / np.float32(n) + eps))
    for h in range(n):
        t = (x[h] - mean) * inv
        out[h] = fma32(t, scale[h], bias[h]) if has_bias else t * scale[h]
    return mean, inv


@njit(cache=True, error_model="numpy")
def _ln_welford_row(x, scale, bias, has_bias, eps, out):
    """One row as ONNX Runtime's scalar loop: Welford's running mean and M2 in float32."""
    n = x.size
    mean = _ZERO
    m2 = _ZERO
    for h in range(n):
        d = x[h] - mean
        mean = mean + d / np.float32(h + 1)
        m2 = m2 + d * (x[h] - mean)
    denom = np.float32(math.sqrt(m2 / np.float32(n) + eps))
    for h in range(n):
        t = (x[h] - mean) / denom * scale[h]
        out[h] = t + bias[h] if has_bias else t
    return mean, _ONE / denom


@njit(cache=True, error_model="numpy")
def _layer_norm_kernel(x, scale, bias, has_bias, eps, welford_only, out, mean_out, inv_out):
    n = x.shape[1]
    for r in range(x.shape[0]):
        if n >= 8 and not welford_only:
            m, iv = _ln_avx2_row(x[r], scale, bias, has_bias, eps, out[r])
        else:
            m, iv = _ln_welford_row(x[r], scale, bias, has_bias, eps, out[r])
        mean_out[r] = m
        inv_out[r] = iv


def _layer_norm(x, scale, bias, eps, welford_only):
    x = _rows(x)
    n = x.shape[1]
    sc = np.ascontiguousarray(scale, dtype=F32).reshape(-1)
    b = np.zeros(n, F32) if bias is None else np.ascontiguousarray(bias, dtype=F32).reshape(-1)
    if sc.size != n or b.size != n:
        raise ValueError(f"scale ({sc.size}) and bias ({b.size}) must have the row length {n}")
    out = np.empty_like(x)
    mean = np.empty(x.shape[0], F32)
    inv = np.empty(x.shape[0], F32)
    _layer_norm_kernel(x, sc, b, bias is not None, F32(eps), welford_only, out, mean, inv)
    return out, mean, inv


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
               eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalization of every row of a 2-D float32 array as ONNX Runtime's
    ``LayerNormalization`` (CPU, float32, scale and bias of the row length); returns ``(Y, Mean,
    InvStdDev)``, the last two one value per row.

    Rows of 8 or more elements take ``MlasLayerNormKernelAvx2``: the mean from a float64 sum (4
    lanes of ``VCVTPS2PD``/``VADDPD``, combined ``(l0+l2)+(l1+l3)``, leftovers in order),
    rounded to float32; the variance ``sum((x - mean)**2) / n`` in float32 (8 lanes by FMA,
    combined ``((s0+s4)+(s2+s6))+((s1+s5)+(s3+s7))``; a leftover of 4-7 by a multiply and
    in-order adds, the last 0-3 by FMA); ``inv = 1.0f / sqrtf(var + eps)``;
    ``y = fma((x - mean) * inv, scale, bias)`` (no bias: two multiplies). Shorter rows take
    the scalar Welford loop of :func:`welford_layer_norm`. ``eps`` is rounded to float32 first.
    On a CPU without AVX2 every row takes the Welford loop (other results).

    >>> y, m, iv = layer_norm(np.arange(8, dtype=np.float32)[None], np.ones(8, np.float32), None, 1e-5)
    >>> float(m[0]), float(iv[0]), y[0, :2].tolist()
    (3.5, 0.43643537163734436, [-1.5275237560272217, -1.0910884141921997])
    """
    return _layer_norm(x, scale, bias, eps, False)


def welford_layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
                       eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalization of every row as ONNX Runtime's scalar float32 loop (``LayerNormalization``
    rows shorter than 8, every row of ``com.microsoft.SkipLayerNormalization``): Welford's
    updates ``d = x - mean; mean += d / k; m2 += d * (x - mean)`` for k = 1..n,
    ``denom = sqrtf(m2 / n + eps)``, ``y = (x - mean) / denom * scale + bias`` (no FMA), and
    ``(Y, Mean, 1.0f / denom)``. Independent of the CPU's vector extensions.

    >>> y, m, iv = welford_layer_norm(np.array([[1, 2, 4]], np.float32), np.ones(3, np.float32), None, 0.0)
    >>> y[0].tolist()
    [-1.069044828414917, -0.2672611474990845, 1.3363062143325806]
    """
    return _layer_norm(x, scale, bias, eps, True)


# ---------------------------------------------------------------------------------------------
# GELU
# ---------------------------------------------------------------------------------------------

_INV_SQRT2 = F32(0.70710678118654752440)
_GELU_B = F32(0.7978845608028654)  # sqrt(2 / pi)
_GELU_C = F32(0.035677408136300125)  # 0.044715 * sqrt(2 / pi)


@njit(cache=True, error_model="numpy")
def _gelu_kernel(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = v if v != v else (_HALF * v) * (_erf1(v * _INV_SQRT2) + _ONE)


@njit(cache=True, error_model="numpy")
def _gelu_tanh_kernel(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = (_HALF * v) * (_tanh1(v * ((_GELU_C * v) * v + _GELU_B)) + _ONE)


def gelu(x: np.ndarray) -> np.ndarray:
    """Elementwise GELU, erf form, as ONNX Runtime's ``Gelu`` (opset 20, ``approximate="none"``;
    ``com.microsoft.Gelu``; ``BiasGelu`` after its float32 bias add):
    ``(0.5f * x) * (erf(x * 0.70710677f) + 1.0f)`` with :func:`erf`'s operation sequence (on an
    AVX-512F CPU ONNX Runtime runs the fused ``MlasGeluErfKernelAvx512F``, the same operations;
    its ``|x| > 0.921875`` branch test differs from ``ErfKernelFma3``'s ``>=`` only at an argument
    ``x * 0.70710677f`` no float32 ``x`` produces). A NaN input is returned unchanged (a signaling
    NaN too, as ONNX Runtime 1.32 returns it).

    >>> gelu(np.array([1.0, -2.0], np.float32)).tolist()
    [0.8413447141647339, -0.04550027847290039]
    """
    return _unary(_gelu_kernel, x)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """Elementwise GELU, tanh form, as ``com.microsoft.FastGelu`` and ``Gelu(approximate="tanh")``:
    ``t = x * ((C * x) * x + B)`` without FMA (B = 0.7978846f, C = 0.035677407f), then
    ``(0.5f * x) * (tanh(t) + 1.0f)`` with :func:`tanh`.

    >>> gelu_tanh(np.array([1.0, -2.0], np.float32)).tolist()
    [0.8411920070648193, -0.045402348041534424]
    """
    return _unary(_gelu_tanh_kernel, x)


# ---------------------------------------------------------------------------------------------
# sums (Eigen)
# ---------------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _eigen_sum(x, lo, size, offset_mod4):
    """Eigen's LinearVectorizedTraversal redux of ``x[lo:lo+size]`` with 4-float packets;
    ``offset_mod4``: the element offset of ``x[lo]`` from a 16-byte boundary."""
    start = min((4 - offset_mod4) % 4, size)
    size2 = ((size - start) // 8) * 8
    size1 = ((size - start) // 4) * 4
    end2 = start + size2
    end1 = start + size1
    if size1 == 0:
        res = x[lo]
        for i in range(1, size):
            res = res + x[lo + i]
        return res
    p = np.empty(4, dtype=np.float32)
    for j in range(4):
        p[j] = x[lo + start + j]
    if size1 > 4:
        q = np.empty(4, dtype=np.float32)
        for j in range(4):
            q[j] = x[lo + start + 4 + j]
        i = start + 8
        while i < end2:
            for j in range(4):
                p[j] = p[j] + x[lo + i + j]
                q[j] = q[j] + x[lo + i + 4 + j]
            i += 8
        for j in range(4):
            p[j] = p[j] + q[j]
        if end1 > end2:
            for j in range(4):
                p[j] = p[j] + x[lo + end2 + j]
    res = (p[0] + p[2]) + (p[1] + p[3])
    for i in range(start):
        res = res + x[lo + i]
    for i in range(end1, size):
        res = res + x[lo + i]
    return res


@njit(cache=True, error_model="numpy")
def _sum_rows_kernel(x, out):
    n = x.shape[1]
    flat = x.reshape(-1)
    for r in range(x.shape[0]):
        out[r] = _eigen_sum(flat, r * n, n, (r * n) % 4)


def sum_rows(x: np.ndarray) -> np.ndarray:
    """The sum of every row of a 2-D float32 array (C order) as Eigen's vectorized ``sum()``,
    which ONNX Runtime's ``ReduceSum``/``ReduceMean`` run over trailing axes: 4-float packets
    starting at the first 16-byte-aligned element of the row (the array's start counted as
    aligned, as ONNX Runtime's buffers are), two packet accumulators over 8-element steps, one
    more packet, ``(p0+p2)+(p1+p3)``, then the unaligned head and the tail in order; rows
    shorter than one packet are summed in order.

    >>> sum_rows(np.arange(10, dtype=np.float32).reshape(1, 10)).tolist()
    [45.0]
    """
    x = _rows(x)
    out = np.empty(x.shape[0], F32)
    if x.shape[1]:
        _sum_rows_kernel(x, out)
    else:
        out[:] = 0
    return out


@njit(cache=True, error_model="numpy")
def _sum_blocks_kernel(flat, d0, d1, d2, out):
    for d in range(d1):
        v = _ZERO
        for i in range(d0):
            lo = (i * d1 + d) * d2
            v = v + _eigen_sum(flat, lo, d2, lo % 4)
        out[d] = v


def sum_blocks(flat: np.ndarray, d0: int, d1: int, d2: int) -> np.ndarray:
    """For a float32 array of shape ``(d0, d1, d2)`` (given flat, C order), the ``d1`` sums over
    the first and last axes as ONNX Runtime's ``FastReduceRKR``: ``0 + s(0, d) + s(1, d) + ...``
    in float32, each ``s(i, d)`` the Eigen sum (:func:`sum_rows`) of the contiguous block
    ``[i, d, :]``.

    >>> sum_blocks(np.arange(12, dtype=np.float32), 2, 2, 3).tolist()
    [24.0, 42.0]
    """
    flat = np.ascontiguousarray(flat, dtype=F32).reshape(-1)
    if flat.size != d0 * d1 * d2:
        raise ValueError(f"{flat.size} elements do not form the shape ({d0}, {d1}, {d2})")
    out = np.empty(d1, F32)
    if d2 == 0:
        out[:] = 0
    else:
        _sum_blocks_kernel(flat, d0, d1, d2, out)
    return out


@njit(cache=True, error_model="numpy")
def _powf_kernel(x, y, out):
    for i in range(x.size):
        out[i] = math.pow(x[i], y[i])


@njit(cache=True, error_model="numpy")
def _pow_double_kernel(x, y, out):
    for i in range(x.size):
        out[i] = np.float32(math.pow(float(x[i]), float(y[i])))


def powf(x: np.ndarray, y: np.ndarray, double: bool = False) -> np.ndarray:
    """Elementwise ``powf(x, y)`` of the C library (float32 ``x`` and ``y``; numba calls it for a
    float32 ``math.pow``), as ONNX Runtime's ``Pow`` calls ``std::pow(float, float)``; with
    ``double=True`` the C library's ``pow`` of ``x`` and ``y`` (any numeric ``y``) converted to
    double, rounded to float32, as ``std::pow(float, int64_t)`` computes. numpy broadcasting.
    (numpy's own ``power`` may use other code, e.g. SVML on AVX-512 CPUs.)

    >>> powf(np.array([2.0, 9.0], np.float32), np.array([0.5], np.float32)).tolist()
    [1.4142135381698608, 3.0]
    """
    if double:
        a, b = np.broadcast_arrays(np.asarray(x, dtype=F32), np.asarray(y))
        b = np.ascontiguousarray(b, dtype=np.float64)  # int64 -> double as C++ converts it
        kernel = _pow_double_kernel
    else:
        a, b = np.broadcast_arrays(np.asarray(x, dtype=F32), np.asarray(y, dtype=F32))
        b = np.ascontiguousarray(b)
        kernel = _powf_kernel
    a = np.ascontiguousarray(a)
    out = np.empty(a.shape, F32)
    kernel(a.reshape(-1), b.reshape(-1), out.reshape(-1))
    return out


def warm_up() -> None:
    """Call every kernel of this module once on tiny inputs (compiles them, or loads them from
    numba's cache), for ``intsim compile``.

    >>> warm_up()
    """
    x = np.linspace(-3, 3, 20, dtype=F32)
    for fn in (erf, exp, tanh, logistic, gelu, gelu_tanh):
        fn(x)
    softmax(x.reshape(2, 10))
    log_softmax(x.reshape(2, 10))
    layer_norm(x.reshape(2, 10), np.ones(10, F32), np.zeros(10, F32), 1e-5)
    sum_rows(x.reshape(4, 5))
    sum_blocks(x, 2, 2, 5)
    sum_middle(x, 2, 2, 5)
    powf(np.abs(x), x)
    powf(x, np.arange(20), double=True)


@njit(cache=True, error_model="numpy")
def _sum_middle_kernel(flat, d0, d1, d2, out):
    for d in range(d0):
        base = d * d1 * d2
        for n in range(d2):
            c = _ZERO
            first = True
            k = 0
            while k + 4 <= d1:
                p = base + k * d2 + n
                t = ((flat[p] + flat[p + d2]) + flat[p + 2 * d2]) + flat[p + 3 * d2]
                c = t + (_ZERO if first else c)
                first = False
                k += 4
            if d1 - k >= 2:
                p = base + k * d2 + n
                c = (flat[p] + flat[p + d2]) + (_ZERO if first else c)
                first = False
                k += 2
            if d1 - k == 1:
                c = flat[base + k * d2 + n] + (_ZERO if first else c)
            out[d * d2 + n] = c


def sum_middle(flat: np.ndarray, d0: int, d1: int, d2: int) -> np.ndarray:
    """For a float32 array of shape ``(d0, d1, d2)`` (given flat, C order), the ``(d0, d2)`` sums
    over the middle axis as ONNX Runtime's ``FastReduceKRK``: a ones row vector times each
    ``(d1, d2)`` block in MLAS's SGEMM, whose M = 1 kernel (``x86_64/SgemmKernelM1Avx.S``, AVX, no
    FMA) adds the rows four at a time, ``c = (((r0 + r1) + r2) + r3) + c`` (the first group
    ``+ 0``), then a pair ``c = (r0 + r1) + c`` and a last row ``c = r0 + c``; the products by
    1.0 are exact.

    >>> sum_middle(np.arange(12, dtype=np.float32), 1, 3, 4).tolist()
    [12.0, 15.0, 18.0, 21.0]
    """
    flat = np.ascontiguousarray(flat, dtype=F32).reshape(-1)
    if flat.size != d0 * d1 * d2:
        raise ValueError(f"{flat.size} elements do not form the shape ({d0}, {d1}, {d2})")
    out = np.zeros(d0 * d2, F32)
    if d1:
        _sum_middle_kernel(flat, d0, d1, d2, out)
    return out
