"""Errors users see, and how they point at the user's own line.

Every error raised while tracing names the user's file, line and source text, found by
walking the stack to the first frame outside the tracejit package.
"""
from __future__ import annotations

import linecache
import os
import sys

__all__ = ["TracerError", "ConcretizationError", "UnsupportedError", "ShapeError", "argument_name", "user_frame",
           "where"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class TracerError(Exception):
    """Base class of every error tracejit raises about user code."""


class ConcretizationError(TracerError):
    """A traced value was needed as a concrete Python value (``bool``, ``float``, ``if x > 0``)."""


class UnsupportedError(TracerError, NotImplementedError):
    """A NumPy function or argument that tracejit does not handle. It never falls back silently."""


class ShapeError(TracerError, ValueError):
    """Operands whose shapes do not fit while tracing (broadcasting, reshape, matmul, concatenate):
    the traced counterpart of NumPy's ValueError, so ``except ValueError`` catches it too."""


def argument_name(tracer):
    """The argument a tracer stands for (``x``, ``params['W']``), if it is one of the inputs."""
    names = getattr(tracer._trace, "input_names", None)
    return names.get(id(getattr(tracer, "atom", None))) if names else None


def _is_internal(filename: str) -> bool:
    known = _INTERNAL.get(filename)
    if known is not None:
        return known
    path = os.path.abspath(filename)
    internal = path.startswith(_PACKAGE_DIR + os.sep) or "/numpy/" in path and "site-packages" in path
    if os.path.isabs(filename):  # a relative name depends on the working directory: not kept
        _INTERNAL[filename] = internal
    return internal


# filename -> whether it is tracejit's or NumPy's: every recorded equation walks the stack
# through the same few files (see user_frame), and os.path.abspath is the slow part of that.
_INTERNAL: dict[str, bool] = {}


def user_frame(skip_internal: bool = True):
    """(filename, lineno, source text) of the innermost frame outside tracejit (and NumPy), or None."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not (skip_internal and _is_internal(code.co_filename)) and not code.co_filename.startswith("<frozen"):
            line = linecache.getline(code.co_filename, frame.f_lineno).strip()
            return (code.co_filename, frame.f_lineno, line)
        frame = frame.f_back
    return None


def where(frame_info=None) -> str:
    """``  File "model.py", line 12: logits = x @ W`` -- the location sentence used in messages."""
    info = frame_info if frame_info is not None else user_frame()
    if info is None:
        return ""
    filename, lineno, text = info
    text = f"\n    {text}" if text else ""
    return f'\n  File "{filename}", line {lineno}{text}'
