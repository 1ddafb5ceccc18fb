"""Arrays a traced function reads from outside: globals and closure variables.

Layer: front end (uses only the ``Tracer`` type of ``primitives.py``); the runtime (``jit.py``) traces through it and
``graph_builder.py`` unwraps its views when it captures them. In: the user's function. Out: a
copy of the function whose global and closure arrays are *watched* views, and after tracing,
which of those arrays the traced program depends on by value.

An array the function combines with traced values is captured by reference (an input of the
program), so later calls see its current contents. An array that NumPy consumes while tracing,
with no traced value involved (``G * 2.0``, ``W.sum()``, ``float(LR[0])``), leaves only its result
in the program: a later change of ``G`` would silently not be seen. A watched view notices such
reads and marks its array *baked*; the runtime then keeps a copy of the array's bytes and
retraces when they change (``tracejit.jit._rebound``), naming the array in the retrace reason.

Only the traced function and the user's functions it reaches through globals and closures
(``HELPER_DEPTH`` deep, as for the guards on Python values) are watched. Arrays reached through
attributes (``self.W``, ``module.W``) or turned into plain arrays (``np.asarray(G)``) are not:
what NumPy computes from them while tracing is a constant of the program, as in JAX.
"""
from __future__ import annotations

import inspect
import types

import numpy as np

from .primitives import Tracer

__all__ = ["Watch", "Watched", "plain", "read_names", "HELPER_DEPTH"]

HELPER_DEPTH = 2  # how far calls to the user's own Python functions are followed
_LIBRARIES = ("tracejit", "numpy", "scipy", "numba")
_MISSING = object()
# functions that look at an array's type or layout, never at its values
_METADATA_FUNCTIONS = frozenset([np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj,
                                 np.may_share_memory, np.shares_memory])


def read_names(code) -> list:
    """Global names the code and its nested functions (lambdas, comprehensions) may read."""
    names = list(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names += read_names(const)
    return names


def is_library(fn) -> bool:
    return (getattr(fn, "__module__", None) or "").split(".")[0] in _LIBRARIES


class _Read:
    """One outside array (``source``) and whether tracing consumed its values (``baked``)."""

    __slots__ = ("source", "baked")

    def __init__(self, source):
        self.source, self.baked = source, False


class Watched(np.ndarray):
    """A view of an outside array (or an array derived from one) that reports reads of its values."""

    _read: _Read | None = None
    _plain: np.ndarray | None = None

    def __array_finalize__(self, obj):
        self._read = getattr(obj, "_read", None)
        self._plain = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _apply(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func in _METADATA_FUNCTIONS:
            return func(*_unwrap_all(args, None), **_unwrap_all(kwargs, None))
        return _apply(func, args, kwargs)

    def __getitem__(self, index):
        result = super().__getitem__(_unwrap_all(index, None))
        if not isinstance(result, np.ndarray):  # an element: its value is read now
            self._bake()
        return result

    def __repr__(self):  # printed while tracing, it looks like the user's array
        return repr(self.view(np.ndarray))

    def __str__(self):
        return str(self.view(np.ndarray))

    def _bake(self):
        if self._read is not None:
            self._read.baked = True

    def _value_read(name):
        def read(self, *args, **kwargs):
            self._bake()
            return getattr(self.view(np.ndarray), name)(*args, **kwargs)
        read.__name__ = name
        return read

    for _name in ("__bool__", "__int__", "__float__", "__complex__", "__index__", "item", "tolist",
                  "tobytes", "__iter__", "dot", "copy", "astype", "__reduce__", "__deepcopy__"):
        locals()[_name] = _value_read(_name)
    del _name, _value_read


def plain(x: Watched) -> np.ndarray:
    """The plain array behind a watched one, for capture by reference. A view of the outside
    array stays one (later calls see its current contents); an array computed from it while
    tracing (a copy, a fancy-indexed selection) is a constant, so its source is baked."""
    if x._plain is None:
        x._plain = x.view(np.ndarray)
        if x._read is not None and not np.may_share_memory(x._plain, x._read.source):
            x._bake()
    return x._plain


def _unwrap_all(value, reads):
    if isinstance(value, Watched):
        if reads is not None:
            reads.append(value)
        return plain(value)
    if type(value) in (tuple, list):
        return type(value)(_unwrap_all(v, reads) for v in value)
    if type(value) is dict:
        return {k: _unwrap_all(v, reads) for k, v in value.items()}
    return value


def _has_tracer(value) -> bool:
    if isinstance(value, Tracer):
        return True
    if type(value) in (tuple, list):
        return any(_has_tracer(v) for v in value)
    if type(value) is dict:
        return any(_has_tracer(v) for v in value.values())
    return False


def _apply(func, args, kwargs):
    """Run ``func`` on the plain arrays. With a traced operand the outside arrays become inputs
    of the program (by reference); with none, NumPy computes now and their values are baked."""
    reads = []
    args, kwargs = _unwrap_all(args, reads), _unwrap_all(kwargs, reads)
    if not (_has_tracer(args) or _has_tracer(kwargs)):
        for r in reads:
            r._bake()
    return func(*args, **kwargs)


class Watch:
    """One trace's watched copy of a function, and the outside arrays it reads (``reads``).

    The copies of the functions run in copies of their modules' namespaces; ``finish()`` writes
    back whatever the function assigned to globals while it was traced."""

    def __init__(self):
        self.reads: dict[int, _Read] = {}        # id(outside array) -> its record
        self._namespaces: dict[int, tuple] = {}  # id(real namespace) -> (real, copy, keys, replaced)
        self._functions: dict[int, object] = {}  # id(function) -> its watched copy

    def function(self, fn, depth: int = 0):
        """``fn`` running on watched views of its outside arrays (``fn`` itself if it reads none)."""
        if inspect.ismethod(fn):
            inner = self.function(fn.__func__, depth)
            return fn if inner is fn.__func__ else types.MethodType(inner, fn.__self__)
        if not inspect.isfunction(fn):
            return fn
        if id(fn) in self._functions:
            return self._functions[id(fn)]
        self._functions[id(fn)] = fn  # while its helpers are rebuilt (recursion)
        # A library's function (tj.grad's wrapper, say) is transparent: its own globals are
        # left alone, and the user's functions in its closure count as the level it is at.
        library = is_library(fn)
        code = fn.__code__
        real = fn.__globals__
        changes = {}
        if not library:
            for name in dict.fromkeys(read_names(code)):
                value = real.get(name, _MISSING)
                replacement = self._replacement(value, depth + 1)
                if replacement is not value:
                    changes[name] = replacement
        cells = fn.__closure__ or ()
        new_cells = []
        for cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                new_cells.append(cell)
                continue
            replacement = self._replacement(value, depth if library else depth + 1, library)
            new_cells.append(cell if replacement is value else types.CellType(replacement))
        if not changes and all(a is b for a, b in zip(new_cells, cells)):
            return fn
        namespace = self._namespace(real, changes) if changes else real
        copy = types.FunctionType(code, namespace, fn.__name__, fn.__defaults__, tuple(new_cells) or None)
        copy.__kwdefaults__ = fn.__kwdefaults__
        copy.__qualname__, copy.__module__, copy.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
        copy.__dict__.update(fn.__dict__)
        self._functions[id(fn)] = copy
        return copy

    def _replacement(self, value, depth, in_library=False):
        """What the watched copy of a function sees for ``value``, a function at ``depth``."""
        if isinstance(value, np.ndarray):
            if type(value) is not np.ndarray or value.dtype == object:
                return value
            read = self.reads.setdefault(id(value), _Read(value))
            view = value.view(Watched)
            view._read, view._plain = read, value  # captured under the outside array's own identity
            return view
        if inspect.isfunction(value) or inspect.ismethod(value):
            if depth <= HELPER_DEPTH and (in_library or not is_library(value)):
                return self.function(value, depth)
        return value

    def _namespace(self, real, changes):
        found = self._namespaces.get(id(real))
        if found is None:
            found = self._namespaces[id(real)] = (real, dict(real), set(real), {})
        _, copy, _, replaced = found
        for name, value in changes.items():
            if name not in replaced:
                copy[name] = replaced[name] = value
        return copy

    def finish(self):
        """Write the globals the traced function assigned or deleted back to their modules."""
        for real, copy, keys, replaced in self._namespaces.values():
            for name, value in copy.items():
                if replaced.get(name, _MISSING) is value:
                    continue
                if real.get(name, _MISSING) is not value:
                    real[name] = value
            for name in keys - copy.keys():
                real.pop(name, None)

    def baked(self) -> dict:
        """id(outside array) -> the array, for every array whose values tracing consumed."""
        return {key: r.source for key, r in self.reads.items() if r.baked}
