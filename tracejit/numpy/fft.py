"""Fourier transforms: ``np.fft``'s fft, ifft, rfft, irfft, their 2-d and n-d forms, and the shifts.

Layer: front end, on ``shapes``, ``ufuncs`` and ``indexing``. In: arrays or tracers, the
transform's length ``n`` (or shape ``s``), axes and ``norm``. Out: the ``fft`` primitive (the
complex transform of the last axis, length kept; the axis asked for is moved there and back)
with the zero padding or cropping of ``n`` around it; the real transforms are the complex one
of a real input, keeping the non-negative frequencies, and of the Hermitian-symmetric full
spectrum, keeping the real part. Gradients follow from the primitive's (each transform is its
own transpose) and those of the compositions. Compiled programs call NumPy for the transform
itself. Plain operands go to NumPy. Reached as ``np.fft.fft(t)`` on a tracer, or as
``tj.numpy.fft.fft``.
"""
from __future__ import annotations

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import bind
from .dispatch import implements, public_names
from .indexing import flip, roll
from .promotion import _any_tracer, _shape, _strong, astype
from .shapes import _check_operand, _norm_axis, concatenate, moveaxis
from .ufuncs import conjugate, real


def _complex_dtype(dtype, fname):
    if dtype.kind not in "biufc":
        raise TypeError(f"{fname}: unsupported dtype {dtype}")
    return np.dtype(np.complex64) if dtype in (np.float32, np.complex64) else np.dtype(np.complex128)


def _norm(norm, fname):
    if norm is None:
        return "backward"
    if norm not in ("backward", "ortho", "forward"):
        raise ValueError(f'{fname}: invalid norm value {norm!r}; should be "backward", "ortho" or "forward"')
    return norm


def _resized(x, n, fname):
    """``x`` cut or zero-padded to ``n`` elements along its last axis, as ``n=`` asks."""
    if n is None:
        return x
    if int(n) < 1:
        raise ValueError(f"{fname}: invalid number of data points ({n}) specified{_where_msg()}")
    shape = tuple(_shape(x))
    have = shape[-1]
    if n < have:
        return bind(P.slice, x, starts=(0,) * len(shape), stops=shape[:-1] + (int(n),), steps=(1,) * len(shape))
    if n > have:
        return bind(P.pad, x, config=((0, 0, 0),) * (len(shape) - 1) + ((0, int(n) - have, 0),))
    return x


def _along(x, axis, fname, body):
    """``body`` applied with ``axis`` moved last, and the result moved back."""
    ndim = len(_shape(x))
    if ndim == 0:
        raise ValueError(f"{fname}: the input must have at least one axis{_where_msg()}")
    axis = _norm_axis(axis, ndim, "axis")
    last = ndim - 1
    out = body(moveaxis(x, axis, last) if axis != last else x)
    return moveaxis(out, last, axis) if axis != last else out


def _transform(a, n, axis, norm, inverse, fname):
    a = _strong(_check_operand(a, fname))
    dtype = _complex_dtype(a.dtype, fname)
    a = astype(a, dtype) if a.dtype != dtype else a
    norm = _norm(norm, fname)
    return _along(a, axis, fname, lambda x: bind(P.fft, _resized(x, n, fname), inverse=inverse, norm=norm))


@implements(np.fft.fft)
def fft(a, n=None, axis=-1, norm=None, out=None):
    """``numpy.fft.fft``: the discrete Fourier transform along ``axis``."""
    if not _any_tracer((a,)):
        return np.fft.fft(a, n=n, axis=axis, norm=norm, out=out)
    _no_out("fft", out)
    return _transform(a, n, axis, norm, False, "np.fft.fft")


@implements(np.fft.ifft)
def ifft(a, n=None, axis=-1, norm=None, out=None):
    """``numpy.fft.ifft``: the inverse transform along ``axis``."""
    if not _any_tracer((a,)):
        return np.fft.ifft(a, n=n, axis=axis, norm=norm, out=out)
    _no_out("ifft", out)
    return _transform(a, n, axis, norm, True, "np.fft.ifft")


@implements(np.fft.rfft)
def rfft(a, n=None, axis=-1, norm=None, out=None):
    """``numpy.fft.rfft``: the transform of a real input, its ``n // 2 + 1`` non-negative
    frequencies."""
    if not _any_tracer((a,)):
        return np.fft.rfft(a, n=n, axis=axis, norm=norm, out=out)
    _no_out("rfft", out)
    a = _strong(_check_operand(a, "np.fft.rfft"))
    if a.dtype.kind == "c":
        raise TypeError(f"np.fft.rfft: the input must be real, got {a.dtype}{_where_msg()}")

    def half(x):
        full = _transform(x, n, -1, norm, False, "np.fft.rfft")
        shape = tuple(_shape(full))
        return bind(P.slice, full, starts=(0,) * len(shape), stops=shape[:-1] + (shape[-1] // 2 + 1,),
                    steps=(1,) * len(shape))
    return _along(a, axis, "np.fft.rfft", half)


@implements(np.fft.irfft)
def irfft(a, n=None, axis=-1, norm=None, out=None):
    """``numpy.fft.irfft``: the real signal of length ``n`` (default ``2 * (m - 1)``) whose
    ``rfft`` is ``a``: the inverse transform of the Hermitian-symmetric spectrum ``a``
    stands for, whose real part it is (the imaginary parts of the zero and Nyquist terms do
    not count, as in NumPy)."""
    if not _any_tracer((a,)):
        return np.fft.irfft(a, n=n, axis=axis, norm=norm, out=out)
    _no_out("irfft", out)
    a = _strong(_check_operand(a, "np.fft.irfft"))
    dtype = _complex_dtype(a.dtype, "np.fft.irfft")
    a = astype(a, dtype) if a.dtype != dtype else a

    def signal(x):
        m = _shape(x)[-1]
        length = 2 * (m - 1) if n is None else int(n)
        if length < 1:
            raise ValueError(f"np.fft.irfft: invalid number of data points ({length}) specified{_where_msg()}")
        half = _resized(x, length // 2 + 1, "np.fft.irfft")
        tail_size = length - length // 2 - 1
        shape = tuple(_shape(half))
        tail = bind(P.slice, half, starts=(0,) * (len(shape) - 1) + (1,), stops=shape[:-1] + (1 + tail_size,),
                    steps=(1,) * len(shape))
        spectrum = concatenate([half, flip(conjugate(tail), axis=-1)], axis=-1) if tail_size else half
        return real(bind(P.fft, spectrum, inverse=True, norm=_norm(norm, "np.fft.irfft")))
    return _along(a, axis, "np.fft.irfft", signal)


def _axes_and_sizes(a, s, axes, fname):
    ndim = len(_shape(a))
    if axes is None:
        axes = list(range(ndim)) if s is None else list(range(ndim - len(s), ndim))
    axes = [_norm_axis(ax, ndim, "axes") for ax in axes]
    if s is None:
        s = [None] * len(axes)
    if len(s) != len(axes):
        raise ValueError(f"{fname}: shape s={s} and axes={axes} have different lengths{_where_msg()}")
    return list(s), axes


def _nd(fname, np_fn, one_axis, last_axis=None):
    """An n-dimensional transform: ``one_axis`` along each axis (the last of them first, as
    NumPy applies them), with ``last_axis`` (rfftn) first or (irfftn) last on the last axis."""
    def fn(a, s=None, axes=None, norm=None, out=None):
        if not _any_tracer((a,)):
            return np_fn(a, s=s, axes=axes, norm=norm, out=out)
        _no_out(fname, out)
        a = _strong(_check_operand(a, f"np.fft.{fname}"))
        sizes, axes_ = _axes_and_sizes(a, s, axes, f"np.fft.{fname}")
        if fname.startswith("irfft"):
            for size, ax in zip(sizes[:-1], axes_[:-1]):
                a = one_axis(a, size, ax, norm)
            return last_axis(a, sizes[-1], axes_[-1], norm)
        if fname.startswith("rfft"):
            a = last_axis(a, sizes[-1], axes_[-1], norm)
            sizes, axes_ = sizes[:-1], axes_[:-1]
        for size, ax in reversed(list(zip(sizes, axes_))):
            a = one_axis(a, size, ax, norm)
        return a
    fn.__name__ = fname
    fn.__doc__ = f"``numpy.fft.{fname}``, one axis at a time (the transform is separable)."
    return fn


fftn = implements(np.fft.fftn)(_nd("fftn", np.fft.fftn, fft))
ifftn = implements(np.fft.ifftn)(_nd("ifftn", np.fft.ifftn, ifft))
rfftn = implements(np.fft.rfftn)(_nd("rfftn", np.fft.rfftn, fft, rfft))
irfftn = implements(np.fft.irfftn)(_nd("irfftn", np.fft.irfftn, ifft, irfft))


def _two_d(fname, np_fn, nd):
    def fn(a, s=None, axes=(-2, -1), norm=None, out=None):
        if not _any_tracer((a,)):
            return np_fn(a, s=s, axes=axes, norm=norm, out=out)
        return nd(a, s=s, axes=axes, norm=norm, out=out)
    fn.__name__ = fname
    fn.__doc__ = f"``numpy.fft.{fname}``: ``{nd.__name__}`` over the last two axes."
    return implements(np_fn)(fn)


fft2 = _two_d("fft2", np.fft.fft2, fftn)
ifft2 = _two_d("ifft2", np.fft.ifft2, ifftn)
rfft2 = _two_d("rfft2", np.fft.rfft2, rfftn)
irfft2 = _two_d("irfft2", np.fft.irfft2, irfftn)


def _shift(fname, np_fn, direction):
    def fn(x, axes=None):
        if not _any_tracer((x,)):
            return np_fn(x, axes=axes)
        x = _strong(_check_operand(x, f"np.fft.{fname}"))
        ndim = len(_shape(x))
        axes_ = list(range(ndim)) if axes is None else [axes] if np.ndim(axes) == 0 else list(axes)
        shifts = [direction * (_shape(x)[_norm_axis(ax, ndim, "axes")] // 2) for ax in axes_]
        return roll(x, shifts, axis=axes_)
    fn.__name__ = fname
    fn.__doc__ = f"``numpy.fft.{fname}``: a roll by half of each axis ({'forward' if direction > 0 else 'back'})."
    return implements(np_fn)(fn)


fftshift = _shift("fftshift", np.fft.fftshift, 1)
ifftshift = _shift("ifftshift", np.fft.ifftshift, -1)


def _no_out(fname, out):
    if out is not None:
        raise UnsupportedError(f"np.fft.{fname}(..., out=) is not supported in traced code{_where_msg()}")


__all__ = public_names(globals())
