"""``@tj.trace``: the cache of traced programs and the call path.

Layer: runtime, on top of everything else. A call flattens the arguments, builds the cache
key (pytree structure, each leaf's shape and dtype -- Python scalars by kind only, never by
value -- and the values of static arguments), looks it up and runs the entry. On a miss it
traces (``graph_builder``), runs the pass pipeline (``transforms``), and for compiled mode
hands the graph to the backend. Every retrace records which argument changed and how.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import sys
import threading
import time
import warnings

import numpy as np
from numpy import empty as _empty, ndarray as _ndarray  # read on every call: globals are faster than np.*

from . import outside, pytree, tiers
from .settings import cache_size, compile_limit, machine_code_cached
from .check import check_enabled_by_env, run_checked
from .log import enabled as log_enabled, log
from .core import Aval
from .graph_builder import make_graph
from .interpret import interpret
from .modes import check_mode, get_mode
from .primitives import Tracer, trace_stack
from .transforms import DEFAULT_PASSES, run_passes

__all__ = ["trace", "Traced", "RETRACE_WARNING_THRESHOLD", "compile_limit"]

RETRACE_WARNING_THRESHOLD = 8
# Python scalars are traced as 0-d "weak" values of their kind's default dtype (NEP 50).
_SCALAR_DTYPES = {bool: np.dtype(np.bool_), int: np.dtype(np.int64), float: np.dtype(np.float64),
                  complex: np.dtype(np.complex128)}
_SCALAR_SIGS = {t: ("py", t.__name__) for t in _SCALAR_DTYPES}


def _leaf_signature(leaf):
    """The part of the cache key one leaf contributes, or None if the leaf cannot be traced."""
    t = type(leaf)
    if t is np.ndarray:
        dtype = leaf.dtype
        if dtype.hasobject or dtype.kind in "SUVMm":
            return None
        # the program computes in native byte order whatever the caller's (see _as_runtime_array)
        return (leaf.shape, dtype if dtype.isnative else dtype.newbyteorder("="))
    sig = _SCALAR_SIGS.get(t)
    if sig is not None:
        return sig
    if isinstance(leaf, np.ndarray) and not isinstance(leaf, (np.matrix, np.ma.MaskedArray)):
        t = np.ndarray  # a subclass with array semantics (np.memmap ...): traced as its data
    elif not isinstance(leaf, np.generic):
        return None
    if leaf.dtype.hasobject or leaf.dtype.kind in "SUVMm":
        return None
    dtype = leaf.dtype if leaf.dtype.isnative else leaf.dtype.newbyteorder("=")
    if t is not np.ndarray:  # a NumPy scalar: what NumPy returns for it can differ from a 0-d array's
        return (leaf.shape, dtype, "scalar")
    return (leaf.shape, dtype)


def _leaf_aval(sig) -> Aval:
    if sig[0] == "py":
        return Aval((), _SCALAR_DTYPES[{"bool": bool, "int": int, "float": float, "complex": complex}[sig[1]]],
                    weak=True)
    return Aval(sig[0], sig[1])


def _describe(sig) -> str:
    if sig is None:
        return "untraceable"
    if sig[0] == "py":
        return f"Python {sig[1]}"
    return str(Aval(sig[0], sig[1]))


def _describe_change(old, new) -> str:
    a, b = _describe(old), _describe(new)
    if a == b and old is not None and new is not None:  # only a 0-d array <-> NumPy scalar change
        a, b = (f"{d} ({'a NumPy scalar' if len(s) > 2 else 'a 0-d array'})" for d, s in ((a, old), (b, new)))
    return f"{a} -> {b}"


def _results(program, outs):
    """The flat results: 0-d values as NumPy scalars, except those NumPy returns as 0-d arrays
    and the Python numbers the function returned."""
    arrays, python = program.ndarray_outputs, program.python_outputs
    return [o.item() if i in python else o[()] if o.ndim == 0 and i not in arrays else o
            for i, o in enumerate(outs[:program.n_results])]


def _label(name: str) -> str:
    """``'x'`` for a plain argument, ``params['W']`` for a leaf inside one."""
    return repr(name) if name.isidentifier() else name


def _as_runtime_array(leaf, sig):
    if sig[0] == "py":
        return np.asarray(leaf, dtype=_leaf_aval(sig).dtype)
    array = leaf if type(leaf) is np.ndarray else np.asarray(leaf)
    if not array.dtype.isnative:  # the program computes in native byte order (see _leaf_signature)
        return array.astype(array.dtype.newbyteorder("="))
    return array


def _direct(a) -> bool:
    """Whether the compiled program can read ``a`` as it is, with no conversion: a plain
    C-contiguous ndarray in native byte order. The fast path takes only such arrays, since
    its key (shape, dtype, strides) is all it checks on later calls: an array in the other
    byte order passed on as it is would be read as the wrong numbers."""
    return type(a) is np.ndarray and a.flags.c_contiguous and a.dtype.isnative


# The fast path's key for one argument: its exact type and memory layout.
_layout = operator.attrgetter("__class__", "shape", "dtype", "strides")


class _ArgumentKeys(dict):
    """``_ARGUMENT_KEYS[n](*args)``: the fast path's key for ``n`` positional arrays, one flat
    tuple of each one's shape, dtype and strides, or None unless all are exactly ndarrays.
    Generated per argument count: it builds and hashes one tuple where ``tuple(map(_layout,
    args))`` builds n + 1, which took a third of a cache hit's time for ``a + b``. Testing the
    types first, rather than catching the AttributeError of a dict's ``shape``, saves a call
    with pytree arguments 1-2 us."""

    def __missing__(self, n):
        names = [f"a{i}" for i in range(n)]
        arrays = " and ".join(f"{a}.__class__ is ndarray" for a in names) or "True"
        fields = "".join(f"{a}.shape, {a}.dtype, {a}.strides, " for a in names)
        namespace = {"ndarray": np.ndarray}
        exec(f"def key({', '.join(names)}):\n    if {arrays}:\n        return ({fields})\n",  # noqa: S102
             namespace)  # the text is built above from argument indices only
        self[n] = namespace["key"]
        return self[n]


_ARGUMENT_KEYS = _ArgumentKeys()


def _global_random_state():
    """NumPy's global random state (what ``np.random.rand`` and friends draw from), comparable
    with ``==`` to tell whether anything was drawn in between."""
    _, key, position, has_gauss, cached_gauss = np.random.get_state()
    return key.tobytes(), position, has_gauss, cached_gauss


def _leaf_layout(leaf):
    """The fast path's key for one pytree leaf: an array's layout, a Python scalar's type."""
    return _layout(leaf) if type(leaf) is np.ndarray else type(leaf)


_MISSING = object()
_first = operator.itemgetter(0)


def _pytree_matcher(treedef, leaves, pinned=frozenset()):
    """A generated function ``args -> leaves or None``: the leaves of ``args`` when it has
    exactly the structure ``treedef`` (same container types, lengths and dict keys) and each
    leaf the type -- and for arrays the shape, dtype and strides -- of ``leaves``; else None.
    Faster than flattening and looking up: one pass, no key to build or hash.

    The leaves whose indices are in ``pinned`` (static arguments) must be the very objects of
    ``leaves``, with the same hash (a static argument changed in place since would give
    another program), and are not returned."""
    lines, consts, names = [], {"ndarray": np.ndarray, "MISSING": _MISSING}, []
    position = [0]

    def const(value):
        name = f"k{len(consts)}"
        consts[name] = value
        return name

    def walk(d, expr):
        if d == pytree._LEAF:
            k = position[0]
            position[0] += 1
            leaf = leaves[k]
            if k in pinned:
                lines.extend([f"if {expr} is not {const(leaf)} or hash({expr}) != {const(hash(leaf))}:",
                              "    return None"])
                return
            name = f"v{len(names)}"
            names.append(name)
            lines.append(f"{name} = {expr}")
            if type(leaf) is np.ndarray:
                lines.append(f"if type({name}) is not ndarray or {name}.shape != {const(leaf.shape)} or "
                             f"{name}.dtype is not {const(leaf.dtype)} or {name}.strides != {const(leaf.strides)}:")
            else:
                lines.append(f"if type({name}) is not {const(type(leaf))}:")
            lines.append("    return None")
            return
        if d[0] == "n":
            lines.extend([f"if {expr} is not None:", "    return None"])
            return
        node = f"n{len(lines)}"
        kind = {"t": "tuple", "l": "list", "d": "dict"}[d[0]]
        lines.extend([f"{node} = {expr}", f"if type({node}) is not {kind} or len({node}) != {len(d[1])}:",
                      "    return None"])
        if d[0] == "d":
            for key, child in zip(d[1], d[2]):
                walk(child, f"{node}.get({const(key)}, MISSING)")
        else:
            for i, child in enumerate(d[1]):
                walk(child, f"{node}[{i}]")

    walk(treedef, "args")
    walk = None  # a closure calling itself is a reference cycle: it would hold ``leaves`` until collected
    source = "def match(args):\n" + "".join(f"    {line}\n" for line in lines) + \
        f"    return ({''.join(n + ', ' for n in names)})\n"
    namespace = dict(consts)
    exec(compile(source, "<tracejit fast-path matcher>", "exec"), namespace)  # noqa: S102 - text built above
    return namespace["match"]


class _Entry:
    """One traced signature: its optimised program and, lazily, its runners per mode.
    ``names``: the leaves' names for messages; ``int_ranges``: ``(position, dtype, name)`` of
    the Python int arguments each call checks (``TracedProgram.int_ranges``)."""

    __slots__ = ("program", "raw_graph", "runners", "leaf_sigs", "compiled", "bindings", "names", "int_ranges",
                 "checks_contents")

    def __init__(self, program, raw_graph, leaf_sigs, bindings=(), names=()):
        self.program = program
        self.raw_graph = raw_graph
        self.leaf_sigs = leaf_sigs
        self.runners = {}
        self.compiled = None
        self.bindings = bindings
        # a baked array's bytes are compared on the full path only: such an entry never joins the fast paths
        self.checks_contents = any(type(how) is bytes for *_, how in bindings)
        self.names = tuple(names)
        self.int_ranges = tuple((k, dtype, self.names[k]) for k, dtype in program.int_ranges)


def _aliases(leaves, entry, fname):
    """For a program that updates arguments in place: None when no argument it updates shares
    memory with another argument; else, per leaf, the position of the first leaf that is the
    very same array (the same memory, shape, strides and dtype), its own position otherwise.

    NumPy sees ``a *= 2`` through ``b`` when both name one array; a program traced for distinct
    arrays would not. Partial overlaps (``x[1:]`` and ``x[:-1]``) and an argument that is also
    an array the function reads from a global or closure are refused: no program traced from
    the function's names alone could give NumPy's result for them."""
    arrays = [(k, a) for k, a in enumerate(leaves) if isinstance(a, np.ndarray)]
    if len(arrays) + len(entry.program.captured) < 2:
        return None
    firsts = None
    for k in entry.program.mutated:
        a = leaves[k]
        if not isinstance(a, np.ndarray):
            continue
        for j, b in arrays:
            if j == k or not np.may_share_memory(a, b):
                continue
            if _same_view(a, b):
                firsts = firsts or list(range(len(leaves)))
                first = min(firsts[j], firsts[k])
                firsts = [first if f in (firsts[j], firsts[k]) else f for f in firsts]
            elif np.shares_memory(a, b):
                raise ValueError(f"{fname}: arguments {_label(entry.names[k])} and {_label(entry.names[j])} overlap "
                                 f"in memory and {_label(entry.names[k])} is updated in place; pass separate arrays "
                                 "(e.g. a copy of one), or run the function eagerly")
        for c in entry.program.captured:
            if isinstance(c, np.ndarray) and np.may_share_memory(a, c) and np.shares_memory(a, c):
                raise ValueError(f"{fname}: argument {_label(entry.names[k])} is updated in place and shares memory "
                                 "with an array the function reads from a global or closure variable; pass that "
                                 "array as an argument instead of reading it from outside, or pass a copy")
    return None if firsts is None else tuple(firsts)


def _same_view(a, b) -> bool:
    return a is b or (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
                      and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _check_int_ranges(int_ranges, leaves, fname) -> None:
    for k, dtype, name in int_ranges:
        value = leaves[k]
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise OverflowError(f"{fname}: Python integer {value} out of bounds for {dtype} (argument "
                                f"{_label(name)}, which the function combines with {dtype} values; NumPy raises "
                                f"this error too). Pass a value in [{info.min}, {info.max}], or an array of a wider dtype")


def _guardable(value) -> bool:
    """A Python value tracing bakes into the program as a constant, so a change to it must retrace:
    None, bools, numbers (Python's and NumPy's scalars), strings, and tuples of them."""
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return True
    if isinstance(value, np.generic):
        return value.dtype.kind in "biufc"
    return type(value) is tuple and all(_guardable(v) for v in value)


def _same_value(a, b) -> bool:
    """``a`` and ``b`` trace the same: same types all the way down, equal values, NaN equal to
    NaN, and zeros of the same sign (1 / -0.0 is -inf)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, complex, np.inexact)):
        return bool(a == b and np.all(np.signbit(np.real(a)) == np.signbit(np.real(b)))
                    and np.all(np.signbit(np.imag(a)) == np.signbit(np.imag(b)))) or (a != a and b != b)
    return bool(a == b)


def _bindings(fn, captured, baked=None, depth=0, seen=None) -> tuple:
    """The global names and closure variables the function read while it was traced, each with
    what it held then and how a later call checks it (``_rebound``): ``"identity"`` for an array
    (captured by reference, so in-place changes are seen, or read only for its shape),
    ``"value"`` for a Python value baked in (see ``_guardable``), and the array's bytes
    for an array whose values tracing consumed (``baked``, from ``outside.Watch``). The user's
    own Python functions it calls through globals and closures are followed
    ``outside.HELPER_DEPTH`` levels deep.

    Rebinding a name to a new array (``W = W - lr * g`` at module level), a flag, number or
    string to a new value (``DEBUG = False``), or changing a baked array in place retraces.
    """
    fn = fn.fn if isinstance(fn, Traced) else fn  # a tj.trace object called from the traced function
    fn = getattr(fn, "__func__", fn)  # a bound method
    code = getattr(fn, "__code__", None)
    seen = set() if seen is None else seen
    baked = baked or {}
    if code is None or id(code) in seen:
        return ()
    seen.add(id(code))
    found, helpers = [], []

    def consider(kind, name, where, value):
        if isinstance(value, np.ndarray) and type(value) is np.ndarray and value.dtype != object:
            how = _contents(value) if id(value) in baked else "identity"
            found.append((kind, name, where, value, how))
        elif _guardable(value):
            found.append((kind, name, where, value, "value"))
        elif inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, Traced):
            helpers.append(value.fn if isinstance(value, Traced) else value)

    # A library's function (tj.grad's wrapper) is transparent, as in outside.Watch: its globals
    # are not the user's, and the functions in its closure count as the level it is at.
    library = outside.is_library(fn)
    namespace = getattr(fn, "__globals__", {})
    for name in () if library else dict.fromkeys(outside.read_names(code)):
        value = namespace.get(name, _MISSING)
        if value is not _MISSING:
            consider("global", name, namespace, value)
    n_global_helpers = len(helpers)
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        consider("closure variable", name, cell, value)
    for k, helper in enumerate(helpers):
        level = depth if library and k >= n_global_helpers else depth + 1
        if level <= outside.HELPER_DEPTH and (library or not outside.is_library(helper)):
            found.extend(_bindings(helper, captured, baked, level, seen))
    return tuple(found)


def _contents(array) -> bytes:
    """The bytes of ``array``, to compare later calls with (``_same_contents``)."""
    return np.ascontiguousarray(array).tobytes()


def _same_contents(array, contents: bytes) -> bool:
    return memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B") == contents


# A baked array this large is compared on every call: worth a warning (see _trace).
_LARGE_BAKED_BYTES = 1 << 20


def _rebound(bindings) -> str | None:
    """Why a global or closure variable read by tracing no longer holds what it held then
    (another array, another Python value, other contents of a baked array), or None."""
    for kind, name, where, value, how in bindings:
        try:
            current = where.get(name, _MISSING) if kind == "global" else where.cell_contents
        except ValueError:
            current = _MISSING
        if how == "value":
            if current is _MISSING or not _same_value(current, value):
                now = "deleted" if current is _MISSING else repr(current)
                return f"{kind} {name!r} changed: {value!r} -> {now}"
        elif current is not value:
            now = "a different array" if isinstance(current, np.ndarray) else f"a {type(current).__name__}"
            return f"{kind} {name!r} was rebound to {now}"
        elif type(how) is bytes and not _same_contents(current, how):
            return f"{kind} {name!r} changed in place, and tracing had used its values"
    return None


def _identity_guard(bindings):
    """A generated function ``() -> bool``: True while every global and closure variable of
    ``bindings`` holds the very object it holds now. The fast path calls it before it runs
    anything (about 0.1 us); when it says False the call takes the full path, where
    ``_rebound`` compares values and a real change retraces."""
    consts, tests = {"MISSING": _MISSING}, []
    for i, (kind, name, where) in enumerate(bindings):
        try:
            consts[f"v{i}"] = where.get(name, _MISSING) if kind == "global" else where.cell_contents
        except ValueError:  # an empty cell
            return None
        consts[f"w{i}"] = where
        tests.append(f"w{i}.get({name!r}, MISSING) is v{i}" if kind == "global" else f"w{i}.cell_contents is v{i}")
    source = ("def guard():\n    try:\n        return " + " and ".join(tests) +
              "\n    except ValueError:\n        return False\n")
    exec(compile(source, "<tracejit guard>", "exec"), consts)  # noqa: S102 - names are identifiers
    return consts["guard"]


def _retrace_advice(reason: str) -> str:
    """The fix that usually applies to a retrace with this reason (for the retrace log)."""
    if reason.startswith("static argument"):
        return "each value of a static argument compiles anew: pass values that change as arrays or numbers"
    if reason.endswith("tracing had used its values"):
        return ("NumPy computed with this array while the function was traced (with no traced value involved), so "
                "its values were part of the program; pass the array as an argument, or compute with it from "
                "traced values, to avoid retracing when it changes")
    if " changed: " in reason and reason.startswith(("global", "closure variable")):
        return ("a Python value the function read from outside was baked into the traced program; "
                "pass values that change between calls as arguments")
    if "(a 0-d array)" in reason and "(a NumPy scalar)" in reason:
        return ("a value alternates between a 0-d array and a NumPy scalar (arithmetic on a 0-d array returns "
                "a scalar, as in NumPy): give it one kind in the state you pass back, e.g. np.int64(0) in place "
                "of np.zeros((), np.int64), or np.asarray(...) of the new value outside the traced function")
    if "->" in reason and "Python" not in reason:
        return ("keep shapes and dtypes fixed between calls (e.g. drop_last=True for batches, cast inputs once)")
    if "structure" in reason:
        return "pass the same containers (tuple/list/dict keys) on every call"
    return "see tj.explain(f, *args) for the full cache key"


class Traced:
    """A function decorated with ``@tj.trace``. Call it like the original function.

    Attributes: ``stats`` (see ``DESIGN.md``), ``graph(...)``, ``source(...)``.
    """

    # What a call reads lives in slots: the instance dict (which functools.update_wrapper
    # fills) makes attribute reads 3-4 times slower, 30 ns each on a cache hit.
    __slots__ = ("mode", "stats", "_hot", "_fast", "_guard", "__dict__", "__weakref__")

    def __init__(self, fn, *, static_argnums=(), static_argnames=(), mode=None, fastmath=False, parallel=None,
                 passes=None, check=None, tiered=None):
        if not callable(fn):
            raise TypeError(f"tj.trace: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.mode = None if mode is None else check_mode(mode)
        self.fastmath = bool(fastmath)
        self.check = check_enabled_by_env() if check is None else bool(check)
        if parallel not in (None, True, False):
            raise ValueError(f"tj.trace: parallel must be None, True or False, got {parallel!r}")
        self.parallel = parallel
        if tiered not in (None, True, False):
            raise ValueError(f"tj.trace: tiered must be None, True or False, got {tiered!r}")
        self.tiered = tiered
        self._pending = []  # futures of the compiles started in the background (tiers.submit)
        self.passes = list(DEFAULT_PASSES if passes is None else passes)
        static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        try:
            self._signature = inspect.signature(fn)
            self._params = list(self._signature.parameters.values())
        except (TypeError, ValueError):
            self._signature, self._params = None, []
        names = [p.name for p in self._params
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for n in static_argnames:
            if self._params and n not in {p.name for p in self._params} and not any(
                    p.kind == p.VAR_KEYWORD for p in self._params):
                raise ValueError(f"tj.trace: static_argnames names {n!r}, which is not a parameter of {fn.__name__}")
        self._static_nums = frozenset(static_argnums) | {i for i, n in enumerate(names) if n in static_argnames}
        self._static_names = frozenset(static_argnames) | {names[i] for i in static_argnums if i < len(names)}
        self._positional_names = names
        self._cache: dict = {}
        self._aliased: dict = {}  # (key, aliases) -> entry for calls passing one array as several arguments
        self._fast: dict = {}  # mode -> {argument layouts: direct runner, "pytrees": [(matcher, runner)]}
        self._hot = None  # (program, output shape, dtype) of the only layout seen (see __call__)
        self._guard = None  # the fast path's check of the Python values tracing read (_identity_guard)
        self._guarded = {}  # (kind, name, id(namespace or cell)) -> (kind, name, namespace or cell)
        self._last_key = None
        self._lock = threading.RLock()
        self._warned = False
        self._warned_compile_limit = False
        # trace_seconds: running the function on tracers (recording the graph), summed over traces;
        # traced_equations: the equations recorded, so trace_seconds / traced_equations is the
        # tracing time per equation; pass_seconds: the passes run on the recorded graphs;
        # compile_parts: compile_seconds by part (``CompiledProgram.compile_parts``, summed over
        # compiles), and "backend import", the backend's import time, which the process's first
        # compile or load reports wherever the import happened.
        self.stats = {"traces": 0, "cache_hits": 0, "retraces": [], "trace_seconds": 0.0, "traced_equations": 0,
                      "pass_seconds": 0.0, "compile_seconds": 0.0, "compile_parts": {}, "kernels": 0, "fused_ops": 0,
                      "temp_bytes": 0, "compiled_programs": 0, "interpreted_calls": 0}

    def __repr__(self):
        return f"<tj.trace of {getattr(self.fn, '__qualname__', self.fn)}>"

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    # ------------------------------------------------------------------------- call path
    def _split(self, args, kwargs):
        if not self._static_nums and not self._static_names:
            return args, kwargs, ()
        args, kwargs = self._canonical(args, kwargs)
        dyn_args = tuple(a for i, a in enumerate(args) if i not in self._static_nums)
        statics = tuple(("#", i, a) for i, a in enumerate(args) if i in self._static_nums)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self._static_names}
        statics += tuple(("=", k, kwargs[k]) for k in sorted(kwargs) if k in self._static_names)
        return dyn_args, dyn_kwargs, statics

    def _canonical(self, args, kwargs):
        # f(x, axis=1) and f(x, 1) are one call: bind puts arguments in their canonical places.
        if kwargs and self._signature is not None and (self._static_nums or self._static_names):
            try:
                bound = self._signature.bind(*args, **kwargs)
                return bound.args, bound.kwargs
            except TypeError:
                pass  # the call itself will raise Python's error when the function runs
        return args, kwargs

    def _key(self, args, kwargs):
        dyn_args, dyn_kwargs, statics = self._split(args, kwargs)
        leaves, treedef = pytree.flatten((dyn_args, dyn_kwargs))
        sigs = tuple(_leaf_signature(x) for x in leaves)
        return (treedef, sigs, statics), leaves

    def __call__(self, *args, **kwargs):
        mode = self.mode or get_mode()
        if not kwargs:
            guard = self._guard
            if guard is not None and not guard():
                self._forget_fast()
            hot = self._hot
            if hot is not None and mode == "compiled":
                # Shortest path, for a function called with arrays of one layout only (and one
                # array result): Numba's dispatcher checks the arguments' dtypes, dimensions and
                # layout, and the program their shapes, returning False for others. Any miss ends
                # this path for good; calls go on through the paths below.
                program, shape, dtype = hot
                hit = False
                for a in args:
                    if a.__class__ is not _ndarray:  # Numba takes np.matrix for an array
                        break
                else:
                    out = _empty(shape, dtype)
                    try:
                        hit = program(*args, out)
                    except Exception:  # not arrays of the compiled types; the paths below tell
                        pass
                if hit:
                    self.stats["cache_hits"] += 1
                    return out
                self._hot = None
            # Fast path: arguments whose exact structure and layout were seen before, either
            # positional C-contiguous arrays, or pytrees of them and Python scalars.
            fast = self._fast.get(mode)
            if fast:
                run = fast.get(_ARGUMENT_KEYS[len(args)](*args))
                leaves = args
                if run is None:  # not all arrays (a pytree, a scalar, a tracer ...) or a new layout
                    for match, run_tree in fast.get("pytrees", ()):
                        leaves = match(args)
                        if leaves is not None:
                            run = run_tree
                            break
                if run is not None:
                    self.stats["cache_hits"] += 1
                    return run(leaves)
        if mode == "eager" or trace_stack():
            # Eager, or called while another function is being traced or differentiated: run the
            # body inline (it may read that trace's values through closures, not only arguments).
            return self.fn(*args, **kwargs)
        key, leaves = self._key(args, kwargs)
        try:
            entry = self._cache.get(key)
        except TypeError:
            raise self._unhashable_static(key) from None
        if entry is None:
            entry = self._miss(key, leaves, args, kwargs)
        elif entry.bindings and _rebound(entry.bindings):
            entry = self._miss(key, leaves, args, kwargs, stale=entry)
        else:
            self.stats["cache_hits"] += 1
            if len(self._cache) > 1:  # most recently used last, for _evict
                self._cache[key] = self._cache.pop(key)
        if entry.program.mutated:
            aliases = _aliases(leaves, entry, self.__name__)
            if aliases is not None:
                entry = self._aliased_entry(key, aliases, leaves, args, kwargs)
        if self.check:
            return run_checked(self, self.fn, args, kwargs, lambda: self._run(entry, leaves, mode))
        result = self._run(entry, leaves, mode)
        if mode == "compiled" and not kwargs and not entry.checks_contents:
            if entry.bindings:
                self._guard_fast(entry.bindings)
            self._remember_fast(entry, args, leaves)
        return result

    @contextlib.contextmanager
    def timing_inner(self, mode=None, clock=time.perf_counter_ns):
        """For measuring the call path's own cost (``python -m tracejit.bench``'s overhead column):
        while the ``with`` block runs, calls in ``mode`` (default: this function's or the current
        one) that reuse the program of the last call append to the yielded list the time, in
        ``clock`` units, spent inside what they run (the compiled program; the interpreter in
        graph mode; the Python function in eager mode), so that a caller timing whole calls can
        take it away. The fast paths are rebuilt around the timed callables on entry, and
        around the original ones on exit; calls cost what they did before once the block ends.
        Raises ValueError when this function has not been called in ``mode`` with its last
        arguments' signature yet."""
        mode = check_mode(mode or self.mode or get_mode())
        inner = []

        def timed(fn):
            def wrapper(*args, **kwargs):
                t0 = clock()
                try:
                    return fn(*args, **kwargs)
                finally:
                    inner.append(clock() - t0)
            return wrapper

        if mode == "eager":
            original = self.fn
            self.fn = timed(original)
            try:
                yield inner
            finally:
                self.fn = original
            return
        entry = self._cache.get(self._last_key)
        if entry is None or mode not in entry.runners:
            raise ValueError(f"{self.__name__}.timing_inner: no program has run in {mode!r} mode for the "
                             f"last call's arguments yet; call the function first")
        compiled = entry.compiled if mode == "compiled" else None
        if compiled is None:
            original = entry.runners[mode]
            entry.runners[mode] = timed(original)
            try:
                yield inner
            finally:
                entry.runners[mode] = original
            return
        # The fast paths keep direct references to the program (its dispatcher, or its entry
        # point): they are dropped here, so that the next call rebuilds them around the timed
        # callables, and dropped again on the way out.
        original_fn, original_entry = compiled.fn, compiled.entry
        with self._lock:
            self._fast.pop(mode, None)
            self._hot = None
            compiled.fn, compiled.entry = timed(original_fn), timed(original_entry)
        try:
            yield inner
        finally:
            with self._lock:
                compiled.fn, compiled.entry = original_fn, original_entry
                self._fast.pop(mode, None)
                self._hot = None

    def _guard_fast(self, bindings):
        """Make the fast path check the Python values of ``bindings`` too (see __call__)."""
        n = len(self._guarded)
        for kind, name, where, *_ in bindings:
            self._guarded.setdefault((kind, name, id(where)), (kind, name, where))
        if len(self._guarded) != n or self._guard is None:
            self._guard = _identity_guard(list(self._guarded.values()))

    def _forget_fast(self):
        """A global or closure value the fast path relied on changed: every call takes the full
        path (which retraces if the value really changed) until the fast path is rebuilt."""
        self._guard, self._guarded, self._hot = None, {}, None
        self._fast.clear()

    def _remember_fast(self, entry, args, leaves):
        """Register a direct call for this exact argument structure and layout (see the fast
        path above): C-contiguous arrays and Python scalars, no in-place updates."""
        program, compiled = entry.program, entry.compiled
        if program.mutated or compiled is None or compiled._passthrough or len(leaves) != len(entry.leaf_sigs):
            return
        if not all(_direct(a) or type(a) in _SCALAR_DTYPES for a in leaves):
            return
        treedef, pinned = None, frozenset()
        if all(type(a) is np.ndarray for a in args):
            key = _ARGUMENT_KEYS[len(args)](*args)
        elif self._static_nums:
            # static arguments are leaves of the matcher that must be the same objects
            flat, parts = [], []
            for i, a in enumerate(args):
                if i in self._static_nums:
                    pinned |= {len(flat)}
                    arg_leaves, part = [a], pytree._LEAF
                else:
                    arg_leaves, part = pytree.flatten(a)
                flat.extend(arg_leaves)
                parts.append(part)
            treedef = ("t", tuple(parts))
            key = (treedef, tuple(id(a) if k in pinned else _leaf_layout(a) for k, a in enumerate(flat)))
        else:
            flat, treedef = pytree.flatten(args)
            key = (treedef, tuple(map(_leaf_layout, flat)))
        if key in self._fast.get("compiled", {}):
            return
        # Python scalars become 0-d arrays of their traced dtype (float -> float64 ...)
        scalars = tuple((i, _SCALAR_DTYPES[type(a)]) for i, a in enumerate(leaves) if type(a) in _SCALAR_DTYPES)
        captured = tuple(program.captured)
        if not all(_direct(c) for c in captured):
            return
        # The fast path's key pins each argument's type, dtype, shape and layout, so the compiled
        # function's entry point can skip the dispatcher's checks; arrays captured from globals
        # are not in the key (their shape could change), so they keep the checks.
        fn, extra = compiled.fn if captured else compiled.entry, captured + tuple(compiled._consts)
        # Each piece below is chosen once here, so that a call runs as few Python steps as possible.
        if program.out_tree != "*":
            rebuild = pytree.unflattener(program.out_tree)

            def finish(outs):
                return rebuild(_results(program, outs))
        elif program.python_outputs:
            def finish(outs):
                return outs[0].item()  # the Python number the function returned
        elif program.graph.outputs[0].aval.shape == () and 0 not in program.ndarray_outputs:
            def finish(outs):
                return outs[0][()]  # a 0-d result is a NumPy scalar, as NumPy gives it
        else:
            finish = _first

        int_ranges, fname = entry.int_ranges, self.__name__
        if scalars:
            def inputs(leaves):
                if int_ranges:
                    _check_int_ranges(int_ranges, leaves, fname)
                arrays = list(leaves)
                for i, dtype in scalars:
                    arrays[i] = np.asarray(arrays[i], dtype)
                return arrays
        else:
            def inputs(leaves):
                return leaves

        outputs = compiled.outputs
        if compiled.temp_bytes or compiled.locations or (outputs is not None and (
                outputs.recycles or not outputs.passes_all)):
            # a workspace, recycled outputs, copies returned or messages to complete: the
            # program's own bookkeeping (CompiledProgram.call)
            def run(leaves):
                return finish(compiled.call((*inputs(leaves), *captured), fn))
        elif outputs is not None and (scalars or extra):
            new_outputs = outputs.new

            def run(leaves):
                outs = new_outputs()
                fn(*inputs(leaves), *extra, *outs)
                return finish(outs)
        elif outputs is not None:
            new_outputs = outputs.new

            def run(leaves):
                outs = new_outputs()
                fn(*leaves, *outs)
                return finish(outs)

            # only for the first layout registered: the registry is never empty again, so a
            # function whose shortest path has missed never gets one back
            if treedef is None and finish is _first and len(outputs.specs) == 1 and not self._fast.get("compiled"):
                self._hot = (compiled.fn, *outputs.specs[0])
        elif scalars or extra:
            def run(leaves):
                return finish(fn(*inputs(leaves), *extra))
        else:
            def run(leaves):
                return finish(fn(*leaves))

        fast = self._fast.setdefault("compiled", {})
        # All-array calls look their key up here; pytree calls try each matcher in turn (a
        # pytree's key here only marks its matcher as registered).
        fast[key] = run
        if treedef is not None:
            fast.setdefault("pytrees", []).append((_pytree_matcher(treedef, flat, pinned), run))

    def _run(self, entry, leaves, mode):
        runner = entry.runners.get(mode) or self._make_runner(entry, mode)
        program = entry.program
        if entry.int_ranges:
            _check_int_ranges(entry.int_ranges, leaves, self.__name__)
        arrays = [_as_runtime_array(x, s) for x, s in zip(leaves, entry.leaf_sigs)] + program.captured
        if program.mutated:
            self._check_writable(leaves, program.mutated, entry.names)
        outs = runner(arrays)
        n = program.n_results
        if program.captured:
            # A result that is an array captured at trace time (computed there, or a global) is
            # returned as a copy: eager code makes a fresh one per call, and callers may mutate it.
            captured = {id(v) for v in program.captured}
            outs = [o.copy() if id(o) in captured else o for o in outs]
        for position, new_value in zip(program.mutated, outs[n:]):
            target = leaves[position]
            if isinstance(target, np.ndarray) and new_value is not target:  # compiled code writes in place
                np.copyto(target, new_value)
        return pytree.unflattener(program.out_tree)(_results(program, outs))

    def _check_writable(self, leaves, mutated, names):
        for position in mutated:
            target = leaves[position]
            if isinstance(target, np.ndarray) and not target.flags.writeable:
                raise ValueError(f"{self.__name__}: argument {_label(names[position])} is updated in place but is "
                                 "read-only (pass a writable array, e.g. a copy)")

    # ------------------------------------------------------------------------- tracing
    def _miss(self, key, leaves, args, kwargs, stale=None):
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry is not stale:  # another thread traced it while we waited
                return entry
            names = self._leaf_names(leaves, args, kwargs)
            self._validate(key, leaves, names)
            if stale is not None:
                self._record_retrace(key, names, _rebound(stale.bindings))
            elif self._cache:
                self._record_retrace(key, names)
            entry = self._trace(key, args, kwargs, names)
            self._cache[key] = entry
            self._last_key = key
            self._evict()
            return entry

    def _evict(self):
        """Keep the ``TRACEJIT_CACHE_SIZE`` most recently traced or looked-up signatures: the
        oldest others are dropped with their programs (a call with one traces it again)."""
        size = cache_size()
        if len(self._cache) <= size:
            return
        while len(self._cache) > size:
            del self._cache[next(iter(self._cache))]
        # direct calls registered for the dropped programs go too; live ones register again on
        # their next call (the marker keeps the shortest path off, as after any miss)
        self._fast = {mode: {"evicted": None} for mode in self._fast}
        self._hot = None
        self._aliased = {k: entry for k, entry in self._aliased.items() if k[0] in self._cache}

    def _aliased_entry(self, key, aliases, leaves, args, kwargs):
        """The program for this signature when some arguments are one array (``aliases``, see
        ``_aliases``): traced with one tracer for all of them, so an update through one name
        is seen through the others, as in NumPy."""
        entry = self._aliased.get((key, aliases))
        if entry is not None:
            return entry
        with self._lock:
            entry = self._aliased.get((key, aliases))
            if entry is None:
                names = self._leaf_names(leaves, args, kwargs)
                same = ", ".join(f"argument {_label(names[k])} is the same array as {_label(names[first])}"
                                 for k, first in enumerate(aliases) if first != k)
                self._record_retrace(key, names, f"{same} (updated in place)")
                entry = self._aliased[(key, aliases)] = self._trace(key, args, kwargs, names, aliases)
        return entry

    def _trace(self, key, args, kwargs, names, aliases=None):
        treedef, sigs, statics = key
        in_avals = [_leaf_aval(s) for s in sigs]

        def unflatten_args(tracers):
            if aliases is not None:
                tracers = [tracers[first] for first in aliases]
            if tracers:  # so errors can say which argument a traced value is
                tracers[0]._trace.input_names = {id(getattr(t, "atom", None)): n for t, n in zip(tracers, names)}
            for t, sig in zip(tracers, sigs):
                if sig[0] == () and len(sig) == 2:  # a 0-d array (not a NumPy scalar or Python number)
                    t.ndarray0d = True
            dyn_args, dyn_kwargs = pytree.unflatten(treedef, tracers)
            return self._merge_statics(dyn_args, dyn_kwargs, statics)

        def flatten_out(result):
            out_leaves, out_tree = pytree.flatten(result)
            for i, leaf in enumerate(out_leaves):
                if not isinstance(leaf, (Tracer, np.ndarray, np.generic, bool, int, float, complex)):
                    raise TypeError(f"{self.__name__} returned a {type(leaf).__name__} (output {i}); traced functions "
                                    "return arrays, Python numbers, or tuples/lists/dicts of them")
            return out_leaves, out_tree

        rng_before = _global_random_state()
        watch = outside.Watch()
        start = time.perf_counter()
        try:
            program = make_graph(watch.function(self.fn), in_avals, unflatten_args, flatten_out, names)
        finally:
            watch.finish()
        self.stats["trace_seconds"] += time.perf_counter() - start
        self.stats["traces"] += 1
        self.stats["traced_equations"] += len(program.graph.eqns)
        if _global_random_state() != rng_before:
            warnings.warn(
                f"tj.trace: {self.__name__} drew numbers from np.random while it was traced. They are constants "
                "of the traced program now: every call in 'graph' or 'compiled' mode reuses the same numbers. "
                "Draw them outside and pass them in as an argument (a dropout mask, noise, a permutation).",
                RuntimeWarning, stacklevel=4)
        raw = program.graph
        start = time.perf_counter()
        program.graph = run_passes(raw, self.passes)
        self.stats["pass_seconds"] += time.perf_counter() - start
        if log_enabled("graph"):
            log("graph", f"{self.__name__} as traced ({len(raw.eqns)} equations):\n{raw}")
            log("graph", f"{self.__name__} after passes ({len(program.graph.eqns)} equations):\n{program.graph}")
        bindings = _bindings(self.fn, program.captured, watch.baked())
        large = [(kind, name, len(how)) for kind, name, _, _, how in bindings
                 if type(how) is bytes and len(how) > _LARGE_BAKED_BYTES]
        if large:
            kind, name, size = large[0]
            warnings.warn(
                f"tj.trace: {self.__name__} computed with the values of {kind} {name!r} ({size / 2**20:.1f} MiB) "
                "while it was traced, so every call compares them with what they were, to retrace if they "
                "changed. Pass the array as an argument, or compute what you need from it outside the function.",
                RuntimeWarning, stacklevel=4)
        return _Entry(program, raw, sigs, bindings, names)

    def _merge_statics(self, dyn_args, dyn_kwargs, statics):
        args = list(dyn_args)
        kwargs = dict(dyn_kwargs)
        for kind, where, value in statics:
            if kind == "#":
                args.insert(where, value)
            else:
                kwargs[where] = value
        return tuple(args), kwargs

    def _interpreted_in_compiled_mode(self, entry):
        """A compiled-mode runner that interprets the optimised graph: while the program compiles
        (tiered execution), or past the compile limit. It warns about floating-point errors as
        little as compiled code does, so that nothing depends on which one ran."""
        graph = entry.program.graph

        def runner(arrays):
            self.stats["interpreted_calls"] += 1
            with np.errstate(all="ignore"):
                return interpret(graph, arrays)
        return runner

    def _make_runner(self, entry, mode):
        if mode == "compiled" and self._over_compile_limit():
            runner = self._interpreted_in_compiled_mode(entry)
        elif mode == "graph":
            graph = entry.program.graph
            runner = functools.partial(interpret, graph)
        elif self._tiered_for(entry):
            return self._compile_in_background(entry)
        else:
            self.stats["compiled_programs"] += 1
            runner = self._compile(entry)
        entry.runners[mode] = runner
        return runner

    def _tiered_for(self, entry) -> bool:
        """Whether ``entry``'s program compiles in the background (tiered execution). A program
        with a collective never does: every process must run the same code at every step, and an
        interpreted step on one process beside a compiled one on another rounds differently, so
        their parameters would drift apart without an error. Nor does a program compiled
        already (in the disk cache): loading it takes about 0.2 s, and the interpreter beside the
        load slowed both (a warm MNIST epoch took 0.9-1.1 s against 0.36 s for NumPy)."""
        if not (self.tiered if self.tiered is not None else tiers.tiered_by_default()):
            return False
        collective = next((eqn.prim.name for eqn in entry.program.graph.eqns if eqn.prim.extra.get("collective")), None)
        if collective is not None:
            log("compile", f"{self.__name__}: compiled before the first call returns, not in the background, "
                           f"because it calls the collective {collective} (every process must run the same code)")
            return False
        if "tracejit.backend" not in sys.modules and not machine_code_cached():
            return True  # nothing to load: the backend and Numba are imported by the compile
        from .backend import is_compiled
        if is_compiled(entry.program.graph, **self._backend_options(entry.program)):
            log("compile", f"{self.__name__}: loaded before the first call returns, not interpreted meanwhile, "
                           "because it is compiled already (in the disk cache)")
            return False
        return True

    def _compile(self, entry, helper_process=False):
        from .backend import compile_graph, take_import_seconds
        start = time.perf_counter()
        compiled = compile_graph(entry.program.graph, helper_process=helper_process,
                                 **self._backend_options(entry.program))
        self.stats["compile_seconds"] += time.perf_counter() - start
        parts = self.stats["compile_parts"]
        for part, seconds in {"backend import": take_import_seconds(), **compiled.compile_parts}.items():
            parts[part] = parts.get(part, 0.0) + seconds
        self.stats["kernels"] = compiled.kernels
        self.stats["fused_ops"] = compiled.fused_ops
        self.stats["temp_bytes"] = compiled.temp_bytes
        entry.compiled = compiled
        return compiled

    def _compile_in_background(self, entry):
        """Tiered execution: the interpreter runs the optimised graph until the compile that
        starts here is done; then the compiled program replaces it (and the fast paths form
        around it on the next call). A compile that fails raises its error on the next call."""
        runner = self._interpreted_in_compiled_mode(entry)

        def compile_and_switch():
            try:
                compiled = self._compile(entry, tiers.helper_wanted)
            except BaseException as exc:
                error = exc  # ``exc`` itself is unbound when the except block ends

                def failed(arrays):
                    raise error
                entry.runners["compiled"] = failed
                raise
            entry.runners["compiled"] = compiled
            log("compile", f"{self.__name__}: the compiled program replaces the interpreter")
            return compiled

        self.stats["compiled_programs"] += 1
        entry.runners["compiled"] = runner  # before the compile can finish and put its program here
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(tiers.submit(compile_and_switch))
        return runner

    def wait(self, timeout: float | None = None) -> None:
        """Block until the programs this function is compiling in the background are ready, so
        that the next calls run compiled code (benchmarks and tests measure that tier). Raises
        the compile's error if one failed, and ``TimeoutError`` after ``timeout`` seconds."""
        from concurrent.futures import TimeoutError as FutureTimeout
        with tiers.waiting():
            for future in list(self._pending):
                try:
                    future.result(timeout)
                except FutureTimeout:
                    raise TimeoutError(f"{self.__name__}.wait: the compile is still running after {timeout} s") \
                        from None
        self._pending = [f for f in self._pending if not f.done()]

    def _over_compile_limit(self) -> bool:
        limit = compile_limit()
        if not limit or self.stats["compiled_programs"] < limit:
            return False
        if not self._warned_compile_limit:
            self._warned_compile_limit = True
            last = self.stats["retraces"][-1] if self.stats["retraces"] else "a new signature"
            warnings.warn(
                f"tj.trace: {self.__name__} has compiled {limit} programs, one per signature (the last retrace "
                f"because {last}). New signatures run in the NumPy interpreter from now on (the same results, "
                "more slowly), since every compiled program's machine code stays in memory until the process "
                "ends. Keep shapes fixed (pad or bucket them, drop the last partial batch), or set "
                "TRACEJIT_COMPILE_LIMIT (0: no limit).", RuntimeWarning, stacklevel=5)
            log("compile", f"{self.__name__}: compile limit of {limit} programs reached; new signatures are interpreted")
        return True

    # ------------------------------------------------------------------------- messages
    def _leaf_names(self, leaves, args=None, kwargs=None):
        if args is None:
            return [f"leaf {i}" for i in range(len(leaves))]
        args, kwargs = self._canonical(args, kwargs)
        dyn_args, dyn_kwargs, _ = self._split(args, kwargs)
        dyn_positions = [i for i in range(len(args)) if i not in self._static_nums]
        n_named = len(self._positional_names)
        varargs = next((p.name for p in self._params if p.kind == p.VAR_POSITIONAL), "args")
        names = []
        for pos, a in zip(dyn_positions, dyn_args):
            base = self._positional_names[pos] if pos < n_named else f"{varargs}[{pos - n_named}]"
            names += pytree.leaf_paths(pytree.flatten(a)[1], base)
        for k in sorted(dyn_kwargs):
            names += pytree.leaf_paths(pytree.flatten(dyn_kwargs[k])[1], k)
        return names

    def _validate(self, key, leaves, names):
        for leaf, sig, name in zip(leaves, key[1], names):
            if sig is not None:
                continue
            fname = getattr(self.fn, "__name__", "function")
            if isinstance(leaf, (str, bytes)):
                raise TypeError(f"{fname}: argument {_label(name)} is a string, which cannot be traced. "
                                f"Mark it static: {self._static_advice(name)}")
            if isinstance(leaf, (np.matrix, np.ma.MaskedArray)):
                raise TypeError(f"{fname}: argument {_label(name)} is a {type(leaf).__name__}, whose operators differ "
                                "from ndarray's; pass np.asarray(...) of it")
            if isinstance(leaf, (np.ndarray, np.generic)):
                raise TypeError(f"{fname}: argument {_label(name)} has dtype {leaf.dtype}, which tracejit cannot trace "
                                "(numeric and bool dtypes only)")
            raise TypeError(f"{fname}: argument {_label(name)} is a {type(leaf).__name__}; traced arguments must be "
                            "NumPy arrays, Python numbers, or tuples/lists/dicts/None of them. Convert it with "
                            "np.asarray, or mark it static with static_argnums/static_argnames")

    def _static_advice(self, name):
        """How to make the argument holding leaf ``name`` static."""
        base, _, rest = name.partition("[")
        varargs = next((p.name for p in self._params if p.kind == p.VAR_POSITIONAL), None)
        if base == varargs and rest.split("]")[0].isdigit():
            return f"@tj.trace(static_argnums=({len(self._positional_names) + int(rest.split(']')[0])},))"
        return f"@tj.trace(static_argnames=({base!r},))"

    def _unhashable_static(self, key):
        for kind, where, value in key[2]:
            try:
                hash(value)
            except TypeError:
                label = where if kind == "=" else (self._positional_names[where] if where < len(
                    self._positional_names) else f"args[{where}]")
                return TypeError(f"{self.__name__}: static argument {label!r} must be hashable (it is part of the "
                                 f"cache key), got a {type(value).__name__}")
        return TypeError("unhashable argument")

    def _record_retrace(self, key, names, reason=None):
        reason = reason or self._diff(self._closest_key(key), key, names)
        self.stats["retraces"].append(reason)
        log("retrace", f"{self.__name__}: retrace #{len(self.stats['retraces'])} because {reason}; {_retrace_advice(reason)}")
        if len(self.stats["retraces"]) >= RETRACE_WARNING_THRESHOLD and not self._warned:
            self._warned = True
            warnings.warn(
                f"tj.trace: {self.__name__} has been retraced {len(self.stats['retraces'])} times; the last time "
                f"because {reason}. Each new signature traces and compiles again. Keep shapes and dtypes fixed "
                "(e.g. pad or drop the last partial batch, cast inputs once), and pass values that change "
                "per call as arrays or Python numbers rather than static arguments.",
                RuntimeWarning, stacklevel=4)

    def _closest_key(self, new):
        """The cached signature the call missed most narrowly: same statics and structure if
        possible, then the fewest changed leaves (so the reason names what really changed)."""
        def distance(old):
            same_tree = old[0] == new[0]
            changed = sum(a != b for a, b in zip(old[1], new[1])) if same_tree else len(new[1])
            return old[2] != new[2], not same_tree, changed
        return min(reversed(list(self._cache)), key=distance, default=self._last_key)  # ties: the latest

    def _diff(self, old, new, names) -> str:
        old_tree, old_sigs, old_static = old
        new_tree, new_sigs, new_static = new
        if old_static != new_static:
            old_d = {(k, w): v for k, w, v in old_static}
            for k, w, v in new_static:
                if old_d.get((k, w), object()) != v:
                    label = w if k == "=" else (self._positional_names[w] if w < len(self._positional_names) else w)
                    return f"static argument {label!r} changed: {old_d.get((k, w))!r} -> {v!r}"
        if old_tree != new_tree:
            return (f"the argument structure changed: {len(old_sigs)} leaves -> {len(new_sigs)} leaves "
                    f"(now {', '.join(names)})")
        changes = [f"argument {_label(name)} changed: {_describe_change(a, b)}"
                   for name, a, b in zip(names, old_sigs, new_sigs) if a != b]
        if changes:
            return "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
        return "the signature changed"

    # ------------------------------------------------------------------------- inspection
    def _entry_for(self, args, kwargs):
        key, leaves = self._key(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._miss(key, leaves, args, kwargs)
        return entry

    def graph(self, *args, optimize=True, **kwargs):
        """The ``tj.Graph`` that runs for these arguments (after all passes; ``optimize=False``:
        as traced). Traces if needed, never runs the function."""
        entry = self._entry_for(args, kwargs)
        return entry.program.graph if optimize else entry.raw_graph

    def source(self, *args, **kwargs):
        """The generated Numba source for these arguments."""
        from .backend import generate_source
        entry = self._entry_for(args, kwargs)
        return generate_source(entry.program.graph, **self._backend_options(entry.program))

    def _backend_options(self, program) -> dict:
        # in-place updates of arguments are written by the program into the caller's arrays
        write_back = {program.n_results + j: position for j, position in enumerate(program.mutated)}
        return dict(fastmath=self.fastmath, parallel=self.parallel, name=getattr(self.fn, "__name__", "fn"),
                    write_back=write_back)


def trace(fn=None, *, static_argnums=(), static_argnames=(), mode=None, fastmath=False, parallel=None, passes=None,
          check=None, tiered=None):
    """Decorator: trace ``fn`` once per input signature and run it in the current mode.

    Use bare (``@tj.trace``) or with options (``@tj.trace(static_argnames=("n",))``).
    ``mode`` pins this function's mode; ``passes`` replaces the optimisation pipeline
    (a list of ``Graph -> Graph`` functions, see ``tj.transforms``). ``check=True`` (or
    ``TRACEJIT_CHECK=1``) also runs every call eagerly and raises ``tj.MismatchError`` if the
    results differ beyond tolerance. ``parallel=True`` runs the outer loop of every compiled
    kernel on Numba's threads, ``False`` never; ``None`` (the default) does so for kernels of at
    least a million elements when Numba has more than one thread.

    ``tiered`` (default: ``TRACEJIT_TIERED``, on): in compiled mode a new signature's first
    calls run the optimised graph in the NumPy interpreter while its program compiles in the
    background; later calls use the compiled program once it is ready (``f.wait()`` waits for
    it). The results agree within the tolerances of every mode, not bit for bit. ``tiered=False``
    compiles before the first call returns, as does a program that calls a collective of
    ``tj.distributed`` (every process must run the same code).
    """
    options = dict(static_argnums=static_argnums, static_argnames=static_argnames, mode=mode, fastmath=fastmath,
                   parallel=parallel, passes=passes, check=check, tiered=tiered)
    if fn is None:
        return lambda f: Traced(f, **options)
    return Traced(fn, **options)
