"""Vectorisable elementwise math for generated Numba loops.

Numba from PyPI has no vector math library (llvmlite is built without SVML), so ``np.exp``
and friends inside an ``@njit`` loop are one scalar libm call per element and the loop does
not vectorise. The functions here are written with plain arithmetic, bit casts and selects
(no branches, loops or libm calls), so LLVM inlines them and vectorises a loop such as

    for i in range(n):
        out[i] = exp_f32(x[i])

into packed AVX/AVX-512 code. ``sqrt``, ``abs``, ``floor``, ``min``/``max`` need nothing
from here: ``np.sqrt`` and ``math.sqrt`` on float32 both become ``vsqrtps`` (negative ->
nan, -0 -> -0, as NumPy), ``abs`` becomes an ``and`` of the sign bit.

Using them from generated code
------------------------------
``VECTOR_MATH[(function, dtype_name)]`` names the function (``vector_math_name`` does the
lookup; ``scalar.VECTOR_MATH`` says which primitive calls which function); a pair not in the
table (float64 sin/cos, float16, complex) stays on NumPy's scalar function. Import the module
and call by attribute, e.g. ``from tracejit.backend import vecmath as _vm`` in the generated
source and ``out[i] = _vm.exp_f32(x[i])``, or put the dispatchers in the generated function's
globals. ``pow`` takes two arguments (``pow_f32(x,
y)``); ``sigmoid`` is ``1 / (1 + exp(-x))``. Arguments are converted to the function's dtype
(``exp_f32`` of a float64 rounds it to float32 first), so the generator must pick the
function by the dtype of the result.

- The kernels are ordinary ``numba.njit`` functions (flags in ``NJIT_OPTIONS``:
  ``fastmath=False, error_model='numpy', cache=True``) marked ``alwaysinline`` for LLVM, so
  each is inlined into the calling loop, keeping its own IEEE semantics even when the caller
  is compiled with ``fastmath=True``; no ``inline='always'`` (Numba IR inlining) is needed,
  and it would be harmful in a fastmath caller (the range reductions and NaN tests rely on
  exact IEEE arithmetic).
- Compile the calling loop with ``error_model='numpy'``: with the default 'python' model
  Numba puts a ZeroDivisionError branch in front of every division of the caller, which can
  stop vectorisation. The kernels themselves never raise.
- ``prefer_vector_width_512()`` as the first statement of a generated function lets LLVM
  use 512-bit vectors for its loops (LLVM prefers 256 bits on recent Intel CPUs); same
  results, 1.1-1.5x faster loops on this machine. A no-op without AVX-512.
- First use of a kernel in a process costs ~0.5-2 s of compilation; ``cache=True`` keeps
  them in Numba's on-disk cache, after which linking one into a new loop is cheap.
- ``fmuladd`` (``llvm.fmuladd``) is fused where the CPU has FMA; on a CPU without it the
  results can differ in the last bit from the tables below (same algorithms, same bounds up
  to ~0.5 ulp). All the exact steps (Cody-Waite splits, the sin/cos reduction) are exact with
  or without fusion.

Edge cases follow NumPy: NaN propagates; +-inf; signed zeros (tanh, expm1, log1p, sin keep
-0); subnormal inputs (log, log1p) and subnormal results (exp of -87.34..-103.97, sigmoid
below -87.34, pow), not flushed to zero; overflow to inf exactly where the correctly rounded
result overflows (float32 exp: 88.72283 finite, 88.72284 -> inf, as NumPy); log(0) = -inf,
log(x < 0) = nan; tanh is exactly +-1 for |x| >= 9.0109 (float32) / 19.06 (float64), where
the correctly rounded result is (NumPy's own float32 tanh returns 1 - 2**-24 up to 10.0);
pow has C99's special cases (pow(x, +-0) = 1, pow(1, y) = 1, pow(-1, +-inf) = 1, negative
base with an odd integer exponent keeps the sign, negative finite base with a non-integer
exponent gives nan, pow(+-0, y < 0) = inf, ...).

Accuracy
--------
ulp = distance between the result and the correctly rounded value in the ordered float
space (0 = correctly rounded). float32: against the float64 libm result rounded to float32,
measured over ALL 2**32 float32 inputs by ``benchmarks/vecmath_bench.py --exhaustive`` (pow:
12M random pairs, all exponents). float64: against NumPy's float64 functions, 21M inputs
(random bit patterns of every exponent, ordinary ranges, near overflow and underflow).

=========  =================================  ===================================
function   float32 max ulp (where)            float64 max ulp vs NumPy / rel. error
=========  =================================  ===================================
exp        1   (x = 5.96e-08)                 1 / 2.2e-16
log        1   (x = 9.14e-43, subnormal)      1 / 2.2e-16
tanh       1   (x = 6.40e-04)                 3 / 4.4e-16
sigmoid    2   (x = -1.0988)                  2 / 3.3e-16 (vs e^x/(1+e^x) below 0)
log1p      2   (x = 8.60e-07)                 2 / 4.4e-16
expm1      2   (x = 0.3864)                   2 / 2.2e-16
sin        1   (x = 0.47485)                  not provided: libm (see below)
cos        1   (x = 0.39116)                  not provided: libm (see below)
pow        1   (random pairs; via float64)    568 ulp / 6.9e-14 relative
=========  =================================  ===================================

Not provided for float64: sin/cos (a branch-free reduction valid over the whole float64
range needs a 1100-bit 2/pi and would cost more than libm; the generator keeps np.sin /
np.cos). pow_f64 is exp(y * log|x|) in plain double arithmetic: its error grows with
|y * log x| (the rounding of the product), up to ~1e-13 relative before the result
overflows, inside the float64 contract (rtol 1e-12) but not a few ulp; the generator may
keep np.power for float64 if it wants libm's accuracy.

How: each function is written once (``_exp_core``, ``_log_core``, ...) and compiled for the
dtype of its argument; what differs between float32 and float64 is data, a ``FloatFormat``
(``FLOAT32``, ``FLOAT64``: polynomial coefficients, exponent bits, range-reduction constants,
thresholds), which ``_fmt(x)`` selects by the type of ``x`` as a compile-time constant. The
public ``exp_f32``/``exp_f64``... convert their argument and call the one definition. Adding a
function is one definition plus its accuracy test. Two sub-steps keep a scheme per dtype,
chosen by type the same way: log's approximation on the reduced interval (float32: Cephes'
direct polynomial, no division; float64: fdlibm's 2 atanh(f / (2 + f)), where a direct
polynomial would need twice the degree) and tanh's magnitude (float32: an odd polynomial
below 0.625 and exp(2|x|) above; float64: both from one e = expm1(2|x|) and one division).

exp/expm1/tanh/sigmoid use a Cody-Waite reduction by ln 2 and minimax polynomials evaluated
by Horner's rule (``horner``; float32 exp: degree 6, fitted for this module, one degree less
than Cephes' expf and still within 1 ulp over all inputs; float64: the fdlibm split of ln 2
and an 11-term expm1 polynomial). exp scales by 2**k with one ``vscalefps``/``vscalefpd``
(``llvm.ldexp``) where the target has AVX-512 (``HAS_AVX512``) and in two multiplications
elsewhere, for subnormal results and 2**(bias+1); both give the same bits, the first ~25%
faster. Inputs whose exp rounds to zero skip the scaling (a result that underflows costs a
microcode assist, ~15x slower); results in the subnormal range still pay it. exp of an
argument known to be <= 0 (``exp_nonpositive``: sigmoid's exp(-|x|); the code generator's
choice for ``-x * x`` or a softmax's shifted logits) scales without AVX-512 in three operations
instead of nine: the bits of x / ln 2 + shift + bias + 64 give 2**(k + 64), normal for every
such k, and the product by 2**-64 rounds once. With AVX-512 it is exp. log and log1p
reduce to [sqrt(1/2), sqrt(2)) with bit operations (log1p by Kahan's log(u) * x / (u - 1));
tanh above 0.625 is 1 - 2 / (exp(2|x|) + 1), scaling by 2**k with an integer add to the
exponent field (the clamp keeps it normal); sin/cos (float32 only) reduce modulo pi/2
exactly in float64 with 2/pi cut in 29-bit pieces (x * piece is exact), valid over the
whole float32 range, and cos is sin a quarter turn on; pow_f32 is the float64 pow rounded
once.

Speed
-----
``python benchmarks/vecmath_bench.py`` (float32, ``out[i] = f(x[i])`` in a Numba loop, one
thread; Emerald Rapids with AVX-512, 2 vCPUs shared with other jobs during the run, so the
figures are the minimum of 31 runs, the libm column the median: medians of the
long-running rows were inflated up to 5x by lost time slices). ns per element; "vm512" adds ``prefer_vector_width_512()``; "libm" is
``np.f`` inside the Numba loop (what the generator emits without this module); NumPy's
sigmoid is ``1 / (1 + np.exp(-x))``.

=========  ===========================================  ==========================
           N = 1M (memory traffic included)             N = 64K (in cache, median)
function   vm     vm512   NumPy   libm    libm / vm     vm     vm512   NumPy
=========  =====  ======  ======  ======  ===========  =====  ======  =====
exp        0.45   0.35    0.48    11.3    25x          0.58   0.43    0.43
log        0.63   0.42    0.43    12.5    20x          0.62   0.41    0.44
tanh       0.59   0.47    0.34    57      97x          0.64   0.50    0.36
sigmoid    0.58   0.44    1.53    11.6    20x          0.80   0.64    1.22
log1p      0.86   0.55    0.51    38      44x          1.16   0.84    0.53
expm1      0.43   0.35    0.37    41      96x          0.62   0.45    0.59
sin        2.15   1.92    0.56    28      13x          2.09   2.09    0.57
cos        1.87   1.86    0.58    26      14x          2.08   2.09    0.56
pow        3.25   3.43    0.82    22      6.7x         3.43   3.35    0.79
=========  =====  ======  ======  ======  ===========  =====  ======  =====

Every loop is vectorised (packed FMAs on ymm; zmm for the float64-internal sin/cos/pow,
whose loops work on 8 doubles). The loops are 6-100x faster than the libm loops; against
NumPy's own AVX-512 ufuncs: exp, expm1 and log (with 512-bit vectors) at par or ahead,
sigmoid 3x ahead (one pass instead of three), tanh 1.4x and log1p 1.1x behind (1.7x both
with 256-bit vectors), sin/cos 3.4x and pow 4x behind (their exact full-range reduction / float64 evaluation costs ~70
double-precision operations per element). The point of the loops is fusion: the chain
``tanh(a*x+b) * exp(-x*x) + 0.5*sqrt(abs(x))`` over 1M float32 runs in 1.39 ms (1.00 ms
with 512-bit vectors) as one loop, against 72 ms for the libm loop and 2.4 ms for NumPy
eager on a quiet machine (8.5 ms during this run); 0.084 / 0.060 ms at N = 64K against
0.144 ms for NumPy. The chain is bound by tanh (~0.5 ns) + exp (~0.35 ns) per element: a
faster tanh needs a lower accuracy (a rational x P(x^2)/Q(x^2) runs at 0.24 ns but is off
by up to 6 ulp near 1). One polynomial instead of two, tanh = e / (e + 2) with e = expm1(2|x|),
makes the chain ~15% faster but is off by 3 ulp (x = 0.0313, where e / (e + 2) rounds twice);
correcting the quotient with its remainder costs the gain back (and still reaches 3 ulp near
8.8, where e + 2 is no longer exact to correct).

The table predates two changes measured against the code before them, in one process
(``out[i] = f(x[i])`` at N = 64K, and the chain): exp's ``vscalef`` scaling and degree-6
polynomial made the exp loop 1.4-1.5x faster (0.029 -> 0.020 ms), and with tanh's
integer-add scaling the chain runs 1.13-1.15x faster (1M: 1.38 -> 1.20 ms on a busy machine,
0.95 -> 0.83 ms on a quieter one). A degree-5 exp inside tanh saved no measurable time and
raised tanh's bound to 2 ulp, so it was not kept.
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

__all__ = [
    "VECTOR_MATH", "NJIT_OPTIONS", "vector_math_name", "prefer_vector_width_512",
    # bit casts and helpers
    "f32_as_i32", "f32_as_u32", "i32_as_f32", "u32_as_f32",
    "f64_as_i64", "f64_as_u64", "i64_as_f64", "u64_as_f64",
    "fmuladd", "rint", "floor", "horner", "FloatFormat", "FLOAT32", "FLOAT64",
    # float32
    "exp_f32", "exp_nonpositive_f32", "log_f32", "tanh_f32", "sigmoid_f32", "log1p_f32", "expm1_f32",
    "sin_f32", "cos_f32", "pow_f32",
    # float64
    "exp_f64", "exp_nonpositive_f64", "log_f64", "tanh_f64", "sigmoid_f64", "log1p_f64", "expm1_f64", "pow_f64",
]

# ---------------------------------------------------------------------------------------------
# Intrinsics: bit casts and the few LLVM intrinsics the kernels need
# ---------------------------------------------------------------------------------------------

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_F64 = ir.DoubleType()


def _float_to_int_cast(float_type, int_type, llvm_int):
    def impl(typingctx, x):
        if x != float_type:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_int)
        return int_type(x), codegen
    return impl


def _to_width(builder, value, value_type, llvm_int):
    """An integer value truncated or extended (by its signedness) to ``llvm_int``: Numba
    widens integer arithmetic to 64 bits, and the low bits are the ones that count."""
    if value.type.width > llvm_int.width:
        return builder.trunc(value, llvm_int)
    if value.type.width < llvm_int.width:
        signed = getattr(value_type, "signed", True)
        return builder.sext(value, llvm_int) if signed else builder.zext(value, llvm_int)
    return value


def _int_to_float_cast(float_type, llvm_int, llvm_float):
    def impl(typingctx, x):
        if not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(_to_width(builder, args[0], signature.args[0], llvm_int), llvm_float)
        return float_type(x), codegen
    return impl


f32_as_i32 = intrinsic(_float_to_int_cast(types.float32, types.int32, _I32))
f32_as_i32.__doc__ = "The bits of a float32 as an int32 (LLVM ``bitcast``)."
f32_as_u32 = intrinsic(_float_to_int_cast(types.float32, types.uint32, _I32))
f32_as_u32.__doc__ = "The bits of a float32 as a uint32 (LLVM ``bitcast``)."
f64_as_i64 = intrinsic(_float_to_int_cast(types.float64, types.int64, _I64))
f64_as_i64.__doc__ = "The bits of a float64 as an int64 (LLVM ``bitcast``)."
f64_as_u64 = intrinsic(_float_to_int_cast(types.float64, types.uint64, _I64))
f64_as_u64.__doc__ = "The bits of a float64 as a uint64 (LLVM ``bitcast``)."
i32_as_f32 = intrinsic(_int_to_float_cast(types.float32, _I32, _F32))
i32_as_f32.__doc__ = "An integer's low 32 bits as a float32 (LLVM ``bitcast``); any integer type."
u32_as_f32 = intrinsic(_int_to_float_cast(types.float32, _I32, _F32))
u32_as_f32.__doc__ = "An integer's low 32 bits as a float32 (LLVM ``bitcast``); any integer type."
i64_as_f64 = intrinsic(_int_to_float_cast(types.float64, _I64, _F64))
i64_as_f64.__doc__ = "An integer's 64 bits as a float64 (LLVM ``bitcast``); any integer type."
u64_as_f64 = intrinsic(_int_to_float_cast(types.float64, _I64, _F64))
u64_as_f64.__doc__ = "An integer's 64 bits as a float64 (LLVM ``bitcast``); any integer type."


@intrinsic
def fmuladd(typingctx, a, b, c):
    """``a * b + c`` through ``llvm.fmuladd``: one fused multiply-add where the CPU has FMA,
    a multiply and an add otherwise. All three arguments must have the same float type."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fmuladd", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)
    return a(a, b, c), codegen


def _unary_llvm(name):
    def impl(typingctx, x):
        if not isinstance(x, types.Float):
            return None

        def codegen(context, builder, signature, args):
            ty = args[0].type
            fn = builder.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty]))
            return builder.call(fn, args)
        return x(x), codegen
    return impl


@intrinsic
def _always_inline(typingctx):
    """Mark the function being compiled ``alwaysinline`` for LLVM. The kernels are separate
    Numba functions that LLVM inlines into the calling loop (keeping their own fastmath-free
    flags); past a size threshold (pow, sin) LLVM would keep them as calls, and a call in
    the loop body stops vectorisation."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def prefer_vector_width_512(typingctx):
    """Call as the first statement of an ``@njit`` function to let LLVM vectorise its loops
    with 512-bit registers (function attribute ``"prefer-vector-width"="512"``). LLVM's
    tuning for recent Intel CPUs prefers 256 bits even where AVX-512 exists; with 512 the
    loops here run ~1.3-1.5x faster on this machine (AVX-512, Emerald Rapids). Results are
    bit-identical. A no-op where the CPU has no 512-bit vectors."""
    def codegen(context, builder, signature, args):
        # llvmlite's attribute set only admits keyword attributes; a string attribute is
        # written into the IR verbatim.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _ldexp(typingctx, y, k):
    """``y * 2**k`` for a float y and an integer k (or an integer-valued float of y's type)
    with |k| < 2**31, rounded once, through ``llvm.ldexp``: overflow gives inf and a
    subnormal result is rounded correctly. On AVX-512 this is one ``vscalefps``/``vscalefpd``
    per vector; elsewhere LLVM calls libm's ``ldexp`` per element, so callers use it only when
    ``HAS_AVX512`` (see ``_scale_in_one_step``)."""
    if not (isinstance(y, types.Float) and (y == k or isinstance(k, types.Integer))):
        return None

    def codegen(context, builder, signature, args):
        value, exponent = args
        if isinstance(signature.args[1], types.Float):
            exponent = builder.fptosi(exponent, _I32)
        elif exponent.type.width > 32:
            exponent = builder.trunc(exponent, _I32)
        elif exponent.type.width < 32:
            exponent = builder.sext(exponent, _I32)
        fn = builder.module.declare_intrinsic("llvm.ldexp", [value.type, _I32],
                                              ir.FunctionType(value.type, [value.type, _I32]))
        return builder.call(fn, [value, exponent])
    return y(y, k), codegen


def _target_has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512F (its own choice of target features:
    ``NUMBA_CPU_FEATURES`` if set, else the host's)."""
    from numba.core import config
    import llvmlite.binding as llvm
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else llvm.get_host_cpu_features().flatten()
    return "+avx512f" in features.split(",")


#: True where the kernels scale by 2**k with ``vscalef`` (one instruction) instead of two
#: multiplications by bit-built powers of two. Same results either way.
HAS_AVX512 = _target_has_avx512()

rint = intrinsic(_unary_llvm("llvm.rint"))
rint.__doc__ = "Round to the nearest integer, ties to even (``llvm.rint``), result stays a float."
floor = intrinsic(_unary_llvm("llvm.floor"))
floor.__doc__ = "``llvm.floor``: the float result, unlike ``math.floor`` which Numba makes an int."


# ---------------------------------------------------------------------------------------------
# Compilation flags of the kernels
# ---------------------------------------------------------------------------------------------

#: The flags every function here is compiled with. ``fastmath`` must stay off: the kernels rely
#: on IEEE semantics (NaN tests, exact range reduction, the order of the additions).
#: ``error_model='numpy'`` keeps divisions free of the Python ZeroDivisionError branch.
NJIT_OPTIONS = dict(fastmath=False, error_model="numpy", nogil=True, cache=True)

_jit = numba.njit(**NJIT_OPTIONS)

F32 = np.float32
F64 = np.float64

# ---------------------------------------------------------------------------------------------
# Generic bit access: the integer of a float's width, and back
# ---------------------------------------------------------------------------------------------

_INT_OF_FLOAT = {types.float32: (types.int32, _I32), types.float64: (types.int64, _I64)}


@intrinsic
def _bits(typingctx, x):
    """The bits of a float32 / float64 as an int32 / int64 (LLVM ``bitcast``)."""
    if x not in _INT_OF_FLOAT:
        return None
    int_type, llvm_int = _INT_OF_FLOAT[x]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_int)
    return int_type(x), codegen


@intrinsic
def _from_bits(typingctx, i, like):
    """The low bits of the integer ``i`` as a float of ``like``'s type (LLVM ``bitcast``);
    ``like`` only gives the type. Numba widens integer arithmetic to 64 bits: the extra
    high bits are dropped."""
    if like not in _INT_OF_FLOAT or not isinstance(i, types.Integer):
        return None
    llvm_int = _INT_OF_FLOAT[like][1]

    def codegen(context, builder, signature, args):
        v = _to_width(builder, args[0], signature.args[0], llvm_int)
        return builder.bitcast(v, context.get_value_type(like))
    return like(i, like), codegen


@intrinsic
def _sra(typingctx, i, n, like):
    """Arithmetic right shift of the low bits of ``i`` (as many as ``like``, a float, has),
    as an integer of that width: an int32 shift stays 32 bits wide instead of Numba's 64,
    which would cost vector conversions."""
    if like not in _INT_OF_FLOAT or not (isinstance(i, types.Integer) and isinstance(n, types.Integer)):
        return None
    int_type, llvm_int = _INT_OF_FLOAT[like]

    def codegen(context, builder, signature, args):
        return builder.ashr(*(_to_width(builder, v, t, llvm_int)
                              for v, t in zip(args[:2], signature.args[:2])))
    return int_type(i, n, like), codegen


@intrinsic
def _int_to_float(typingctx, i, like):
    """The integer ``i`` converted (rounded) to a float of ``like``'s type (``sitofp``)."""
    if like not in _INT_OF_FLOAT or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.sitofp(args[0], context.get_value_type(like))
    return like(i, like), codegen


# ---------------------------------------------------------------------------------------------
# The constants of each float format: the only place where float32 and float64 differ
# ---------------------------------------------------------------------------------------------

class FloatFormat(NamedTuple):
    """The constants the kernels of this module take from the dtype they compute in.

    One instance per dtype (``FLOAT32``, ``FLOAT64``); ``_fmt(x)`` selects it by the type of
    ``x`` inside compiled code, where it is a constant that LLVM folds into the instructions.
    Polynomials are tuples of coefficients, highest degree first (``horner``)."""
    one: float
    two: float
    half: float
    zero: float
    inf: float
    nan: float
    mant_bits: int          # explicit mantissa bits: 23 / 52
    mant_mask: int
    bias: int               # exponent bias: 127 / 1023
    sign_mask: int          # the sign bit, as a signed integer of the format's width
    log2e: float
    shift: float            # 1.5 * 2**mant_bits: x + shift - shift rounds x to an integer
    shift_bias: float       # shift + bias: its low mantissa bits hold k + bias
    shift_bias_64: float    # shift + bias + 64: exp of x <= 0 without AVX-512 builds 2**(k + 64)
    ln2_hi: float           # ln 2 in two parts (Cody-Waite); k * ln2_hi is exact
    ln2_lo: float
    min_normal: float
    subnormal_scale: float  # 2**subnormal_bits: brings a subnormal input into the normal range
    subnormal_bits: int
    exp_max: float          # clamp above the overflow threshold of exp (it stays inf)
    exp_zero_below: float   # exp rounds to +0 below this
    two_to_minus_64: float  # undoes shift_bias_64's offset
    expm1_min: float        # expm1 rounds to -1 below this
    expm1_big_k: float      # expm1 scales in two steps above this k (2**k - 1 inexact)
    tanh_clamp: float       # tanh is exactly +-1 above this; keeps 2**(2x / ln 2) normal
    tanh_small: float       # below this tanh uses its small-argument form
    sqrt_half_bits: int     # the bits of the float just below sqrt(1/2): log's reduction
    exp_poly: tuple         # exp(r) ~ 1 + r + r^2 exp_poly(r) for |r| <= ln2/2
    expm1_poly: tuple       # expm1(r) ~ r + r^2 expm1_poly(r)
    log_poly: tuple         # float32 log: log(1+f) ~ f - f^2/2 + f^3 log_poly(f)
    log_w: tuple            # float64 log (fdlibm): R = z log_z(w) + w log_w(w), z = s^2, w = z^2
    log_z: tuple
    tanh_poly: tuple        # float32 tanh: tanh(x) ~ x + x^3 tanh_poly(x^2)


def _hex32(*hs):
    return tuple(F32(float.fromhex(h)) for h in hs)


def _hex64(*hs):
    return tuple(F64(float.fromhex(h)) for h in hs)


# expm1(r) ~ r + r^2 * poly(r) on |r| <= ln2/2 (minimax, double coefficients), highest first.
_EXPM1_POLY_F64 = _hex64(
    "0x1.1f143d060a28ap-29", "0x1.af5eedae67435p-26", "0x1.27e517fc0d54bp-22",
    "0x1.71ddf82db5bb4p-19", "0x1.a01a018b4ecbbp-16", "0x1.a01a01affa35dp-13",
    "0x1.6c16c16c1b5f3p-10", "0x1.111111110f663p-7", "0x1.555555555554bp-5",
    "0x1.5555555555559p-3", "0x1p-1")

FLOAT32 = FloatFormat(
    one=F32(1.0), two=F32(2.0), half=F32(0.5), zero=F32(0.0), inf=F32(np.inf), nan=F32(np.nan),
    mant_bits=23, mant_mask=0x007FFFFF, bias=127, sign_mask=-0x80000000,
    log2e=F32(1.4426950408889634), shift=F32(12582912.0), shift_bias=F32(12583039.0),
    shift_bias_64=F32(12583103.0),
    ln2_hi=F32(0.693359375), ln2_lo=F32(-2.12194440e-4),       # k * ln2_hi exact for |k| < 2**15
    min_normal=F32(1.17549435e-38), subnormal_scale=F32(33554432.0), subnormal_bits=25,
    exp_max=F32(88.8), exp_zero_below=F32(-104.0),
    two_to_minus_64=F32(2.0 ** -64), expm1_min=F32(-17.5), expm1_big_k=F32(63.0),
    tanh_clamp=F32(9.5), tanh_small=F32(0.625), sqrt_half_bits=0x3F3504F3,
    # a degree-4 poly, least squares reweighted towards minimax relative error of exp
    # (2**-28 with the coefficients rounded to float32; Cephes' degree 5 is more than a
    # float32 result needs)
    exp_poly=_hex32("0x1.6a23c0p-10", "0x1.123a22p-7", "0x1.5558f4p-5", "0x1.555492p-3",
                    "0x1.fffffcp-2"),
    expm1_poly=_hex32("0x1.6b55a2p-10", "0x1.12287cp-7", "0x1.555736p-5", "0x1.5554aep-3",
                      "0x1.fffffep-2"),
    log_poly=tuple(F32(v) for v in (                           # Cephes logf
        7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
        -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)),
    log_w=(), log_z=(),
    # least squares fit on |x| <= 0.625, reweighted towards minimax relative error (2**-32
    # before rounding the coefficients to float32)
    tanh_poly=_hex32("0x1.184df6p-9", "-0x1.0bc854p-7", "0x1.638130p-6", "-0x1.b9ed7ep-5",
                     "0x1.111060p-3", "-0x1.555554p-2"),
)

FLOAT64 = FloatFormat(
    one=F64(1.0), two=F64(2.0), half=F64(0.5), zero=F64(0.0), inf=F64(np.inf), nan=F64(np.nan),
    mant_bits=52, mant_mask=0x000FFFFFFFFFFFFF, bias=1023, sign_mask=-0x7FFFFFFFFFFFFFFF - 1,
    log2e=F64(1.4426950408889634), shift=F64(6755399441055744.0),
    shift_bias=F64(6755399441056767.0),
    shift_bias_64=F64(6755399441056831.0),
    ln2_hi=F64(6.93147180369123816490e-01), ln2_lo=F64(1.90821492927058770002e-10),  # fdlibm
    min_normal=F64(2.2250738585072014e-308), subnormal_scale=F64(18014398509481984.0),
    subnormal_bits=54,
    exp_max=F64(710.0), exp_zero_below=F64(-746.0),
    two_to_minus_64=F64(2.0 ** -64), expm1_min=F64(-40.0),
    expm1_big_k=F64(511.0), tanh_clamp=F64(20.0), tanh_small=F64(0.625),
    sqrt_half_bits=0x3FE6A09E << 32,
    exp_poly=_EXPM1_POLY_F64, expm1_poly=_EXPM1_POLY_F64,
    log_poly=(),
    # log(1+f) = 2 atanh(s), s = f/(2+f): fdlibm e_log.c's Lg1..Lg7 in z = s^2, w = z^2
    log_w=tuple(F64(v) for v in (1.531383769920937332e-01, 2.222219843214978396e-01,
                                   3.999999999940941908e-01)),
    log_z=tuple(F64(v) for v in (1.479819860511658591e-01, 1.818357216161805012e-01,
                                    2.857142874366239149e-01, 6.666666666666735130e-01)),
    tanh_poly=(),
)

_FORMATS = {types.float32: FLOAT32, types.float64: FLOAT64}


def _fmt(x):
    """The ``FloatFormat`` of ``x``'s dtype (compiled code only)."""
    raise TypeError("_fmt is only callable from Numba-compiled code")


@overload(_fmt)
def _fmt_typer(x):
    fmt = _FORMATS.get(x)
    if fmt is None:
        return None
    return lambda x: fmt


@_jit
def horner(x, coefficients):
    """The polynomial with ``coefficients`` (a tuple, highest degree first) at ``x``, one
    ``fmuladd`` per coefficient; the loop is unrolled at compile time."""
    _always_inline()
    p = coefficients[0]
    for i in range(1, len(coefficients)):
        p = fmuladd(p, x, coefficients[i])
    return p


# ---------------------------------------------------------------------------------------------
# Building blocks, for any FloatFormat
# ---------------------------------------------------------------------------------------------


@_jit
def _pow2(kf):
    """2**k for an integer-valued float k in the normal exponent range: the sum k + shift +
    bias has k + bias in its low mantissa bits, moved to the exponent field."""
    _always_inline()
    t = _fmt(kf)
    return _from_bits(_bits(kf + t.shift_bias) << t.mant_bits, kf)


@_jit
def _reduce_ln2(x):
    """(k, r) with x = k ln 2 + r, |r| <= ln2/2 (k as an integer-valued float), and the sum
    x / ln 2 + shift whose low mantissa bits hold k."""
    _always_inline()
    t = _fmt(x)
    shifted = fmuladd(x, t.log2e, t.shift)
    kf = shifted - t.shift
    r = fmuladd(kf, -t.ln2_hi, x)
    return kf, fmuladd(kf, -t.ln2_lo, r), shifted


@_jit
def _scale_in_one_step(y, k):
    """y * 2**k, rounded once: one ``vscalefps``/``vscalefpd`` per vector (AVX-512)."""
    _always_inline()
    return _ldexp(y, k)


@_jit
def _scale_in_two_steps(y, kf):
    """y * 2**kf for an integer-valued kf from the subnormal range to 2**(bias + 1), in two
    steps: the first product is exact, the second rounds once (same bits as one step)."""
    _always_inline()
    t = _fmt(y)
    k1f = fmuladd(kf, t.half, t.shift) - t.shift
    return (y * _pow2(k1f)) * _pow2(kf - k1f)


_scale = _scale_in_one_step if HAS_AVX512 else _scale_in_two_steps


@_jit
def _exp_scaled(x):
    """exp(x) for x between exp_zero_below and exp_max, or NaN."""
    _always_inline()
    t = _fmt(x)
    kf, r, _ = _reduce_ln2(x)
    return _scale(fmuladd(horner(r, t.exp_poly), r * r, r) + t.one, kf)


@_jit
def _exp_nonpositive_scaled_pow2(x):
    """exp(x) for x between exp_zero_below and 0, or NaN, in three operations after the
    polynomial where ``_scale_in_two_steps`` takes nine: (exp(r) * 2**(k + 64)) * 2**-64. The
    sum x / ln 2 + shift + bias + 64 holds k + bias + 64 in its low mantissa bits, so shifting
    its bits into the exponent field gives 2**(k + 64), normal for every k <= 0 down to
    exp_zero_below; the first product is exact and the second rounds once, so a subnormal
    result rounds as one scaling would."""
    _always_inline()
    t = _fmt(x)
    shifted = fmuladd(x, t.log2e, t.shift_bias_64)
    kf = shifted - t.shift_bias_64
    r = fmuladd(kf, -t.ln2_lo, fmuladd(kf, -t.ln2_hi, x))
    y = fmuladd(horner(r, t.exp_poly), r * r, r) + t.one
    return (y * _from_bits(_bits(shifted) << t.mant_bits, x)) * t.two_to_minus_64


@_jit
def _exp_core(x):
    """exp(x) for a float that may be NaN or +-inf; exact IEEE special cases."""
    _always_inline()
    t = _fmt(x)
    x = t.exp_max if x > t.exp_max else x
    # Lanes whose exp rounds to +0 compute exp(0) and are zeroed at the end: a product that
    # underflows costs a microcode assist, which made exp of a masked (-inf) logit ~10x
    # slower than of an ordinary one.
    underflow = x < t.exp_zero_below
    return t.zero if underflow else _exp_scaled(t.zero if underflow else x)


@_jit
def _exp_nonpositive_pow2(x):
    """exp(x) for x <= 0, -inf or NaN without AVX-512 (see ``_exp_nonpositive_scaled_pow2``)."""
    _always_inline()
    t = _fmt(x)
    underflow = x < t.exp_zero_below
    return t.zero if underflow else _exp_nonpositive_scaled_pow2(t.zero if underflow else x)


# exp of x <= 0 (sigmoid's exp(-|x|), a softmax's exp(x - max)). With AVX-512 it is exp itself:
# without the clamp above, the only difference left (one vminps), the 16M elementwise chain
# ran 2.8x slower (43 ms against 15 ms) in the same loop of instructions otherwise, and 1.25x
# slower at 1M elements.
_exp_nonpositive = _exp_core if HAS_AVX512 else _exp_nonpositive_pow2


@_jit
def _exp_small_k(x):
    """exp(x) for 0 <= x (or NaN) small enough that 2**k is normal: the scaling is an
    integer add to the exponent field (shifting the bits of x / ln 2 + shift left by
    mant_bits leaves exactly k << mant_bits: the shift constant's own bits move out)."""
    _always_inline()
    t = _fmt(x)
    kf, r, shifted = _reduce_ln2(x)
    e = fmuladd(horner(r, t.exp_poly), r * r, r) + t.one
    return _from_bits(_bits(e) + (_bits(shifted) << t.mant_bits), x)


@_jit
def _expm1_core(x):
    """expm1(x) for a float x (NaN-safe), without the sign of zero fix-up."""
    _always_inline()
    t = _fmt(x)
    x = t.exp_max if x > t.exp_max else x
    x = t.expm1_min if x < t.expm1_min else x
    kf, r, _ = _reduce_ln2(x)
    p = fmuladd(r * r, horner(r, t.expm1_poly), r)           # expm1(r)
    # expm1(x) = 2**k * p + (2**k - 1), evaluated as 2**j * (2**(k-j) p + 2**(k-j) - 2**-j)
    # with j = 1 for large k so that 2**(k-j) stays representable up to k = bias + 1.
    big = kf > t.expm1_big_k
    s = _pow2(kf - t.one if big else kf)
    h = t.half if big else t.one
    res = fmuladd(s, p, s - h)
    return res * t.two if big else res


def _log1p_reduced(f, kf):
    """d with log(1 + f) + kf * ln2_lo ~ f + d for f in [sqrt(1/2) - 1, sqrt(2) - 1): the
    one piece whose scheme depends on the dtype (compiled code only)."""
    raise TypeError("_log1p_reduced is only callable from Numba-compiled code")


def _log1p_reduced_poly(f, kf):
    # float32 (Cephes logf): f^3 P(f) - f^2 / 2, no division
    _always_inline()
    t = _fmt(f)
    z = f * f
    y = fmuladd(kf, t.ln2_lo, f * z * horner(f, t.log_poly))
    return fmuladd(z, -t.half, y)


def _log1p_reduced_atanh(f, kf):
    # float64 (fdlibm e_log.c): 2 atanh(s) with s = f / (2 + f); a direct polynomial in f
    # would need twice the degree for double precision
    _always_inline()
    t = _fmt(f)
    s = f / (t.two + f)
    z = s * s
    w = z * z
    rr = z * horner(w, t.log_z) + w * horner(w, t.log_w)
    hfsq = t.half * f * f
    return (s * (hfsq + rr) + kf * t.ln2_lo) - hfsq


@overload(_log1p_reduced, jit_options=dict(NJIT_OPTIONS, cache=False))
def _log1p_reduced_typer(f, kf):
    return {types.float32: _log1p_reduced_poly, types.float64: _log1p_reduced_atanh}.get(f)


@_jit
def _log_finite(x):
    """log(x) for x > 0 finite (other inputs give garbage, fixed up by the callers)."""
    _always_inline()
    t = _fmt(x)
    small = x < t.min_normal
    xs = x * t.subnormal_scale if small else x
    # m in [sqrt(1/2), sqrt(2)) and k with x = m 2**k, from the bits
    ix = _bits(xs) + (_bits(t.one) - t.sqrt_half_bits)
    # converted before subtracting the bias: an int32 stays 32 bits wide (Numba would widen
    # the subtraction to int64, which halves the vectors' lanes and costs conversions)
    kf = _int_to_float(_sra(ix, t.mant_bits, x), x) - (
        _int_to_float(t.bias + t.subnormal_bits, x) if small else _int_to_float(t.bias, x))
    f = _from_bits((ix & t.mant_mask) + t.sqrt_half_bits, x) - t.one
    return fmuladd(kf, t.ln2_hi, f + _log1p_reduced(f, kf))


@_jit
def _log_core(x):
    """log(x) with the special values: log(0) = -inf, log(x<0) = nan, subnormal inputs."""
    _always_inline()
    t = _fmt(x)
    res = _log_finite(x)
    res = -t.inf if x == t.zero else res
    res = x if not (x < t.inf) else res                # +inf -> +inf, nan -> nan
    return t.nan if x < t.zero else res


@_jit
def _copysign(mag, sign_of):
    _always_inline()
    t = _fmt(mag)
    return _from_bits(_bits(mag) | (_bits(sign_of) & t.sign_mask), mag)


def _tanh_magnitude(a):
    """tanh(a) for a = |x| >= 0 or NaN, in the dtype's own scheme (compiled code only)."""
    raise TypeError("_tanh_magnitude is only callable from Numba-compiled code")


def _tanh_magnitude_poly_exp(a):
    # float32: an odd polynomial up to tanh_small, 1 - 2 / (exp(2a) + 1) above (the error of
    # exp is halved there and the subtraction is exact), with exp of its own (a polynomial of
    # lower degree than expm1's); a clamped (one vmin; a NaN takes the polynomial) keeps 2**k
    # normal
    _always_inline()
    t = _fmt(a)
    small = fmuladd(a * (a * a), horner(a * a, t.tanh_poly), a)
    a_low = a if a < t.tanh_clamp else t.tanh_clamp
    big = t.one - t.two / (_exp_small_k(a_low + a_low) + t.one)
    return big if a > t.tanh_small else small


def _tanh_magnitude_expm1(a):
    # float64: e / (e + 2) up to tanh_small, 1 - 2 / (e + 2) above, e = expm1(2a): one
    # polynomial and one division
    _always_inline()
    t = _fmt(a)
    e = _expm1_core(t.two * (t.tanh_clamp if a > t.tanh_clamp else a))
    big = a > t.tanh_small
    return (-t.two if big else e) / (e + t.two) + (t.one if big else t.zero)


@overload(_tanh_magnitude, jit_options=dict(NJIT_OPTIONS, cache=False))
def _tanh_magnitude_typer(a):
    return {types.float32: _tanh_magnitude_poly_exp, types.float64: _tanh_magnitude_expm1}.get(a)


@_jit
def _tanh_core(x):
    """tanh with the sign of x: exactly +-1 above tanh_clamp, tanh(-0) = -0."""
    _always_inline()
    return _copysign(_tanh_magnitude(abs(x)), x)


@_jit
def _sigmoid_core(x):
    """1 / (1 + exp(-x)) without overflow: exp(-|x|), then 1/(1+e) or e/(1+e)."""
    _always_inline()
    t = _fmt(x)
    e = _exp_nonpositive(-abs(x))
    return (t.one if x >= t.zero else e) / (t.one + e)


@_jit
def _log1p_core(x):
    """log1p as log(u) * x / (u - 1) with u = 1 + x (Kahan's trick), x where u = 1."""
    _always_inline()
    t = _fmt(x)
    u = t.one + x
    r = _log_core(u) * (x / (u - t.one))
    r = x if u == t.one else r
    return x if x == t.inf else r


@_jit
def _expm1_signed_zero(x):
    """expm1 with expm1(-0) = -0."""
    _always_inline()
    r = _expm1_core(x)
    return x if x == _fmt(x).zero else r


# ---------------------------------------------------------------------------------------------
# The public kernels: each converts its argument to its dtype and calls the one definition
# ---------------------------------------------------------------------------------------------


@_jit
def exp_f32(x):
    """exp for float32: <= 1 ulp, subnormal results and overflow as NumPy."""
    _always_inline()
    return _exp_core(F32(x))


@_jit
def exp_f64(x):
    """exp for float64: ~1 ulp, subnormal results and overflow as NumPy."""
    _always_inline()
    return _exp_core(F64(x))


@_jit
def exp_nonpositive_f32(x):
    """exp_f32 for x <= 0, -inf or NaN only (the same bits there; others give garbage)."""
    _always_inline()
    return _exp_nonpositive(F32(x))


@_jit
def exp_nonpositive_f64(x):
    """exp_f64 for x <= 0, -inf or NaN only (the same bits there; others give garbage)."""
    _always_inline()
    return _exp_nonpositive(F64(x))


@_jit
def expm1_f32(x):
    """expm1 for float32; expm1(-0) = -0."""
    _always_inline()
    return _expm1_signed_zero(F32(x))


@_jit
def expm1_f64(x):
    """expm1 for float64; expm1(-0) = -0."""
    _always_inline()
    return _expm1_signed_zero(F64(x))


@_jit
def log_f32(x):
    """Natural log for float32; subnormal inputs handled, log(0) = -inf, log(x<0) = nan."""
    _always_inline()
    return _log_core(F32(x))


@_jit
def log_f64(x):
    """Natural log for float64; subnormal inputs handled, log(0) = -inf, log(x<0) = nan."""
    _always_inline()
    return _log_core(F64(x))


@_jit
def log1p_f32(x):
    """log1p for float32 (Kahan's trick on log)."""
    _always_inline()
    return _log1p_core(F32(x))


@_jit
def log1p_f64(x):
    """log1p for float64 (Kahan's trick on log)."""
    _always_inline()
    return _log1p_core(F64(x))


@_jit
def tanh_f32(x):
    """tanh for float32: exactly +-1 for |x| >= 9.0109, tanh(-0) = -0."""
    _always_inline()
    return _tanh_core(F32(x))


@_jit
def tanh_f64(x):
    """tanh for float64: exactly +-1 for |x| >= 19.06, tanh(-0) = -0."""
    _always_inline()
    return _tanh_core(F64(x))


@_jit
def sigmoid_f32(x):
    """1 / (1 + exp(-x)) for float32, without overflow."""
    _always_inline()
    return _sigmoid_core(F32(x))


@_jit
def sigmoid_f64(x):
    """1 / (1 + exp(-x)) for float64, without overflow."""
    _always_inline()
    return _sigmoid_core(F64(x))


# ---------------------------------------------------------------------------------------------
# pow: float64 arithmetic for both dtypes
# ---------------------------------------------------------------------------------------------


@_jit
def _pow_special_f64(x, y, r):
    """NumPy's (C99's) special cases of pow around r = exp(y * log|x|) computed for |x|:
    the sign for a negative base and an odd integer exponent, nan for a negative finite base
    and a non-integer finite exponent, and pow(x, +-0) = pow(1, y) = pow(-1, +-inf) = 1."""
    _always_inline()
    t = FLOAT64
    fy = floor(y)
    y_int = fy == y                                   # true for +-inf too
    y_odd = y_int & (floor(y * t.half) * t.two != y)
    neg = f64_as_i64(x) < 0                           # includes -0.0
    r = -r if (neg & y_odd) else r
    r = t.nan if ((x < t.zero) & (x > -t.inf) & (fy != y)) else r
    r = t.one if ((x == -t.one) & (abs(y) == t.inf)) else r
    r = t.one if ((y == t.zero) | (x == t.one)) else r
    return r


@_jit
def pow_f64(x, y):
    """x ** y for float64 as exp(y * log|x|) plus NumPy's special cases. Relative error
    <= ~1e-13 (it grows with |y * log x|, not a few ulp): see the module notes."""
    _always_inline()
    x = F64(x)
    y = F64(y)
    ax = abs(x)
    lx = _log_finite(ax)
    lx = -FLOAT64.inf if ax == FLOAT64.zero else lx
    lx = ax if not (ax < FLOAT64.inf) else lx
    r = _exp_core(y * lx)
    return _pow_special_f64(x, y, r)


@_jit
def pow_f32(x, y):
    """x ** y for float32, computed in float64 then rounded once: <= 1 ulp."""
    _always_inline()
    xd = F64(F32(x))
    yd = F64(F32(y))
    return F32(pow_f64(xd, yd))


# ---------------------------------------------------------------------------------------------
# sin / cos for float32: exact reduction modulo pi/2 in float64, all lanes alike
# ---------------------------------------------------------------------------------------------

# 2/pi cut into 29-bit pieces: x * piece is exact in float64 for any float32 x, and seven
# pieces (203 bits) cover the reduction of the largest float32 (2**128) with ~70 bits to spare.
_TWO_OVER_PI = tuple(F64(float.fromhex(h)) for h in (
    "0x1.45f306dp-1", "0x1.9391054p-30", "0x1.4fe13abp-59", "0x1.d1f534dp-88",
    "0x1.b81b6c5p-117", "0x1.5993c4p-148", "0x1.c820ff2p-175"))
(_TOP0, _TOP1, _TOP2, _TOP3, _TOP4, _TOP5, _TOP6) = _TWO_OVER_PI
_F64_ZERO = F64(0.0)
_F64_ONE = F64(1.0)
_F64_TWO = F64(2.0)
_F64_PIO2 = F64(float.fromhex("0x1.921fb54442d18p+0"))
_F64_EIGHTH = F64(0.125)
_F64_EIGHT = F64(8.0)
_F64_QUARTER = F64(0.25)
_F64_FOUR = F64(4.0)
# Taylor coefficients, |y| <= pi/4; truncation error < 1e-11 relative (float32 needs 6e-8).
_SIN_C = tuple(F64(v) for v in (-1 / 6, 1 / 120, -1 / 5040, 1 / 362880, -1 / 39916800))
(_S1, _S2, _S3, _S4, _S5) = _SIN_C
_COS_C = tuple(F64(v) for v in (-1 / 2, 1 / 24, -1 / 720, 1 / 40320, -1 / 3628800))
(_C1, _C2, _C3, _C4, _C5) = _COS_C


@_jit
def _mod8_piece(xd, c):
    """(integer part, fraction) of (xd * c) mod 8, both exact."""
    _always_inline()
    p = xd * c
    p = fmuladd(rint(p * _F64_EIGHTH), -_F64_EIGHT, p)
    n = rint(p)
    return n, p - n


@_jit
def _piece(xd, c):
    _always_inline()
    p = xd * c
    n = rint(p)
    return n, p - n


@_jit
def _reduce_pio2_f32(x):
    """(q, y): x = (4m + q) pi/2 + y with |y| <= pi/4 (y as float64, q in 0..3 as float64)."""
    _always_inline()
    xd = F64(x)
    n0, f0 = _mod8_piece(xd, _TOP0)
    n1, f1 = _mod8_piece(xd, _TOP1)
    n2, f2 = _mod8_piece(xd, _TOP2)
    n3, f3 = _piece(xd, _TOP3)                        # |x * c3| < 2**42: no mod needed
    n4, f4 = _piece(xd, _TOP4)
    # |x * c5| < 2**-19 and |x * c6| < 2**-46: fractions already
    # small to large, so that the big cancellations happen last and exactly
    f = (((((xd * _TOP6 + xd * _TOP5) + f4) + f3) + f2) + f1) + f0
    n = (((n4 + n3) + n2) + n1) + n0
    nf = rint(f)
    f = f - nf
    n = n + nf
    q = fmuladd(floor(n * _F64_QUARTER), -_F64_FOUR, n)
    return q, f * _F64_PIO2


@_jit
def _sin_poly(y, y2):
    _always_inline()
    p = fmuladd(fmuladd(fmuladd(fmuladd(_S5, y2, _S4), y2, _S3), y2, _S2), y2, _S1)
    return fmuladd(y * y2, p, y)


@_jit
def _cos_poly(y2):
    _always_inline()
    p = fmuladd(fmuladd(fmuladd(fmuladd(_C5, y2, _C4), y2, _C3), y2, _C2), y2, _C1)
    return fmuladd(y2, p, _F64_ONE)


@_jit
def _sin_quarter_turns(x, turns):
    """sin(x + turns * pi/2) for a float32 x, turns 0 (pass -0.0) or 1 (cos is sin a quarter
    turn on), as a float64."""
    _always_inline()
    q, y = _reduce_pio2_f32(x)
    y2 = y * y
    q = q + turns                                     # 0..4, 4 being 0
    odd = (q == _F64_ONE) | (q == F64(3.0))
    r = _cos_poly(y2) if odd else _sin_poly(y, y2)
    return -r if (q == _F64_TWO) | (q == F64(3.0)) else r


@_jit
def sin_f32(x):
    """sin for float32 over the whole float32 range (exact reduction, float64 kernel)."""
    _always_inline()
    x = F32(x)
    # no turn: adding -0 leaves every q as it is, so LLVM drops the addition (+0 would not)
    rf = F32(_sin_quarter_turns(x, -_F64_ZERO))
    return x if abs(x) < F32(2.44140625e-4) else rf   # |x| < 2**-12: sin x rounds to x


@_jit
def cos_f32(x):
    """cos for float32 over the whole float32 range (exact reduction, float64 kernel)."""
    _always_inline()
    return F32(_sin_quarter_turns(F32(x), _F64_ONE))


# ---------------------------------------------------------------------------------------------
# The table the code generator imports
# ---------------------------------------------------------------------------------------------

#: (function, dtype name) -> name of the function in this module. A pair missing here
#: (float64 sin/cos, anything float16/complex) stays on NumPy's scalar function (libm).
VECTOR_MATH: dict[tuple[str, str], str] = {
    ("exp", "float32"): "exp_f32",
    ("log", "float32"): "log_f32",
    ("tanh", "float32"): "tanh_f32",
    ("sigmoid", "float32"): "sigmoid_f32",
    ("log1p", "float32"): "log1p_f32",
    ("expm1", "float32"): "expm1_f32",
    ("sin", "float32"): "sin_f32",
    ("cos", "float32"): "cos_f32",
    ("pow", "float32"): "pow_f32",
    ("exp", "float64"): "exp_f64",
    ("exp_nonpositive", "float32"): "exp_nonpositive_f32",
    ("exp_nonpositive", "float64"): "exp_nonpositive_f64",
    ("log", "float64"): "log_f64",
    ("tanh", "float64"): "tanh_f64",
    ("sigmoid", "float64"): "sigmoid_f64",
    ("log1p", "float64"): "log1p_f64",
    ("expm1", "float64"): "expm1_f64",
    ("pow", "float64"): "pow_f64",
}


def vector_math_name(function: str, dtype) -> str | None:
    """The name in this module of ``function`` (``"exp"``, ...) on ``dtype``, or None."""
    return VECTOR_MATH.get((function, np.dtype(dtype).name))
