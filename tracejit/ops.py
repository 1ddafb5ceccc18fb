"""The primitive set: every operation tracejit records, each declared once with ``defop``.

Layer: sits on ``core`` (avals) and ``primitives`` (the record and ``bind``); the front end
(``tracejit.numpy``) composes everything users call from these. Each declaration holds the
NumPy implementation, the shape/dtype rule and the Numba loop body, side by side: what is
intrinsic to the operation. How each transformation treats it is a line in that transform's
rule table (``tracejit/rules/``: ``vjp.py`` for reverse mode).

Conventions the front end guarantees before calling a primitive, so rules stay simple:
elementwise inputs have equal shapes (broadcasts are explicit ``broadcast_to`` equations) and
equal dtypes (promotion is explicit ``cast``), except ``where``'s boolean condition.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from .core import Aval
from . import communicator
from .primitives import defop

# --------------------------------------------------------------------------- shape/dtype rules


def _all_weak(*avals) -> bool:
    return all(a.weak for a in avals)


def _same_shapes(name, avals):
    shapes = {a.shape for a in avals}
    if len(shapes) > 1:
        raise TypeError(f"{name}: elementwise inputs must have equal shapes, got {[a.shape for a in avals]}")
    return avals[0].shape


def _same_dtype_rule(name):
    def rule(*avals):
        shape = _same_shapes(name, avals)
        dtypes = {a.dtype for a in avals}
        if len(dtypes) > 1:
            raise TypeError(f"{name}: inputs must have equal dtypes, got {[str(a.dtype) for a in avals]}")
        return Aval(shape, avals[0].dtype, _all_weak(*avals))
    return rule


def _bool_rule(name):
    def rule(*avals):
        return Aval(_same_shapes(name, avals), np.bool_)
    return rule


def _as_array(fn):
    # NumPy returns scalars for 0-d results; the IR's values are always arrays.
    def impl(*args, **params):
        out = fn(*args, **params)
        return out if out.__class__ is np.ndarray else np.asarray(out)
    return impl


def _elementwise(name, np_fn, src, *, differentiable=True, doc=""):
    return defop(name, "elementwise", impl=_as_array(np_fn), abstract_eval=_same_dtype_rule(name),
                 scalar_src=src, differentiable=differentiable, doc=doc)


def _predicate(name, np_fn, src, doc=""):
    return defop(name, "elementwise", impl=_as_array(np_fn), abstract_eval=_bool_rule(name),
                 scalar_src=src, differentiable=False, doc=doc)


# --------------------------------------------------------------------------- elementwise
# Each line: name, NumPy, loop body ({0}, {1} are the operands).

add = _elementwise("add", np.add, "{0} + {1}")
sub = _elementwise("sub", np.subtract, "{0} - {1}")
mul = _elementwise("mul", np.multiply, "{0} * {1}")
div = _elementwise("div", np.true_divide, "{0} / {1}")
floordiv = _elementwise("floordiv", np.floor_divide, "{0} // {1}", differentiable=False)
mod = _elementwise("mod", np.mod, "{0} % {1}")
maximum = _elementwise("maximum", np.maximum, "np.maximum({0}, {1})")
minimum = _elementwise("minimum", np.minimum, "np.minimum({0}, {1})")
pow = _elementwise("pow", np.power, "{0} ** {1}")

neg = _elementwise("neg", np.negative, "-{0}")
abs = defop("abs", "elementwise", impl=_as_array(np.absolute),
            abstract_eval=lambda x: _real_part_rule(x), scalar_src="abs({0})",
            doc="the absolute value; of complex numbers, the modulus, in the matching real dtype")
sign = _elementwise("sign", np.sign, "np.sign({0})", differentiable=False)
floor = _elementwise("floor", np.floor, "np.floor({0})", differentiable=False)
exp = _elementwise("exp", np.exp, "np.exp({0})")
log = _elementwise("log", np.log, "np.log({0})")
log1p = _elementwise("log1p", np.log1p, "np.log1p({0})")
expm1 = _elementwise("expm1", np.expm1, "np.expm1({0})")
# Their own primitives rather than compositions of exp and log: libm's and NumPy's versions keep
# full precision near 0 (sinh), reach the overflow threshold (cosh) and are exact on the integer
# cases (log10(1000) = 3, exp2(3) = 8) that floor/ceil of the composed forms get wrong.
sinh = _elementwise("sinh", np.sinh, "np.sinh({0})")
cosh = _elementwise("cosh", np.cosh, "np.cosh({0})")
log2 = _elementwise("log2", np.log2, "np.log2({0})")
log10 = _elementwise("log10", np.log10, "np.log10({0})")
exp2 = _elementwise("exp2", np.exp2, "np.exp2({0})")
sqrt = _elementwise("sqrt", np.sqrt, "np.sqrt({0})")
tanh = _elementwise("tanh", np.tanh, "np.tanh({0})")
sin = _elementwise("sin", np.sin, "np.sin({0})")
cos = _elementwise("cos", np.cos, "np.cos({0})")

# The parts of complex numbers (of a real number: itself, zero, itself).


def _real_part_rule(x):
    return Aval(x.shape, np.empty(0, x.dtype).real.dtype, x.weak)


real = defop("real", "elementwise", impl=_as_array(np.real), abstract_eval=_real_part_rule,
             scalar_src="{0}.real", doc="the real part (of a real number: itself), in the matching real dtype")
imag = defop("imag", "elementwise", impl=_as_array(np.imag), abstract_eval=_real_part_rule,
             scalar_src="{0}.imag", doc="the imaginary part (of a real number: zero), in the matching real dtype")
conj = _elementwise("conj", np.conjugate, "np.conj({0})")

eq = _predicate("eq", np.equal, "{0} == {1}")
ne = _predicate("ne", np.not_equal, "{0} != {1}")
lt = _predicate("lt", np.less, "{0} < {1}")
le = _predicate("le", np.less_equal, "{0} <= {1}")
gt = _predicate("gt", np.greater, "{0} > {1}")
ge = _predicate("ge", np.greater_equal, "{0} >= {1}")
logical_and = _predicate("logical_and", np.logical_and, "{0} and {1}")
logical_or = _predicate("logical_or", np.logical_or, "{0} or {1}")
logical_not = _predicate("logical_not", np.logical_not, "not {0}")


def _where_rule(cond, x, y):
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be bool, got {cond.dtype}")
    _same_shapes("where", (cond, x, y))
    return _same_dtype_rule("where")(x, y)


where = defop("where", "elementwise", impl=_as_array(np.where), abstract_eval=_where_rule,
              scalar_src="{1} if {0} else {2}")


cast = defop("cast", "elementwise",
             impl=lambda x, *, dtype: np.asarray(x).astype(dtype),
             abstract_eval=lambda x, *, dtype: Aval(x.shape, dtype),
             scalar_src=lambda dtype: "{0} != 0" if np.dtype(dtype) == np.bool_ else f"np.{np.dtype(dtype).name}({{0}})",
             doc="convert to ``dtype`` (params: dtype), with NumPy's unsafe casting")

# --------------------------------------------------------------------------- shape


def _broadcast_rule(x, *, shape):
    lead = len(shape) - x.ndim
    if lead < 0 or any(d not in (1, s) for d, s in zip(x.shape, shape[lead:])):
        raise TypeError(f"broadcast_to: cannot broadcast {x.shape} to {shape}")
    return Aval(shape, x.dtype, x.weak)


broadcast_to = defop("broadcast_to", "shape",
                     impl=lambda x, *, shape: np.broadcast_to(x, shape),
                     abstract_eval=_broadcast_rule,
                     doc="repeat ``x`` along new leading axes and along its size-1 axes (params: shape)")


def _reshape_rule(x, *, shape):
    if math.prod(shape) != x.size:
        raise TypeError(f"reshape: cannot reshape {x.shape} (size {x.size}) to {shape}")
    return Aval(shape, x.dtype, x.weak)


reshape = defop("reshape", "shape",
                impl=lambda x, *, shape: x.reshape(shape) if isinstance(x, np.ndarray) else np.reshape(x, shape),
                abstract_eval=_reshape_rule,
                doc="row-major reshape to ``shape`` (params: shape, fully specified)")


def _transpose_rule(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise TypeError(f"transpose: perm {perm} is not a permutation of {x.ndim} axes")
    return Aval(tuple(x.shape[p] for p in perm), x.dtype, x.weak)


transpose = defop("transpose", "shape",
                  impl=lambda x, *, perm: np.transpose(x, perm),
                  abstract_eval=_transpose_rule,
                  doc="permute axes (params: perm)")


def _slice_rule(x, *, starts, stops, steps):
    if not (len(starts) == len(stops) == len(steps) == x.ndim):
        raise TypeError(f"slice: needs one start/stop/step per axis of {x.shape}")
    shape = []
    for n, a, b, s in zip(x.shape, starts, stops, steps):
        if s < 1 or not 0 <= a <= b <= n:
            raise TypeError(f"slice: bad bounds {a}:{b}:{s} for an axis of length {n}")
        shape.append(len(range(a, b, s)))
    return Aval(tuple(shape), x.dtype, x.weak)


slice = defop("slice", "shape",
              impl=lambda x, *, starts, stops, steps: np.array(x[tuple(map(builtins.slice, starts, stops, steps))]),
              abstract_eval=_slice_rule,
              doc="strided window, positive steps (params: starts, stops, steps; one per axis)")


def _pad_rule(x, *, config):
    if len(config) != x.ndim:
        raise TypeError(f"pad: needs one (low, high, interior) per axis of {x.shape}")
    shape = []
    for n, (lo, hi, interior) in zip(x.shape, config):
        if lo < 0 or hi < 0 or interior < 0:
            raise TypeError(f"pad: negative padding {(lo, hi, interior)}")
        shape.append(lo + hi + n + max(n - 1, 0) * interior)
    return Aval(tuple(shape), x.dtype, x.weak)


def _pad_impl(x, *, config):
    out = np.zeros(_pad_rule(Aval(np.shape(x), np.asarray(x).dtype), config=config).shape, np.asarray(x).dtype)
    index = tuple(builtins.slice(lo, lo + (n - 1) * (interior + 1) + 1 if n else lo, interior + 1)
                  for n, (lo, hi, interior) in zip(np.shape(x), config))
    out[index] = x
    return out


pad = defop("pad", "shape", impl=_pad_impl, abstract_eval=_pad_rule,
            doc="zero padding: (low, high, interior) per axis; the transpose of ``slice``")


def _concat_rule(*xs, axis):
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or x.dtype != first.dtype or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise TypeError(f"concatenate: incompatible inputs {[str(x) for x in xs]} on axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return Aval(tuple(shape), first.dtype, _all_weak(*xs))


concatenate = defop("concatenate", "shape",
                    impl=lambda *xs, axis: np.concatenate(xs, axis=axis),
                    abstract_eval=_concat_rule,
                    doc="join inputs along ``axis`` (params: axis)")


def _gather_rule(x, idx, *, axis):
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"gather: indices must be integers, got {idx.dtype}")
    return Aval(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype, x.weak)


def _gather_impl(x, idx, *, axis):
    return np.take(x, idx, axis=axis)


gather = defop("gather", "opaque", impl=_gather_impl, abstract_eval=_gather_rule,
               doc="``np.take(x, idx, axis)``: integer-array indexing on one axis (params: axis)")


def _scatter_add_rule(x, idx, updates, *, axis):
    expected = _gather_rule(x, idx, axis=axis)
    if updates.shape != expected.shape or updates.dtype != x.dtype:
        raise TypeError(f"scatter_add: updates must be {expected}, got {updates}")
    return x.strong() if not updates.weak else x


def _scatter_add_impl(x, idx, updates, *, axis):
    out = np.array(x, copy=True)
    index = (builtins.slice(None),) * axis + (idx,)
    np.add.at(out, index, updates)
    return out


scatter_add = defop("scatter_add", "opaque", impl=_scatter_add_impl, abstract_eval=_scatter_add_rule,
                    doc="a copy of ``x`` with ``updates`` added at ``idx`` along ``axis`` (repeats add up)")

# --------------------------------------------------------------------------- reductions


def _reduce_rule(name):
    def rule(x, *, axes):
        if any(not 0 <= a < x.ndim for a in axes) or len(set(axes)) != len(axes):
            raise TypeError(f"{name}: bad axes {axes} for shape {x.shape}")
        if name not in ("reduce_sum", "reduce_prod") and any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{name}: zero-size reduction over axes {axes} of shape {x.shape} has no identity")
        return Aval(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype, x.weak)
    return rule


# The reductions call the ufuncs' reduce, which is what np.sum, np.max and np.min call.
reduce_sum = defop("reduce_sum", "reduce", impl=lambda x, *, axes: np.asarray(np.add.reduce(x, axis=axes, dtype=np.asarray(x).dtype)),
                   abstract_eval=_reduce_rule("reduce_sum"), identity=0, combine="{acc} + {x}",
                   doc="sum over ``axes`` (params: axes), same dtype")
reduce_max = defop("reduce_max", "reduce", impl=lambda x, *, axes: np.asarray(np.maximum.reduce(x, axis=axes)),
                   abstract_eval=_reduce_rule("reduce_max"), identity="lowest",
                   combine="np.maximum({acc}, {x})",
                   doc="maximum over ``axes`` (NaN propagates); ties share the gradient")
reduce_min = defop("reduce_min", "reduce", impl=lambda x, *, axes: np.asarray(np.minimum.reduce(x, axis=axes)),
                   abstract_eval=_reduce_rule("reduce_min"), identity="highest",
                   combine="np.minimum({acc}, {x})",
                   doc="minimum over ``axes`` (NaN propagates); ties share the gradient")


def _arg_rule(name):
    def rule(x, *, axis):
        if not 0 <= axis < x.ndim:
            raise TypeError(f"{name}: bad axis {axis} for shape {x.shape}")
        if x.shape[axis] == 0:
            raise ValueError(f"{name}: attempt to get {name} of an empty sequence")
        return Aval(x.shape[:axis] + x.shape[axis + 1:], np.int64)
    return rule


argmax = defop("argmax", "reduce", impl=lambda x, *, axis: np.asarray(np.argmax(x, axis=axis)),
               abstract_eval=_arg_rule("argmax"), differentiable=False,
               doc="index of the first maximum along ``axis`` (NaN counts as the maximum)")
argmin = defop("argmin", "reduce", impl=lambda x, *, axis: np.asarray(np.argmin(x, axis=axis)),
               abstract_eval=_arg_rule("argmin"), differentiable=False,
               doc="index of the first minimum along ``axis`` (NaN counts as the minimum)")

# --------------------------------------------------------------------------- matmul


def _matmul_rule(a, b):
    if a.ndim < 2 or b.ndim != a.ndim or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2] \
            or a.dtype != b.dtype:
        raise TypeError(f"matmul: needs (..., m, k) @ (..., k, n) with equal batch dims and dtypes, got {a} @ {b}")
    return Aval(a.shape[:-1] + b.shape[-1:], a.dtype, _all_weak(a, b))


matmul = defop("matmul", "opaque", impl=_as_array(np.matmul), abstract_eval=_matmul_rule,
               doc="(batched) matrix product; batch dims equal, dtypes equal. Floats go to BLAS.")

# --------------------------------------------------------------------------- one row or matrix at a time
#
# These act on the last axis (argsort) or the last two (LAPACK), for every index of the leading
# (batch) axes, which must be equal across the operands. ``per_slice`` is the NumPy call for one
# row or matrix and how many trailing axes it takes: the interpreter calls NumPy's batched
# version, and the compiled program makes that call per row or matrix, which Numba compiles
# (to its own LAPACK calls for ``np.linalg``), so one emitter serves them all.


def _argsort_rule(x):
    if x.ndim < 1 or x.dtype.kind not in "biufc":
        raise TypeError(f"argsort: needs a numeric or boolean array of at least one axis, got {x}")
    return Aval(x.shape, np.int64)


# Complex numbers sort by real part, then imaginary part, with NaNs last in NumPy's order
# (R + Rj, R + nanj, nan + Rj, nan + nanj); Numba's mergesort compares them as NumPy's does.
argsort = defop("argsort", "opaque", impl=lambda x: np.argsort(x, axis=-1, kind="stable").astype(np.int64),
                abstract_eval=_argsort_rule, differentiable=False, per_slice=("np.argsort({}, kind='mergesort')", 1),
                doc="the positions that sort each row (last axis), equal values in their original order; complex "
                    "numbers by real part, then imaginary part, NaNs last as NumPy orders them")


def _float_matrices(name, a):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.dtype.kind not in "fc":
        raise TypeError(f"{name}: needs square float or complex matrices (..., n, n), got {a}")


def _real_dtype(dtype):
    """The dtype of the real values a decomposition of ``dtype`` matrices gives (singular
    values, eigenvalues of a Hermitian matrix, the log of an absolute determinant)."""
    return np.finfo(dtype).dtype


def _square_rule(name):
    def rule(a):
        _float_matrices(name, a)
        return a.strong()
    return rule


def _solve_rule(a, b):
    _float_matrices("solve", a)
    if b.ndim != a.ndim or b.shape[:-1] != a.shape[:-1] or b.dtype != a.dtype:
        raise TypeError(f"solve: needs (..., n, n) and (..., n, k) of one dtype and batch, got {a} and {b}")
    return b.strong()


def _slogdet_rule(a):
    _float_matrices("slogdet", a)
    return Aval(a.shape[:-2], a.dtype), Aval(a.shape[:-2], _real_dtype(a.dtype))


def _slogdet_impl(a):
    sign, logdet = np.linalg.slogdet(a)
    return np.asarray(sign), np.asarray(logdet)


def _eigh_rule(a):
    _float_matrices("eigh", a)
    return Aval(a.shape[:-1], _real_dtype(a.dtype)), a.strong()


def _rectangular_matrices(name, a):
    if a.ndim < 2 or a.dtype.kind not in "fc":
        raise TypeError(f"{name}: needs float or complex matrices (..., m, n), got {a}")
    *batch, m, n = a.shape
    return tuple(batch), m, n, min(m, n)


def _svd_rule(a):
    batch, m, n, k = _rectangular_matrices("svd", a)
    return Aval(batch + (m, k), a.dtype), Aval(batch + (k,), _real_dtype(a.dtype)), Aval(batch + (k, n), a.dtype)


def _qr_rule(a):
    batch, m, n, k = _rectangular_matrices("qr", a)
    return Aval(batch + (m, k), a.dtype), Aval(batch + (k, n), a.dtype)


def _qr_impl(a):
    q, r = np.linalg.qr(a)
    return q, r


def _eigh_impl(a):
    w, v = np.linalg.eigh(a)
    return w, v


def _svd_impl(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return u, s, vh


solve = defop("solve", "opaque", impl=_as_array(np.linalg.solve), abstract_eval=_solve_rule,
              per_slice=("np.linalg.solve({})", 2), doc="``x`` with ``a @ x == b`` for each matrix ``a`` and columns ``b``")
slogdet = defop("slogdet", "opaque", impl=_slogdet_impl, abstract_eval=_slogdet_rule, multiple_results=True,
                per_slice=("np.linalg.slogdet({})", 2), doc="the sign and the log of the absolute determinant of each matrix (for complex matrices, "
                    "a complex sign of modulus 1 and a real log)")
eigh = defop("eigh", "opaque", impl=_eigh_impl, abstract_eval=_eigh_rule, multiple_results=True,
             per_slice=("np.linalg.eigh({})", 2),
             doc="the eigenvalues (ascending, real) and eigenvectors (columns) of each symmetric or Hermitian "
                 "matrix, from its lower triangle")
qr = defop("qr", "opaque", impl=_qr_impl, abstract_eval=_qr_rule, multiple_results=True,
           per_slice=("np.linalg.qr({})", 2),
           doc="the reduced QR decomposition ``q, r`` of each matrix (orthonormal columns, upper triangular)")
svd = defop("svd", "opaque", impl=_svd_impl, abstract_eval=_svd_rule, multiple_results=True,
            per_slice=("np.linalg.svd({}, full_matrices=False)", 2),
            doc="the reduced singular value decomposition ``u, s, vh`` of each matrix (``u * s @ vh``, ``s`` "
                "real)")
cholesky = defop("cholesky", "opaque", impl=_as_array(np.linalg.cholesky), abstract_eval=_square_rule("cholesky"),
                 per_slice=("np.linalg.cholesky({})", 2),
                 doc="the lower Cholesky factor of each matrix, from its lower triangle (LinAlgError if one is "
                     "not positive definite)")

# --------------------------------------------------------------------------- FFT, a host call
#
# Numba cannot compile NumPy's FFT: a compiled program calls it through Python (``host_call``
# gives the call for the params), as the generated source shows. The one primitive is the
# complex transform along the last axis, length kept; the front end builds rfft, irfft, the
# n-dimensional transforms and the padding or cropping of ``n=`` from it.


def _fft_rule(x, *, inverse, norm):
    if x.ndim < 1 or x.dtype.kind != "c":
        raise TypeError(f"fft: needs a complex array of at least one axis, got {x}")
    if norm not in ("backward", "ortho", "forward"):
        raise TypeError(f"fft: norm must be 'backward', 'ortho' or 'forward', got {norm!r}")
    return x.strong()


def _fft_impl(x, *, inverse, norm):
    return (np.fft.ifft if inverse else np.fft.fft)(x, axis=-1, norm=norm)


fft = defop("fft", "opaque", impl=_fft_impl, abstract_eval=_fft_rule,
            host_call=lambda inverse, norm: f"np.fft.{'ifft' if inverse else 'fft'}({{}}, axis=-1, norm={norm!r})",
            doc="the discrete Fourier transform of each row (last axis), or its inverse (params: inverse, norm); "
                "computed by NumPy, also in compiled programs")

# --------------------------------------------------------------------------- sliding windows
#
# im2col and its transpose, the two halves of convolution and pooling on NCHW images: a
# convolution is ``windows`` then one matrix product, a max pooling ``windows`` then
# ``reduce_max``. Both are linear, and each is the other's transpose.


def _window_geometry(height, width, window, strides):
    (kh, kw), (sh, sw) = window, strides
    if kh < 1 or kw < 1 or sh < 1 or sw < 1:
        raise TypeError(f"windows: window {window} and strides {strides} must be positive")
    if kh > height or kw > width:
        raise TypeError(f"windows: window {window} does not fit in an image of {height}x{width}")
    return (height - kh) // sh + 1, (width - kw) // sw + 1


def _windows_rule(x, *, window, strides):
    if x.ndim != 4:
        raise TypeError(f"windows: needs an (N, C, H, W) input, got {x.shape}")
    n, c, h, w = x.shape
    oh, ow = _window_geometry(h, w, window, strides)
    return Aval((n, oh, ow, c) + tuple(window), x.dtype, x.weak)


def _windows_impl(x, *, window, strides):
    _windows_rule(Aval(np.shape(x), np.asarray(x).dtype), window=window, strides=strides)  # the same errors
    views = np.lib.stride_tricks.sliding_window_view(x, window, axis=(2, 3))[:, :, ::strides[0], ::strides[1]]
    return np.ascontiguousarray(views.transpose(0, 2, 3, 1, 4, 5))


def _windows_sum_rule(cols, *, window, strides, image):
    n, oh, ow, c, kh, kw = cols.shape
    if (kh, kw) != tuple(window) or _window_geometry(*image, window, strides) != (oh, ow):
        raise TypeError(f"windows_sum: windows {cols.shape} do not come from an image of {image} "
                        f"with window {window} and strides {strides}")
    return Aval((n, c) + tuple(image), cols.dtype, cols.weak)


def _windows_sum_impl(cols, *, window, strides, image):
    n, oh, ow, c, kh, kw = cols.shape
    out = np.zeros((n, c) + tuple(image), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + (oh - 1) * strides[0] + 1:strides[0], j:j + (ow - 1) * strides[1] + 1:strides[1]] += \
                cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return out


windows = defop("windows", "opaque", impl=_windows_impl, abstract_eval=_windows_rule,
                doc="im2col: ``(N, C, H, W)`` -> ``(N, OH, OW, C, KH, KW)``, every ``window`` of the image "
                    "taken at ``strides`` (params: window, strides; no padding)")
windows_sum = defop("windows_sum", "opaque", impl=_windows_sum_impl, abstract_eval=_windows_sum_rule,
                    doc="col2im, the transpose of ``windows``: each window added back at its place in an "
                        "``(N, C) + image`` array (params: window, strides, image)")
# --------------------------------------------------------------------------- collectives


def _all_sum_rule(*xs):
    if not xs or any(x.dtype != xs[0].dtype for x in xs):
        raise TypeError(f"all_sum: needs one or more operands of one dtype, got {[str(x) for x in xs]}")
    return tuple(x.strong() for x in xs)


def _all_sum_impl(*xs):
    # One buffer for all operands (one allreduce), summed in place; the results are its views.
    buffer = np.concatenate([np.asarray(x).reshape(-1) for x in xs]) if len(xs) > 1 \
        else np.array(xs[0], copy=True, order="C").reshape(-1)
    communicator.all_sum_in_place(buffer)
    offsets = np.cumsum([0] + [np.size(x) for x in xs])
    return tuple(buffer[a:b].reshape(np.shape(x)) for a, b, x in zip(offsets, offsets[1:], xs))


all_sum = defop("all_sum", "opaque", impl=_all_sum_impl, abstract_eval=_all_sum_rule,
                multiple_results=True, collective=True,
                doc="the sums of the operands (one dtype) over all processes, one MPI allreduce of "
                    "them packed into one buffer; the operands themselves in one process")

# --------------------------------------------------------------------------- products and scans
# A product is a reduction like the sum (identity and combine; fused by the backend). The scans
# run along one axis, in order or from the end (``reverse``): each line starts from its first
# element (so -0.0 stays -0.0, as in NumPy) and goes on with the primitive's ``combine``.

reduce_prod = defop("reduce_prod", "reduce",
                    impl=lambda x, *, axes: np.asarray(np.multiply.reduce(x, axis=axes, dtype=np.asarray(x).dtype)),
                    abstract_eval=_reduce_rule("reduce_prod"), identity=1, combine="{acc} * {x}",
                    doc="product over ``axes`` (params: axes), same dtype")


def _scan_rule(name):
    def rule(x, *, axis, reverse):
        if not 0 <= axis < x.ndim:
            raise TypeError(f"{name}: bad axis {axis} for shape {x.shape}")
        if x.dtype == np.bool_:
            raise TypeError(f"{name}: bool inputs accumulate in an integer dtype; cast first")
        return x
    return rule


def _scan_impl(ufunc):
    def impl(x, *, axis, reverse):
        x = np.asarray(x)
        if not reverse:
            return ufunc.accumulate(x, axis=axis, dtype=x.dtype)
        backwards = (builtins.slice(None),) * axis + (builtins.slice(None, None, -1),)
        return np.ascontiguousarray(ufunc.accumulate(x[backwards], axis=axis, dtype=x.dtype)[backwards])
    return impl


cumsum = defop("cumsum", "opaque", impl=_scan_impl(np.add), abstract_eval=_scan_rule("cumsum"),
               combine="{acc} + {x}",
               doc="running sums along ``axis``, from the end with ``reverse`` (params: axis, reverse)")
cumprod = defop("cumprod", "opaque", impl=_scan_impl(np.multiply), abstract_eval=_scan_rule("cumprod"),
                combine="{acc} * {x}",
                doc="running products along ``axis``, from the end with ``reverse`` (params: axis, reverse)")
# Running extremes: NaN, once reached, stays (as np.maximum.accumulate). The combine is
# NumPy's own: between equal values the element wins (so -0.0 after 0.0 is the running
# maximum), where Numba's np.maximum keeps the first; the gradient rule goes to the earliest.
cummax = defop("cummax", "opaque", impl=_scan_impl(np.maximum), abstract_eval=_scan_rule("cummax"),
               combine="{acc} if {acc} > {x} or {acc} != {acc} else {x}",
               doc="running maxima along ``axis``, from the end with ``reverse`` (params: axis, reverse); NaN "
                   "propagates")
cummin = defop("cummin", "opaque", impl=_scan_impl(np.minimum), abstract_eval=_scan_rule("cummin"),
               combine="{acc} if {acc} < {x} or {acc} != {acc} else {x}",
               doc="running minima along ``axis``, from the end with ``reverse`` (params: axis, reverse); NaN "
                   "propagates")


def _linear_scan_rule(a, b, *, axis, reverse):
    if a.shape != b.shape or a.dtype != b.dtype:
        raise TypeError(f"linear_scan: coefficients and terms must have one shape and dtype, got {a} and {b}")
    if not 0 <= axis < b.ndim:
        raise TypeError(f"linear_scan: bad axis {axis} for shape {b.shape}")
    if b.dtype == np.bool_:
        raise TypeError("linear_scan: needs numbers, not bools")
    return Aval(b.shape, b.dtype, _all_weak(a, b))


def _linear_scan_impl(a, b, *, axis, reverse):
    a, b = np.moveaxis(np.asarray(a), axis, 0), np.moveaxis(np.asarray(b), axis, 0)
    out = np.empty_like(b)
    previous = None
    for k in (range(len(b) - 1, -1, -1) if reverse else range(len(b))):
        out[k] = b[k] if previous is None else a[k] * out[previous] + b[k]
        previous = k
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


# The first-order linear recurrence: what a running product's derivatives are (the cotangent of
# each factor gathers the later cotangents through the factors between), without dividing by a
# factor that may be zero.
linear_scan = defop("linear_scan", "opaque", impl=_linear_scan_impl, abstract_eval=_linear_scan_rule,
                    doc="``h[0] = b[0]``, ``h[i] = a[i] * h[i-1] + b[i]`` along ``axis``, from the end with "
                        "``reverse`` (params: axis, reverse); the first coefficient is not read")

# --------------------------------------------------------------------------- inverse trigonometric, rounding
# Their own primitives: none is a composition of the primitives above that gives NumPy's values
# bit for bit (arcsin as atan2(x, sqrt(1 - x*x)) or arctanh as a difference of log1p are off by
# ulps, arcsinh through log needs branches against overflow, and the sign of NaN that copysign
# copies is out of reach of comparisons). Each is one libm function, in NumPy and in Numba alike.

asin = _elementwise("asin", np.arcsin, "np.arcsin({0})")
acos = _elementwise("acos", np.arccos, "np.arccos({0})")
atan = _elementwise("atan", np.arctan, "np.arctan({0})")
atan2 = _elementwise("atan2", np.arctan2, "np.arctan2({0}, {1})",
                     doc="``arctan2(y, x)``: the angle of the point (x, y), in [-pi, pi], as C's atan2")
asinh = _elementwise("asinh", np.arcsinh, "np.arcsinh({0})")
acosh = _elementwise("acosh", np.arccosh, "np.arccosh({0})")
atanh = _elementwise("atanh", np.arctanh, "np.arctanh({0})")
copysign = _elementwise("copysign", np.copysign, "np.copysign({0}, {1})",
                        doc="``copysign(x, y)``: the magnitude of x with the sign bit of y (that of -0.0 and NaN too)")
rint = _elementwise("rint", np.rint, "np.rint({0})", differentiable=False,
                    doc="the nearest integer as a float of the input's dtype, halves to even, with the input's "
                        "sign (rint(-0.4) is -0.0)")
