"""Seeded random NumPy programs for differential testing (driven by ``tests/test_fuzz.py``).

``make_group(seed, n_programs, grad=False)`` writes ``n_programs`` small random programs into
the body of *one* Python function (so compiled mode builds one Numba program for all of
them) and returns a ``Group``: the function's source, the function, its arguments, and for
every output the program it belongs to and the tolerance to compare it with.

Programs are valid by construction. The generator evaluates every line with NumPy while it
writes it, on the group's real arguments, with all floating-point warnings turned into errors;
a candidate line that raises, warns, overflows, leaves the dtypes the contract covers, or
sits too close to a discontinuity (below) is thrown away and another one is drawn. Domain
helpers write the usual guards as ordinary lines (``t = v * v + 0.5`` before a ``log``), so
most picks succeed.

What is drawn: elementwise unary and binary ufuncs (as functions, operators and methods)
including comparisons, logical operators and ``np.where``; broadcasting against size-1 axes
and new leading axes; Python scalars (literals, and traced Python-number arguments) and
NumPy scalars as operands, so NEP 50 promotion is exercised; reductions (sum, mean, max, min,
var, std, argmax, argmin, any, all, prod, ptp, nansum, nanmean, nanmax, nanmin) with ``axis``
None / int / negative / tuple and ``keepdims``; cumsum, cumprod and diff along an axis; matmul, ``@``, dot, inner, outer, vdot; basic indexing with steps (also
negative), ``None`` and ``...``; integer-array indexing with constant and traced indices
(negative ones too), ``take``, ``take_along_axis``; concatenate, stack; reshape, transpose,
swapaxes, moveaxis, expand_dims, squeeze, broadcast_to, ravel; ``astype`` between float32,
float64, int32, int64 and bool; ``tj.nn`` softmax, log_softmax, logsumexp, relu, sigmoid;
``np.linalg`` solve, inv, det, slogdet, cholesky and eigvalsh of well-conditioned matrices the
program builds itself (``M + c * I`` diagonally dominant, ``M @ M.T + c * I`` positive
definite, from values squashed to |M| <= 1), and norms (only smooth ones in gradient groups);
``np.fft`` round trips (``irfft(rfft(x))``, ``ifft(fft(x)).real``, with ``norm='ortho'``) and
the real parts, imaginary parts and magnitudes of spectra.

Tolerances. Float results are compared with the contract's rtol (float64 1e-12, float32
1e-5) per element, plus an absolute term for elements near 0: ``atol = err * rtol / eps``,
where ``err`` is a first-order bound on the program's rounding error that the generator
carries along: each float operation adds ``eps(dtype) * max|result|`` (sums and matmuls ``n``
times that), and an input's error reaches the result scaled by the largest derivative of the
operation over the data (measured by central differences on the float64 data for
elementwise lines; written out for reductions, matmul, np.linalg and np.fft: a backward-stable
solve rounds by ``eps * n * cond`` relative to its result, with the condition number measured
on the data, and carries its inputs' errors through the norm of the inverse). So ``atol`` is the contract's
rtol applied to the magnitudes that feed the output, and a float32 intermediate inside a
float64 result counts with float32's epsilon. Integers and booleans must match exactly.

Discontinuities. A comparison, ``floor``/``ceil``/``trunc``/``sign``, ``//``, ``%``, a cast
to int or bool, or ``argmax`` of values that carry rounding error (or, in gradient groups,
that depend on a differentiated input) is kept only if every element is clear of the
boundary by ``1e-4 * scale`` plus the rounding bound, so no mode can land on the other side,
and finite differences do not cross it.

Gradient groups (``grad=True``) use float64 for every float value, so their gradients can be
checked against central differences; ``Group.loss_source`` is ``sum(out_k * w_k)`` over the
float outputs, with fixed random weights ``w_k`` passed as arguments.

Reproduce a failure with ``python tests/fuzzing.py SEED [--grad] [--size N] [--program K]``:
it prints the group's source, or (with ``--program``) a stand-alone script for one program
with its arguments written out.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

import tracejit as tj

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
I32, I64 = np.dtype(np.int32), np.dtype(np.int64)
BOOL = np.dtype(np.bool_)
# Result dtypes the contract covers (bool // bool is int8 in NumPy; that is allowed too).
ALLOWED = {BOOL, np.dtype(np.int8), np.dtype(np.int16), I32, I64, F32, F64}
RTOL = {F32: 1e-5, F64: 1e-12}
EPS = {F32: float(np.finfo(np.float32).eps), F64: float(np.finfo(np.float64).eps)}

MAX_FLOAT = 1e4        # float values stay within +-MAX_FLOAT
MAX_INT = 2 ** 20      # integer values stay within +-MAX_INT; bounds checked before each op
MAX_SIZE = 240         # elements per array
MARGIN_REL, MARGIN_ABS = 1e-4, 1e-6   # distance kept from discontinuities (see module doc)
NAMESPACE = {"np": np, "tj": tj}


def rtol_over_eps(dtype) -> float:
    dtype = np.dtype(dtype)
    return RTOL[dtype] / EPS[dtype] if dtype in RTOL else 0.0


def tolerance(dtype, err: float) -> tuple[float, float]:
    """(rtol, atol) for a result of ``dtype`` whose rounding-error bound is ``err``."""
    dtype = np.dtype(dtype)
    if dtype not in RTOL:
        return 0.0, 0.0
    return RTOL[dtype], err * rtol_over_eps(dtype)


# ----------------------------------------------------------------------------- values


@dataclass(eq=False)
class Val:
    """A named value of a program (an argument or a line's result) and what is known of it."""

    name: str
    value: object                 # the NumPy value (a Python number for scalar arguments)
    err: float = 0.0              # first-order bound on its absolute rounding error
    dep: bool = False             # depends smoothly on a differentiated argument
    weak: bool = False            # a Python number (an argument of the group function)
    uses: int = 0

    @property
    def arr(self) -> np.ndarray:
        return np.asarray(self.value)

    @property
    def shape(self):
        return self.arr.shape

    @property
    def ndim(self):
        return self.arr.ndim

    @property
    def size(self):
        return self.arr.size

    @property
    def dtype(self):
        return self.arr.dtype

    @property
    def kind(self):
        return self.dtype.kind

    @property
    def mag(self) -> float:
        a = self.arr
        return float(np.max(np.abs(a.astype(np.float64)))) if a.size else 0.0

    @property
    def f64(self) -> np.ndarray:
        return self.arr.astype(np.float64)

    @property
    def inexact(self) -> bool:
        """Different modes may round it differently (or, in a gradient group, finite
        differences move it): decisions on it need a margin."""
        return self.err > 0 or self.dep


@dataclass
class Program:
    index: int
    lines: list = field(default_factory=list)
    outputs: list = field(default_factory=list)     # Vals
    inputs: list = field(default_factory=list)      # argument Vals it reads


@dataclass
class Output:
    position: int          # index in the group function's result tuple
    program: int
    name: str
    dtype: np.dtype
    shape: tuple
    err: float
    value: object = None   # what the generator computed for it, line by line

    def tolerance(self):
        return tolerance(self.dtype, self.err)


@dataclass
class Group:
    seed: int
    grad: bool
    args: list             # argument Vals, in order
    programs: list
    outputs: list          # Output
    source: str
    fn: object
    loss_source: str = ""
    loss_fn: object = None
    weights: list = field(default_factory=list)     # np arrays, one per float output used by the loss
    diff_argnums: tuple = ()

    @property
    def arg_values(self):
        return [a.value for a in self.args]

    def call_args(self):
        """Fresh copies of the arguments (a call cannot disturb the next one)."""
        return [a.value.copy() if isinstance(a.value, np.ndarray) else a.value for a in self.args]

    def loss_args(self):
        return self.call_args() + [w.copy() for w in self.weights]

    def program_source(self, k: int) -> str:
        """The lines of the program whose index is ``k``."""
        p = next(p for p in self.programs if p.index == k)
        return "\n".join(p.lines)

    def describe(self, program: int | None = None) -> str:
        """The seed, how to reproduce, and the source (of one program, then the whole group)."""
        kind = " --grad" if self.grad else ""
        head = (f"fuzz seed {self.seed} ({'gradient' if self.grad else 'forward'} group of "
                f"{len(self.programs)} programs). Reproduce: python tests/fuzzing.py {self.seed}{kind} "
                f"--size {len(self.programs)}" + (f" --program {program}" if program is not None else ""))
        parts = [head]
        if program is not None:
            parts.append(f"--- program {program}:\n" + self.program_source(program))
        parts.append("--- arguments: " + ", ".join(f"{a.name}: {_describe_arg(a)}" for a in self.args))
        parts.append("--- group source:\n" + self.source + (("\n" + self.loss_source) if self.grad else ""))
        return "\n".join(parts)


def _describe_arg(a: Val) -> str:
    if a.weak:
        return f"{type(a.value).__name__} {a.value!r}"
    return f"{a.dtype}{list(a.shape)}"


# ----------------------------------------------------------------------------- evaluation


class Rejected(Exception):
    """A candidate line is not valid NumPy on this data (or not safe to compare)."""


@contextlib.contextmanager
def strict_numpy():
    """NumPy floating-point errors and every warning raise."""
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _product_bound(mag: float, n: int) -> float:
    """A bound on every partial product of ``n`` factors of magnitude at most ``mag``; too
    loose a bound to compare results with is Rejected."""
    log_bound = n * math.log(max(mag, 1.0))
    if log_bound > math.log(1e12):
        raise Rejected("product bound")
    return math.exp(log_bound)


def _evaluate(expr: str, env: dict):
    with strict_numpy():
        try:
            return eval(expr, NAMESPACE, env)  # noqa: S307 - the generator's own text
        except Rejected:
            raise
        except Exception as e:  # NumPy refuses it on this data (shapes, dtypes, domain ...)
            raise Rejected(f"{type(e).__name__}: {e}") from None


def _execute(lines, env: dict, name: str):
    """Run statements (an assignment into a copy) on a copy of ``env``; the value of ``name``."""
    scope = dict(env)
    with strict_numpy():
        try:
            exec("\n".join(lines), NAMESPACE, scope)  # noqa: S102 - the generator's own text
        except Exception as e:  # noqa: BLE001 - NumPy refuses it on this data
            raise Rejected(f"{type(e).__name__}: {e}") from None
    return scope[name]


def _numeric_partial(expr: str, env: dict, name: str) -> float:
    """max |d expr / d name| over the data, by central differences in float64 (for
    elementwise lines: each output element reads one element of ``name``)."""
    base = np.asarray(env[name], dtype=np.float64)
    h = 1e-6 * (np.abs(base) + 1e-3)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hi = np.asarray(eval(expr, NAMESPACE, {**env, name: base + h}), dtype=np.float64)  # noqa: S307
        lo = np.asarray(eval(expr, NAMESPACE, {**env, name: base - h}), dtype=np.float64)  # noqa: S307
    try:
        step = np.broadcast_to(h, hi.shape)
    except ValueError:
        step = np.full(hi.shape, float(np.min(h)) if h.size else 1.0)
    d = np.abs(hi - lo) / (2 * step)
    if d.size == 0:
        return 0.0
    if not np.all(np.isfinite(d)):
        raise Rejected("derivative not finite")
    return float(np.max(d))


def _f64(v):
    return np.asarray(v.value if isinstance(v, Val) else v, dtype=np.float64)


# ----------------------------------------------------------------------------- the generator


def _fmt_float(x: float) -> str:
    return repr(float(x))


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Generator:
    """Writes the programs of one group (see the module docstring)."""

    def __init__(self, seed: int, grad: bool = False):
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.grad = grad
        self.args: list[Val] = []
        self.env: dict = {}
        self.next_id = 0  # values are named p<program>_<id>
        self.program: Program | None = None
        self.pool: list[Val] = []

    # ------------------------------------------------------------------ random helpers
    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def weighted(self, table):
        names, weights = zip(*table)
        w = np.asarray(weights, dtype=float)
        return names[int(self.rng.choice(len(names), p=w / w.sum()))]

    def float_dtype(self):
        return F64 if self.grad or self.chance(0.5) else F32

    def small_float(self, lo=-2.0, hi=2.0) -> float:
        return round(float(self.rng.uniform(lo, hi)), 2)

    def random_shape(self, max_ndim=3):
        ndim = self.weighted([(0, 1), (1, 4), (2, 6), (3, 4)][:max_ndim + 1])
        return tuple(int(self.weighted([(1, 2), (2, 3), (3, 4), (4, 3), (5, 2)])) for _ in range(ndim))

    # ------------------------------------------------------------------ arguments
    def new_arg(self, shape, dtype, *, style="plain", index_size=None) -> Val:
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        if 0 in shape:
            raise Rejected("empty argument")
        if style == "index":
            n = int(index_size)
            data = self.rng.integers(-n, n, size=shape).astype(dtype)
            prefix = "i"
        elif dtype.kind == "f":
            lo, hi = {"plain": (-2.0, 2.0), "positive": (0.5, 2.0), "wide": (-5.0, 5.0)}[style]
            data = self.rng.uniform(lo, hi, size=shape).astype(dtype)
            prefix = "x"
        elif dtype.kind == "i":
            lo, hi = (1, 6) if style == "positive" else (-6, 7)
            data = self.rng.integers(lo, hi, size=shape).astype(dtype)
            prefix = "n"
        else:
            data = self.rng.random(size=shape) < 0.5
            prefix = "b"
        name = f"{prefix}{sum(1 for a in self.args if a.name[0] == prefix)}"
        v = Val(name, np.asarray(data, dtype=dtype), dep=self.grad and dtype.kind == "f")
        self._add_arg(v)
        return v

    def new_scalar_arg(self) -> Val:
        if self.chance(0.6):
            value = self.small_float()
            name = f"s{sum(1 for a in self.args if a.name[0] == 's')}"
        else:
            value = int(self.rng.integers(-4, 5))
            name = f"k{sum(1 for a in self.args if a.name[0] == 'k')}"
        v = Val(name, value, weak=True)
        self._add_arg(v)
        return v

    def _add_arg(self, v: Val):
        self.args.append(v)
        self.env[v.name] = v.value

    def arg_dtype(self):
        if self.grad:
            return self.weighted([(F64, 8), (I32, 1), (I64, 1), (BOOL, 1)])
        return self.weighted([(F32, 4), (F64, 4), (I32, 2), (I64, 2), (BOOL, 1)])

    def fresh_arg(self, shape=None, dtype=None, style=None) -> Val:
        dtype = np.dtype(dtype) if dtype is not None else self.arg_dtype()
        if style is None:
            style = self.weighted([("plain", 6), ("positive", 2), ("wide", 1)]) if dtype.kind == "f" else (
                "positive" if dtype.kind == "i" and self.chance(0.2) else "plain")
        return self.new_arg(self.random_shape() if shape is None else shape, dtype, style=style)

    # ------------------------------------------------------------------ emitting lines
    def emit(self, expr: str, operands, *, err, decision=None, int_bound=None, dep=None, allow_empty=False,
             statements=None) -> Val:
        """Evaluate ``expr`` (reading ``operands``), validate it, and add it as a new line.

        ``err(out)`` gives the new value's rounding-error bound; ``decision()`` returns
        ``(distance, margin)`` arrays that must satisfy ``distance > margin`` everywhere;
        ``int_bound`` bounds the magnitude of an integer result before it is computed.
        ``statements``: lines to run instead of ``name = expr``; ``{out}`` in them is the new name."""
        name = f"p{self.program.index}_{self.next_id}"
        if statements is None:
            lines = [f"{name} = {expr}"]
            value = _evaluate(expr, self.env)
        else:
            lines = [line.format(out=name) for line in statements]
            value = _execute(lines, self.env, name)
        if isinstance(value, (list, tuple)):
            raise Rejected("not an array")
        arr = np.asarray(value)
        if arr.dtype not in ALLOWED:
            raise Rejected(f"dtype {arr.dtype}")
        if arr.size > MAX_SIZE or arr.ndim > 4:
            raise Rejected("too big")
        if self.grad and arr.dtype == F32:
            raise Rejected("float32 in a gradient group")
        if arr.size == 0 and not allow_empty:
            raise Rejected("empty")
        if arr.dtype.kind in "iu":
            limit = min(MAX_INT, np.iinfo(arr.dtype).max // 4)
            bound = int_bound() if int_bound is not None else max([o.mag for o in operands] + [0.0])
            if bound > limit or (arr.size and np.max(np.abs(arr.astype(np.int64))) > limit):
                raise Rejected("integer range")
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or (arr.size and np.max(np.abs(arr)) > MAX_FLOAT):
                raise Rejected("float range")
        if decision is not None:
            distance, margin = decision()
            if np.size(distance) and not np.all(np.asarray(distance) > np.asarray(margin)):
                raise Rejected("too close to a discontinuity")
        self.next_id += 1
        out = Val(name, value)
        out.dep = any(o.dep for o in operands) if dep is None else dep
        out.err = float(err(out)) if arr.dtype.kind == "f" else 0.0
        if not math.isfinite(out.err):
            raise Rejected("error bound not finite")
        self.program.lines.extend(lines)
        self.env[name] = value
        for o in operands:
            o.uses += 1
            if o in self.args and o not in self.program.inputs:
                self.program.inputs.append(o)
        self.pool.append(out)
        return out

    def rounding(self, out: Val, times: float = 1.0) -> float:
        return EPS.get(out.dtype, 0.0) * out.mag * times

    def elementwise_err(self, expr, operands):
        """Rounding of the result, plus each operand's error times the largest partial derivative."""
        def err(out):
            total = self.rounding(out)
            for o in {id(o): o for o in operands}.values():
                if o.err > 0:
                    total += o.err * _numeric_partial(expr, self.env, o.name)
            return total
        return err

    def margin(self, scale, err_d, inexact):
        """The distance from a discontinuity a value needs (see the module docstring)."""
        if not inexact:
            return np.zeros_like(np.asarray(scale, dtype=float)) - 1.0  # exact values may sit on it
        return MARGIN_REL * np.asarray(scale) + MARGIN_ABS + 2e4 * err_d

    # ------------------------------------------------------------------ choosing operands
    def operand(self, pred=lambda v: True, fresh_shape=None, fresh_dtype=None) -> Val:
        """The latest value (usually), or another one that fits, or a fresh argument."""
        latest = [v for v in self.pool[-1:] if pred(v)]
        if latest and self.chance(0.6):
            return latest[0]
        candidates = [v for v in self.pool if pred(v)] + [
            a for a in self.args if not a.weak and pred(a) and not a.name.startswith("i")]
        if candidates and self.chance(0.8):
            return self.choice(candidates)
        for _ in range(20):
            v = self.fresh_arg(fresh_shape, fresh_dtype)
            if pred(v):
                return v
        raise Rejected("no operand")

    def partner_shape(self, shape):
        """A shape that broadcasts against ``shape`` (size-1 axes, fewer or extra leading axes)."""
        shape = list(shape)
        r = self.rng.random()
        if r < 0.35:
            return tuple(shape)
        if r < 0.6:
            return tuple(1 if self.chance(0.5) else d for d in shape)
        if r < 0.8 and shape:
            return tuple(shape[int(self.rng.integers(0, len(shape) + 1)):])
        extra = [int(self.rng.integers(1, 4))] if len(shape) < 4 else []
        return tuple(extra + [1 if self.chance(0.3) else d for d in shape])

    def broadcasts_with(self, shape):
        def pred(v):
            try:
                out = np.broadcast_shapes(shape, v.shape)
            except ValueError:
                return False
            return int(np.prod(out)) <= MAX_SIZE and len(out) <= 4
        return pred

    def scalar_operand(self, kind_hint) -> str:
        """A Python or NumPy scalar written in the source, or a Python-number argument."""
        r = self.rng.random()
        if r < 0.15:
            scalars = [a for a in self.args if a.weak]
            if scalars and self.chance(0.5):
                return self.choice(scalars).name
            return self.new_scalar_arg().name
        if r < 0.3:
            ctor = self.choice(["np.float32", "np.float64", "np.int32", "np.int64"] if not self.grad
                               else ["np.float64", "np.int32", "np.int64"])
            value = self.small_float() if "float" in ctor else int(self.rng.integers(-3, 4))
            return f"{ctor}({value!r})"
        if r < 0.4:
            return self.choice(["True", "False"])
        if r < 0.7 or kind_hint in "biu":
            return str(int(self.rng.integers(-3, 4)))
        return _fmt_float(self.small_float())

    # ------------------------------------------------------------------ domain helpers
    def positive(self, v: Val, low=0.05) -> Val:
        """``v`` if its values are >= low, else a line that makes them so."""
        if v.kind in "fiu" and v.size and float(np.min(v.f64)) >= low:
            return v
        if v.kind == "b":
            return self.emit(f"{v.name} + 0.5", [v], err=self.elementwise_err(f"{v.name} + 0.5", [v]))
        v = self.bounded(v)
        form = self.choice(["{v} * {v} + 0.5", "np.abs({v}) + 0.25", "np.exp({v} * 0.5)"])
        if v.kind in "iu" and "exp" not in form:
            form = "np.abs({v}) + 1"
        expr = form.format(v=v.name)
        return self.emit(expr, [v], err=self.elementwise_err(expr, [v]))

    def bounded(self, v: Val, limit=4.0) -> Val:
        """``v`` if |v| <= limit, else a squashed version."""
        if v.mag <= limit:
            return v
        expr = self.choice(["np.tanh({v})", "np.sin({v})"]).format(v=v.name) if v.kind == "f" or self.chance(0.5) \
            else f"{v.name} % 5"
        return self.emit(expr, [v], err=self.elementwise_err(expr, [v]),
                         decision=(self.mod_decision(v, 5) if "%" in expr else None))

    def nonzero(self, v: Val) -> Val:
        if v.kind in "iu":
            if v.size and np.all(v.arr != 0):
                return v
            expr = f"np.abs({v.name}) + 1"
            return self.emit(expr, [v], err=lambda out: 0.0)
        if v.kind == "f" and v.size and float(np.min(np.abs(v.f64))) >= 0.1:
            return v
        return self.positive(v, 0.1)

    def floaty(self, v: Val) -> Val:
        """A float version of ``v`` (bool and int values are cast)."""
        if v.kind == "f":
            return v
        dt = self.float_dtype()
        expr = f"{v.name}.astype(np.{dt.name})"
        return self.emit(expr, [v], err=lambda out: 0.0)

    # ------------------------------------------------------------------ decisions
    def cmp_decision(self, a_name, b_name, a_val, b_val, inexact):
        def decision():
            a, b = _f64(a_val), _f64(b_val)
            err_d = (a_val.err if isinstance(a_val, Val) else 0.0) + (b_val.err if isinstance(b_val, Val) else 0.0)
            return np.abs(a - b), self.margin(np.abs(a) + np.abs(b), err_d, inexact)
        return decision

    def int_boundary_decision(self, v: Val):
        def decision():
            x = v.f64
            return np.abs(x - np.round(x)), self.margin(np.abs(x) + 1, v.err, v.inexact)
        return decision

    def half_boundary_decision(self, v: Val, scale=1.0):
        """``rint(v * scale)`` jumps where ``v * scale`` crosses a half-integer."""
        def decision():
            x = v.f64 * scale
            return np.abs(x - np.floor(x) - 0.5), self.margin(np.abs(x) + 1, v.err * scale, v.inexact)
        return decision

    def zero_decision(self, v: Val):
        def decision():
            x = v.f64
            return np.abs(x), self.margin(np.ones_like(x), v.err, v.inexact)
        return decision

    def quotient_decision(self, a: Val, b):
        """``a // b`` and ``a % b`` jump where ``a / b`` crosses an integer."""
        def decision():
            x, y = a.f64, _f64(b)
            q = x / y
            b_err = b.err if isinstance(b, Val) else 0.0
            err_q = a.err / np.min(np.abs(y)) + b_err * np.max(np.abs(x)) / np.min(np.abs(y)) ** 2
            inexact = a.inexact or (isinstance(b, Val) and b.inexact)
            return np.abs(q - np.round(q)), self.margin(np.abs(q) + 1, err_q, inexact)
        return decision

    def mod_decision(self, v: Val, m):
        return self.quotient_decision(v, m)

    # ------------------------------------------------------------------ operations
    def op_unary(self, v: Val) -> Val:
        table = [
            ("exp", 3), ("log", 3), ("log1p", 1), ("expm1", 1), ("sqrt", 2), ("pow_half", 1), ("tanh", 3),
            ("sin", 2), ("cos", 2), ("tan", 1), ("sinh", 1), ("cosh", 1), ("exp2", 1), ("log2", 1),
            ("log10", 1), ("neg", 2), ("abs", 2), ("square", 2), ("pow", 2), ("reciprocal", 1),
            ("positive", 1), ("relu", 1), ("sigmoid", 1), ("clip", 2), ("floor", 1), ("ceil", 1),
            ("trunc", 1), ("sign", 1), ("isfinite", 1), ("not", 1),
            ("arcsin", 1), ("arccos", 1), ("arctan", 1), ("arctan2", 1), ("arcsinh", 1), ("arccosh", 1),
            ("arctanh", 1), ("copysign", 1), ("rint", 1), ("round", 1),
        ]
        op = self.weighted(table)
        n = v.name
        if op == "not":
            if v.kind != "b":
                return self.op_compare(v)
            expr = self.choice([f"~{n}", f"np.logical_not({n})", f"np.invert({n})"])
            return self.emit(expr, [v], err=lambda out: 0.0)
        if op in ("neg", "abs", "square", "positive", "sign") and v.kind in "iu":
            expr = {"neg": f"-{n}", "abs": self.choice([f"abs({n})", f"np.abs({n})", f"np.absolute({n})"]),
                    "square": self.choice([f"np.square({n})", f"{n} * {n}", f"{n} ** 2"]),
                    "positive": f"np.positive({n})", "sign": f"np.sign({n})"}[op]
            bound = {"square": lambda: v.mag ** 2}.get(op)
            return self.emit(expr, [v], err=lambda out: 0.0, int_bound=bound)
        if v.kind == "b" and op in ("neg", "abs", "square", "sign", "positive"):
            v = self.floaty(v) if self.chance(0.5) else self.emit(f"{n}.astype(np.int32)", [v], err=lambda o: 0.0)
            return self.op_unary(v)
        if v.kind == "b":
            v = self.floaty(v)
        decision = None
        if op in ("exp", "expm1", "exp2", "sinh", "cosh"):
            v = self.bounded(v, 4.0)
        elif op in ("log", "sqrt", "pow_half", "log2", "log10"):
            v = self.positive(v)
        elif op == "log1p":
            v = self.positive(v, -0.5) if not (v.size and np.min(v.f64) > -0.5) else v
        elif op in ("sin", "cos", "tan", "square", "pow"):
            v = self.bounded(v, 4.0 if op != "tan" else 1.2)
        elif op == "reciprocal":
            v = self.floaty(self.nonzero(v))
        elif op in ("floor", "ceil", "trunc", "sign"):
            v = self.floaty(v)
            decision = (self.zero_decision(v) if op == "sign" else self.int_boundary_decision(v))
        elif op in ("arcsin", "arccos", "arctanh"):
            v = self.bounded(self.floaty(v), 1.0)  # squashed into [-1, 1], then scaled inside the domain
        elif op == "arccosh":
            v = self.positive(v)
        elif op in ("rint", "round"):
            v = self.bounded(self.floaty(v))
        n = v.name
        if op in ("arcsin", "arccos", "arctanh"):
            expr = f"np.{op}({n} * 0.9)"
        elif op == "arccosh":
            expr = f"np.arccosh({n} + 1.0)"
        elif op == "arctan2":  # smooth: the cut along the negative x axis is never reached
            expr = self.choice([f"np.arctan2({n}, 0.75)", f"np.arctan2(0.75, {n})"])
        elif op == "copysign":
            sign = self.choice(["-1.5", "2.0"])
            expr = f"np.copysign({n}, {sign})"
        elif op in ("rint", "round"):
            decimals = 0 if op == "rint" else self.choice([0, 1, 2, -1])
            expr = f"np.rint({n})" if op == "rint" else self.choice([f"np.round({n}, {decimals})",
                                                                    f"np.around({n}, {decimals})"])
            decision = self.half_boundary_decision(v, 10.0 ** decimals)
        elif op == "pow":
            e = self.choice([2, 3, -1, 2.0, 1.5, -2])
            if isinstance(e, float) or e < 0:
                v = self.positive(v, 0.1)
                n = v.name
            expr = f"{n} ** {e}"
        elif op == "pow_half":
            expr = f"{n} ** 0.5"
        elif op == "clip":
            lo = self.small_float(-1.5, 0.0)
            hi = self.small_float(0.1, 1.5)
            expr = self.choice([f"np.clip({n}, {lo}, {hi})", f"{n}.clip({lo}, {hi})", f"np.clip({n}, None, {hi})"])
        elif op == "relu":
            expr = f"tj.nn.relu({n})"
        elif op == "sigmoid":
            expr = f"tj.nn.sigmoid({n})"
        elif op == "isfinite":
            expr = self.choice([f"np.isfinite({n})", f"np.isnan({n})", f"np.isinf({n})"])
            return self.emit(expr, [v], err=lambda out: 0.0, dep=False)
        else:
            fn = {"neg": "np.negative", "abs": "np.abs", "square": "np.square", "positive": "np.positive"}.get(op, f"np.{op}")
            expr = f"-{n}" if op == "neg" and self.chance(0.5) else f"{fn}({n})"
        dep = False if decision is not None else None
        err = (lambda out: 0.0) if decision is not None else self.elementwise_err(expr, [v])
        return self.emit(expr, [v], err=err, decision=decision, dep=dep)

    def op_binary(self, v: Val) -> Val:
        op = self.weighted([("+", 5), ("-", 4), ("*", 5), ("/", 3), ("//", 1), ("%", 1), ("**", 1),
                            ("maximum", 2), ("minimum", 2), ("where", 3), ("compare", 3), ("logical", 2),
                            ("fmod", 1)])
        if op == "compare":
            return self.op_compare(v)
        if op == "where":
            return self.op_where(v)
        if op == "logical":
            return self.op_logical(v)
        # the other operand: a value, a fresh argument, or a scalar
        use_scalar = self.chance(0.3)
        if use_scalar:
            other_src = self.scalar_operand(v.kind)
            other = _evaluate(other_src, self.env)
            other_val = next((a for a in self.args if a.name == other_src), None)
        else:
            other_val = self.operand(self.broadcasts_with(v.shape), fresh_shape=self.partner_shape(v.shape))
            other_src = other_val.name
            other = other_val.value
        a_val, b_val = v, other_val
        if op in ("/", "//", "%", "fmod"):
            if b_val is not None:
                b_val = self.nonzero(b_val)
                other_src, other = b_val.name, b_val.value
            elif np.any(np.asarray(other) == 0) or (op != "/" and isinstance(other, (bool, np.bool_))):
                other_src, other = "3", 3
        if op == "**":
            return self.op_power(v, b_val if not use_scalar else None)
        swap = self.chance(0.35) and op not in ("/", "//", "%", "fmod")
        names = [v.name, other_src]
        left, right = (names[::-1] if swap else names)
        operands = [v] + ([b_val] if b_val is not None else [])
        form = self.rng.random()
        ufunc = {"+": "np.add", "-": "np.subtract", "*": "np.multiply", "/": self.choice(["np.divide", "np.true_divide"]),
                 "//": "np.floor_divide", "%": self.choice(["np.remainder", "np.mod"]),
                 "maximum": "np.maximum", "minimum": "np.minimum", "fmod": "np.fmod"}[op]
        if op in ("maximum", "minimum", "fmod") or form < 0.25:
            expr = f"{ufunc}({left}, {right})"
        else:
            expr = f"{left} {op} {right}"
        mags = [v.mag, float(np.max(np.abs(_f64(other)))) if np.size(other) else 0.0]
        bound = {"+": lambda: mags[0] + mags[1], "-": lambda: mags[0] + mags[1], "*": lambda: mags[0] * mags[1],
                 "//": lambda: max(mags), "%": lambda: max(mags), "maximum": lambda: max(mags),
                 "minimum": lambda: max(mags), "/": lambda: max(mags), "fmod": lambda: max(mags)}[op]
        if op in ("//", "%", "fmod"):  # they jump where the quotient crosses an integer
            decision = self.quotient_decision(v, b_val if b_val is not None else other)
            err = (lambda out: 0.0) if op == "//" else self.elementwise_err(expr, operands)
            return self.emit(expr, operands, err=err, decision=decision, int_bound=bound,
                             dep=False if op == "//" else None)
        return self.emit(expr, operands, err=self.elementwise_err(expr, operands), int_bound=bound)

    def op_power(self, v: Val, exponent: Val | None) -> Val:
        if exponent is None or v.kind in "biu" or exponent.kind == "b":
            if v.kind in "iu":
                e = self.choice([0, 1, 2, 3])
                return self.emit(f"{v.name} ** {e}", [v], err=lambda out: 0.0, int_bound=lambda: v.mag ** e)
            base = self.positive(self.bounded(v, 3.0), 0.1)
            e = self.choice(["2", "3", "-1", "0.5", "1.5", "-0.5", "2.0"] + ([] if self.grad else ["np.float32(2.0)"]))
            expr = f"{base.name} ** {e}"
            return self.emit(expr, [base], err=self.elementwise_err(expr, [base]))
        base = self.positive(self.bounded(self.floaty(v), 3.0), 0.2)
        exp_ = self.bounded(exponent, 2.0)
        if not self.broadcasts_with(base.shape)(exp_):
            exp_ = base
        expr = self.choice([f"{base.name} ** {exp_.name}", f"np.power({base.name}, {exp_.name})"])
        return self.emit(expr, [base, exp_], err=self.elementwise_err(expr, [base, exp_]))

    def op_compare(self, v: Val) -> Val:
        if self.chance(0.3):
            other_src = self.scalar_operand(v.kind)
            other_val = next((a for a in self.args if a.name == other_src), None)
            other = other_val if other_val is not None else _evaluate(other_src, self.env)
        else:
            other_val = self.operand(self.broadcasts_with(v.shape), fresh_shape=self.partner_shape(v.shape),
                                     fresh_dtype=v.dtype if self.chance(0.5) else None)
            other_src, other = other_val.name, other_val
        sym, fn = self.choice([("<", "np.less"), ("<=", "np.less_equal"), (">", "np.greater"),
                               (">=", "np.greater_equal"), ("==", "np.equal"), ("!=", "np.not_equal")])
        left, right = (v.name, other_src) if self.chance(0.7) else (other_src, v.name)
        expr = f"{left} {sym} {right}" if self.chance(0.75) else f"{fn}({left}, {right})"
        operands = [v] + ([other_val] if other_val is not None else [])
        inexact = any(o.inexact for o in operands)
        return self.emit(expr, operands, err=lambda out: 0.0, dep=False,
                         decision=self.cmp_decision(v.name, other_src, v, other, inexact))

    def op_logical(self, v: Val) -> Val:
        if v.kind != "b":
            v = self.op_compare(v)
        other = self.operand(lambda w: w.kind == "b" and self.broadcasts_with(v.shape)(w),
                             fresh_shape=self.partner_shape(v.shape), fresh_dtype=BOOL)
        if other.kind != "b":
            other = self.op_compare(other)
        if not self.broadcasts_with(v.shape)(other):
            other = v
        sym, fn = self.choice([("&", "np.logical_and"), ("|", "np.logical_or"), ("^", "np.logical_xor")])
        expr = f"{v.name} {sym} {other.name}" if self.chance(0.5) else f"{fn}({v.name}, {other.name})"
        return self.emit(expr, [v, other], err=lambda out: 0.0, dep=False)

    def op_where(self, v: Val) -> Val:
        cond = self.operand(lambda w: w.kind == "b" and self.broadcasts_with(v.shape)(w))
        if cond.kind != "b" or not self.broadcasts_with(v.shape)(cond):
            cond = self.op_compare(v if self.chance(0.5) else self.operand(self.broadcasts_with(v.shape),
                                                                             fresh_shape=self.partner_shape(v.shape)))
            if not self.broadcasts_with(v.shape)(cond):
                raise Rejected("condition shape")
        if self.chance(0.3):
            other_src = self.scalar_operand(v.kind)
            other_val = next((a for a in self.args if a.name == other_src), None)
        else:
            other_val = self.operand(self.broadcasts_with(np.broadcast_shapes(v.shape, cond.shape)),
                                     fresh_shape=self.partner_shape(v.shape))
            other_src = other_val.name
        x, y = (v.name, other_src) if self.chance(0.5) else (other_src, v.name)
        expr = f"np.where({cond.name}, {x}, {y})"
        operands = [cond, v] + ([other_val] if other_val is not None else [])
        return self.emit(expr, operands, err=self.elementwise_err(expr, operands),
                         int_bound=lambda: max(o.mag for o in operands))

    def op_reduce(self, v: Val) -> Val:
        if v.ndim == 0:
            return self.op_unary(v)
        op = self.weighted([("sum", 5), ("mean", 3), ("max", 3), ("min", 2), ("var", 1), ("std", 1),
                            ("argmax", 1), ("argmin", 1), ("any", 1), ("all", 1), ("add.reduce", 1),
                            ("prod", 1), ("nansum", 1), ("nanmean", 1), ("nanmax", 1), ("nanmin", 1), ("ptp", 1),
                            ("cumsum", 1), ("cumprod", 1), ("diff", 1)])
        if op in ("cumsum", "cumprod", "diff"):
            return self.op_scan(v, op)
        nd = v.ndim
        r = self.rng.random()
        if op in ("argmax", "argmin", "add.reduce") or r < 0.55:
            axis = int(self.rng.integers(-nd, nd))
            axes, axis_src = (axis % nd,), str(axis)
        elif r < 0.75:
            axis, axes, axis_src = None, tuple(range(nd)), "None"
        else:
            k = int(self.rng.integers(1, nd + 1))
            axes = tuple(sorted(int(a) for a in self.rng.choice(nd, size=k, replace=False)))
            axis = tuple(a - nd if self.chance(0.3) else a for a in axes)
            axis_src = repr(axis)
        keep = self.chance(0.3)
        kw = f"axis={axis_src}" + (", keepdims=True" if keep else "")
        n_reduced = int(np.prod([v.shape[a] for a in axes])) if axes else 1
        if op in ("var", "std", "mean") and v.kind == "b":
            v = self.floaty(v)
        if op in ("var", "std") and v.kind in "iu" or op in ("nanmean", "ptp") and v.kind == "b":
            v = self.floaty(v)
        n = v.name
        style = self.rng.random()
        if op == "add.reduce":
            expr = f"np.add.reduce({n}, axis={axis_src})"
            op = "sum"
        elif op in ("any", "all"):
            expr = f"np.{op}({n}, {kw})" if style < 0.5 else f"{n}.{op}({kw})"
            operands = [v]
            decision = self.zero_decision(v) if v.kind == "f" else None
            return self.emit(expr, operands, err=lambda out: 0.0, dep=False, decision=decision)
        elif op in ("argmax", "argmin"):
            expr = f"np.{op}({n}, axis={axis_src}" + (", keepdims=True)" if keep else ")")
            return self.emit(expr, [v], err=lambda out: 0.0, dep=False, decision=self.arg_decision(v, axes[0], op))
        else:
            fn = {"max": self.choice(["max", "amax"]), "min": self.choice(["min", "amin"])}.get(op, op)
            has_method = op in ("sum", "mean", "max", "min", "var", "std", "prod")
            expr = f"np.{fn}({n}, {kw})" if style < 0.5 or not has_method else f"{n}.{op}({kw})"
        vm = v.mag
        # (the values hold no NaN: the NaN-ignoring reductions are the plain ones)
        op = {"nansum": "sum", "nanmean": "mean", "nanmax": "max", "nanmin": "min"}.get(op, op)
        growth = _product_bound(vm, n_reduced) if op == "prod" else 0.0

        def err(out):
            if op == "prod":
                return n_reduced * growth * v.err + EPS.get(out.dtype, 0) * n_reduced * growth
            if op == "ptp":
                return 2 * v.err + self.rounding(out)
            if op == "sum":
                return n_reduced * v.err + self.rounding(out) + EPS.get(out.dtype, 0) * n_reduced * vm
            if op == "mean":
                return v.err + self.rounding(out, 2) + EPS.get(out.dtype, 0) * vm * 2
            if op in ("max", "min"):
                return v.err
            spread = 2 * vm
            var_err = 2 * spread * v.err + EPS.get(out.dtype, 0) * (n_reduced + 4) * spread ** 2
            if op == "var":
                return var_err
            var = np.asarray(np.var(v.f64, axis=axis))
            return var_err / (2 * math.sqrt(float(np.min(var)))) + self.rounding(out, 2)

        decision = None
        if op == "std":
            def decision():
                var = np.asarray(np.var(v.f64, axis=axis))
                return var, np.full(var.shape, 1e-3)
        bound = {"sum": lambda: n_reduced * vm, "prod": lambda: growth, "ptp": lambda: 2 * vm}.get(op)
        return self.emit(expr, [v], err=err, decision=decision, int_bound=bound)

    def op_scan(self, v: Val, op: str) -> Val:
        """Running sums and products along an axis (or the flattened array), and differences."""
        n, nd, vm = v.name, v.ndim, v.mag
        axis = int(self.rng.integers(-nd, nd))
        if op == "diff":
            order = 1 if self.chance(0.7) else 2
            expr = f"np.diff({n}, axis={axis})" if order == 1 else f"np.diff({n}, n=2, axis={axis})"
            return self.emit(expr, [v], err=lambda out: 2 ** order * v.err + self.rounding(out),
                             int_bound=lambda: 2 ** order * vm)
        if self.chance(0.25):
            axis_src, length = "", v.size
        else:
            axis_src, length = f"axis={axis}", v.shape[axis]
        expr = f"np.{op}({n}{', ' if axis_src else ''}{axis_src})" if self.chance(0.5) else f"{n}.{op}({axis_src})"
        if op == "cumsum":
            return self.emit(expr, [v], err=lambda out: length * v.err + EPS.get(out.dtype, 0) * length * vm,
                             int_bound=lambda: length * vm)
        growth = _product_bound(vm, length)
        return self.emit(expr, [v], err=lambda out: length * growth * v.err + EPS.get(out.dtype, 0) * length * growth,
                         int_bound=lambda: growth)

    def arg_decision(self, v: Val, axis: int, op: str):
        def decision():
            if not v.inexact:
                return np.ones(1), np.zeros(1)
            x = np.moveaxis(v.f64, axis, -1)
            x = -x if op == "argmin" else x
            s = np.sort(x, axis=-1)
            if s.shape[-1] < 2:
                return np.ones(1), np.zeros(1)
            gap = s[..., -1] - s[..., -2]
            return gap, self.margin(np.abs(s[..., -1]) + 1, 2 * v.err, True)
        return decision

    def op_shape(self, v: Val) -> Val:
        n = v.name
        op = self.weighted([("reshape", 4), ("transpose", 3), ("swapaxes", 1), ("moveaxis", 1), ("expand", 2),
                            ("newaxis", 2), ("squeeze", 1), ("broadcast_to", 2), ("ravel", 1), ("flip", 1),
                            ("roll", 1), ("triangle", 1), ("sort", 0 if self.grad else 1)])
        shape = v.shape
        if op == "reshape":
            new = self.reshape_target(shape)
            if -1 not in new and self.chance(0.4) and new:
                new = list(new)
                new[int(self.rng.integers(len(new)))] = -1
                new = tuple(new)
            expr = self.choice([f"{n}.reshape({_fmt_shape(new)})", f"np.reshape({n}, {_fmt_shape(new)})",
                                f"{n}.reshape{_fmt_shape(new)}" if len(new) > 1 else f"{n}.reshape({_fmt_shape(new)})"])
        elif op == "transpose" and v.ndim >= 2:
            perm = tuple(int(p) for p in self.rng.permutation(v.ndim))
            expr = self.choice([f"{n}.T", f"np.transpose({n})", f"np.transpose({n}, {perm})", f"{n}.transpose{perm}"])
        elif op == "swapaxes" and v.ndim >= 2:
            i, j = (int(a) for a in self.rng.choice(v.ndim, 2, replace=False))
            expr = self.choice([f"np.swapaxes({n}, {i}, {j - v.ndim})", f"{n}.swapaxes({i}, {j})"])
        elif op == "moveaxis" and v.ndim >= 2:
            i, j = (int(a) for a in self.rng.integers(-v.ndim, v.ndim, 2))
            expr = f"np.moveaxis({n}, {i}, {j})"
        elif op == "expand" and v.ndim < 4:
            a = int(self.rng.integers(-v.ndim - 1, v.ndim + 1))
            expr = f"np.expand_dims({n}, {a})"
        elif op == "newaxis" and v.ndim < 4:
            k = int(self.rng.integers(0, v.ndim + 1))
            parts = [":"] * k + [self.choice(["None", "np.newaxis"])]
            expr = f"{n}[{', '.join(parts)}]" if k < v.ndim or self.chance(0.5) else f"{n}[..., None]"
        elif op == "squeeze" and 1 in shape:
            ones = [i for i, d in enumerate(shape) if d == 1]
            expr = self.choice([f"np.squeeze({n})", f"{n}.squeeze({self.choice(ones)})",
                                f"np.squeeze({n}, axis={self.choice(ones) - v.ndim})"])
        elif op == "broadcast_to":
            target = tuple(self.rng.integers(2, 4) if d == 1 and self.chance(0.7) else d for d in shape)
            if len(target) < 4 and self.chance(0.5):
                target = (int(self.rng.integers(1, 4)),) + target
            expr = f"np.broadcast_to({n}, {_fmt_shape(target)})"
        elif op == "ravel":
            expr = self.choice([f"{n}.ravel()", f"np.ravel({n})", f"{n}.flatten()", f"{n}.reshape(-1)"])
        elif op == "flip" and v.ndim >= 1:
            a = int(self.rng.integers(-v.ndim, v.ndim))
            expr = self.choice([f"np.flip({n})", f"np.flip({n}, {a})", f"np.flipud({n})"])
        elif op == "roll" and v.ndim >= 1:
            shift, a = int(self.rng.integers(-4, 5)), int(self.rng.integers(-v.ndim, v.ndim))
            expr = self.choice([f"np.roll({n}, {shift})", f"np.roll({n}, {shift}, axis={a})"])
        elif op == "triangle" and v.ndim >= 2:
            k = int(self.rng.integers(-2, 3))
            expr = self.choice([f"np.tril({n}, {k})", f"np.triu({n}, {k})", f"np.tril({n})"])
        elif op == "sort" and v.ndim >= 1 and v.kind in "fi":  # values only: a gradient at ties is not unique
            a = int(self.rng.integers(-v.ndim, v.ndim))
            expr = self.choice([f"np.sort({n}, axis={a})", f"np.sort({n})", f"np.sort({n}, axis=None)"])
        else:
            return self.op_index(v)
        return self.emit(expr, [v], err=lambda out: v.err)

    def reshape_target(self, shape):
        size = int(np.prod(shape))
        factors = []
        rest = size
        for p in (2, 3, 5, 7, 11, 13):
            while rest % p == 0:
                factors.append(p)
                rest //= p
        if rest > 1:
            factors.append(rest)
        self.rng.shuffle(factors)
        ndim = int(self.rng.integers(1, 4))
        dims = [1] * ndim
        for f in factors:
            dims[int(self.rng.integers(ndim))] *= f
        if self.chance(0.2) and ndim < 4:
            dims.insert(int(self.rng.integers(ndim + 1)), 1)
        return tuple(dims)

    def basic_index(self, shape):
        parts = []
        for d in shape:
            r = self.rng.random()
            if r < 0.25:
                parts.append(":")
            elif r < 0.45:
                parts.append(str(int(self.rng.integers(-d, d))))
            else:
                step = self.choice([1, 1, 2, -1, -2, 3])
                start = self.choice([None, int(self.rng.integers(-d, d + 1))])
                stop = self.choice([None, int(self.rng.integers(-d - 1, d + 1))])
                s = f"{'' if start is None else start}:{'' if stop is None else stop}"
                parts.append(s + (f":{step}" if step != 1 else ""))
        if self.chance(0.15):
            parts.insert(int(self.rng.integers(len(parts) + 1)), "None")
        while parts and parts[-1] == ":" and self.chance(0.5):
            parts.pop()
        if parts and parts[0] == ":" and self.chance(0.4):
            parts[0] = "..."
        return ", ".join(parts) if parts else "..."

    def index_arg(self, shape, n):
        dtype = self.choice([I32, I64, I64])
        return self.new_arg(shape, dtype, style="index", index_size=n)

    def const_index(self, n, length):
        vals = [int(self.rng.integers(-n, n)) for _ in range(length)]
        return "[" + ", ".join(map(str, vals)) + "]"

    def op_index(self, v: Val) -> Val:
        if v.ndim == 0:
            return self.op_shape_of_scalar(v)
        n = v.name
        op = self.weighted([("basic", 5), ("int_const", 2), ("int_traced", 2), ("two_arrays", 1), ("take", 2),
                            ("take_along", 2), ("mask", 1)])
        shape = v.shape
        k = int(self.rng.integers(v.ndim))
        if op == "basic":
            expr = f"{n}[{self.basic_index(shape)}]"
        elif op == "int_const":
            idx = self.const_index(shape[k], int(self.rng.integers(1, 5)))
            if self.chance(0.3):
                idx = f"np.array({idx})"
            expr = f"{n}[{', '.join([':'] * k + [idx])}]"
        elif op == "int_traced":
            ishape = self.choice([(int(self.rng.integers(1, 5)),), (2, int(self.rng.integers(1, 4))), ()])
            i = self.index_arg(ishape, shape[k])
            rest = [":"] * k + [i.name]
            if k + 1 < v.ndim and self.chance(0.4):
                rest.append(self.choice(["1:", "::-1", ":2", "0"]))
            expr = f"{n}[{', '.join(rest)}]"
            return self.emit(expr, [v, i], err=lambda out: v.err)
        elif op == "two_arrays" and v.ndim >= 2:
            k2 = int(self.rng.integers(v.ndim))
            if k2 == k:
                k2 = (k + 1) % v.ndim
            length = int(self.rng.integers(1, 4))
            i = self.index_arg((length,), shape[k])
            j = self.const_index(shape[k2], length if self.chance(0.7) else 1)
            parts = [":"] * v.ndim
            parts[k], parts[k2] = i.name, j
            while parts[-1] == ":":
                parts.pop()
            expr = f"{n}[{', '.join(parts)}]"
            return self.emit(expr, [v, i], err=lambda out: v.err)
        elif op == "take":
            ishape = self.choice([(int(self.rng.integers(1, 5)),), (2, 2), ()])
            if self.chance(0.25):
                i = self.index_arg(ishape, v.size)
                expr = f"np.take({n}, {i.name})"
            else:
                i = self.index_arg(ishape, shape[k])
                axis = k - v.ndim if self.chance(0.4) else k
                expr = self.choice([f"np.take({n}, {i.name}, axis={axis})", f"{n}.take({i.name}, axis={axis})"])
            return self.emit(expr, [v, i], err=lambda out: v.err)
        elif op == "take_along":
            ishape = tuple(d if j != k else int(self.rng.integers(1, 4)) for j, d in enumerate(shape))
            ishape = tuple(1 if (j != k and self.chance(0.2)) else d for j, d in enumerate(ishape))
            i = self.index_arg(ishape, shape[k])
            axis = k - v.ndim if self.chance(0.4) else k
            expr = f"np.take_along_axis({n}, {i.name}, axis={axis})"
            return self.emit(expr, [v, i], err=lambda out: v.err)
        elif op == "mask":
            mask = [bool(b) for b in self.rng.random(shape[0]) < 0.6]
            if not any(mask):
                mask[0] = True
            expr = f"{n}[np.array({mask})]"
        else:
            expr = f"{n}[{self.basic_index(shape)}]"
        return self.emit(expr, [v], err=lambda out: v.err)

    def op_setitem(self, v: Val) -> Val:
        """``t = v.copy(); t[index] = w`` (or ``+= w``): basic, integer-array (constant or
        traced, repeats included: the last write wins) and boolean-mask indices."""
        if v.ndim == 0:
            return self.op_index(v)
        shape, nd = v.shape, v.ndim
        kind = self.weighted([("basic", 3), ("int_const", 2), ("int_traced", 2), ("mask_const", 1),
                              ("mask_traced", 1)])
        k = int(self.rng.integers(nd))
        operands = [v]
        if kind == "basic":
            index = self.basic_index(shape)
        elif kind == "int_const":
            index = ", ".join([":"] * k + [self.const_index(shape[k], int(self.rng.integers(1, 5)))])
        elif kind == "int_traced":
            i = self.index_arg((int(self.rng.integers(1, 5)),), shape[k])
            operands.append(i)
            index = ", ".join([":"] * k + [i.name])
        elif kind == "mask_const":
            mask = [bool(b) for b in self.rng.random(shape[0]) < 0.5]
            index = f"np.array({mask})"
        else:
            cond = self.op_compare(v)
            if cond.shape != shape:
                raise Rejected("mask shape")
            operands.append(cond)
            index = cond.name
        target = np.shape(_evaluate(f"{v.name}[{index}]", self.env))
        if 0 in target:
            raise Rejected("assignment to nothing")
        augmented = kind != "mask_traced" and v.kind != "b" and self.chance(0.3)
        if kind == "mask_traced" or self.chance(0.3):
            value_src, w = self.scalar_operand(v.kind) if v.kind != "b" else self.choice(["True", "False"]), None
            w = next((a for a in self.args if a.name == value_src), None)
            if w is not None:
                operands.append(w)
        else:
            shape_w = tuple(1 if self.chance(0.3) else d for d in target)
            if shape_w and self.chance(0.3):
                shape_w = shape_w[int(self.rng.integers(len(shape_w) + 1)):]
            w = self.operand(lambda u: np.can_cast(u.dtype, v.dtype, "same_kind") and
                             self.broadcasts_to(u.shape, target), fresh_shape=shape_w, fresh_dtype=v.dtype)
            if not (np.can_cast(w.dtype, v.dtype, "same_kind") and self.broadcasts_to(w.shape, target)):
                raise Rejected("value does not fit")
            value_src = w.name
            operands.append(w)
        op = "+=" if augmented else "="
        statements = ["{out} = " + f"{v.name}.copy()", "{out}" + f"[{index}] {op} {value_src}"]
        w_val = operands[-1] if len(operands) > 1 and operands[-1] is not v else None
        w_err = w_val.err if isinstance(w_val, Val) and w_val.kind == "f" else 0.0
        w_mag = w_val.mag if isinstance(w_val, Val) else 4.0

        def err(out):
            if augmented:
                return v.err + w_err + self.rounding(out)
            return max(v.err, w_err) + self.rounding(out)
        return self.emit("", operands, err=err, statements=statements, int_bound=lambda: v.mag + w_mag)

    @staticmethod
    def broadcasts_to(shape, target) -> bool:
        if len(shape) > len(target):
            return False
        return all(d in (1, t) for d, t in zip(shape[::-1], tuple(target)[::-1]))

    def op_shape_of_scalar(self, v: Val) -> Val:
        expr = self.choice([f"{v.name}.reshape(1, 1)", f"np.broadcast_to({v.name}, (2, 3))",
                            f"np.expand_dims({v.name}, 0)", f"{v.name}[None]"])
        return self.emit(expr, [v], err=lambda out: v.err)

    def op_join(self, v: Val) -> Val:
        if v.ndim == 0:
            return self.op_shape_of_scalar(v)
        op = self.weighted([("concatenate", 3), ("stack", 2), ("hstack", 1), ("vstack", 1)])
        k = int(self.rng.integers(v.ndim))
        count = self.choice([2, 2, 3])
        parts = [v]
        for _ in range(count - 1):
            if op == "concatenate":
                shape = tuple(int(self.rng.integers(1, 4)) if j == k else d for j, d in enumerate(v.shape))
                pred = lambda w, s=shape: w.ndim == v.ndim and all(  # noqa: E731
                    a == b for j, (a, b) in enumerate(zip(w.shape, v.shape)) if j != k)
            else:
                shape = v.shape
                pred = lambda w: w.shape == v.shape  # noqa: E731
            parts.append(self.operand(pred, fresh_shape=shape))
        names = ", ".join(p.name for p in parts)
        seq = f"[{names}]" if self.chance(0.7) else f"({names},)"
        if op == "concatenate":
            expr = f"np.concatenate({seq}, axis={k - v.ndim if self.chance(0.3) else k})"
        elif op == "stack":
            a = int(self.rng.integers(-v.ndim - 1, v.ndim + 1))
            expr = f"np.stack({seq}, axis={a})"
        elif op == "hstack":
            expr = f"np.hstack({seq})"
        else:
            expr = f"np.vstack({seq})"
        return self.emit(expr, parts, err=lambda out: max(p.err for p in parts))

    def op_matmul(self, v: Val) -> Val:
        if v.kind == "b" and self.chance(0.7):
            v = self.floaty(v)
        v = self.bounded(v, 4.0)
        n = v.name
        op = self.weighted([("@", 4), ("matmul", 1), ("dot", 2), ("inner", 1), ("outer", 1), ("vdot", 1),
                            ("einsum", 2), ("tensordot", 1)])
        m = int(self.rng.integers(1, 5))
        if v.ndim == 0 and op != "outer":
            op = "dot"
        if op == "dot" and v.ndim > 2:
            op = "@"
        if op == "outer":
            other = self.operand(lambda w: 1 <= w.size <= 12, fresh_shape=(m,))
            expr, kdim = f"np.outer({n}, {other.name})", 1
        elif op == "vdot":
            other = self.operand(lambda w: w.size == v.size, fresh_shape=v.shape)
            expr, kdim = f"np.vdot({n}, {other.name})", v.size
        elif op == "dot" and v.ndim == 0:
            other = self.operand(lambda w: w.ndim <= 2, fresh_shape=(m,))
            expr, kdim = f"np.dot({n}, {other.name})", 1
        elif op == "inner":
            kdim = v.shape[-1]
            other = self.operand(lambda w: w.ndim in (1, 2) and w.shape[-1] == kdim,
                                 fresh_shape=self.choice([(kdim,), (m, kdim)]))
            expr = f"np.inner({n}, {other.name})"
        else:
            kdim = v.shape[-1]
            shapes = {1: [(kdim,), (kdim, m), (2, kdim, m)], 2: [(kdim,), (kdim, m), (2, kdim, m)],
                      3: [(kdim, m), v.shape[:1] + (kdim, m), (1, kdim, m)]}.get(v.ndim, [(kdim, m)])
            if op == "dot":
                shapes = [s for s in shapes if len(s) <= 2]
            oshape = self.choice(shapes)
            other = self.operand(lambda w: w.shape == oshape, fresh_shape=oshape)
            if op == "@":
                both_2d = v.ndim == 2 and other.ndim == 2
                expr = f"{other.name}.T @ {n}.T" if both_2d and self.chance(0.2) else f"{n} @ {other.name}"
            elif op == "matmul":
                expr = f"np.matmul({n}, {other.name})"
            elif op in ("einsum", "tensordot"):
                expr = self.contraction_src(op, v, other)
            else:
                expr = self.choice([f"np.dot({n}, {other.name})", f"{n}.dot({other.name})"])

        def err(out):
            return kdim * (v.err * other.mag + other.err * v.mag) + EPS.get(out.dtype, 0) * kdim * v.mag * other.mag \
                + self.rounding(out)
        return self.emit(expr, [v, other], err=err, int_bound=lambda: kdim * v.mag * other.mag)

    def contraction_src(self, op, v: Val, other: Val) -> str:
        """``v @ other`` spelled with einsum (explicit or implicit output) or tensordot."""
        a = "abc"[3 - v.ndim:-1] + "k"  # v's labels: its last axis is contracted
        if other.ndim == 1:
            b, out = "k", a[:-1]
        elif other.ndim == 2:
            b, out = "km", a[:-1] + "m"
        elif v.ndim == 3:  # (batch, k, m) against v's batch axis (of the same size, or 1)
            b, out = a[0] + "km", a[:-1] + "m"
        else:  # (batch, k, m) against a matrix or vector: matmul repeats v over the batch
            b, out = "zkm", "z" + a[:-1] + "m"
        if op == "tensordot" and other.ndim <= 2:
            return f"np.tensordot({v.name}, {other.name}, axes=1)"
        if self.chance(0.3) and other.ndim <= 2:
            return f"np.einsum('...k,{b}', {v.name}, {other.name})" if other.ndim == 1 \
                else f"np.einsum('...k,{b}->...m', {v.name}, {other.name})"
        return f"np.einsum('{a},{b}->{out}', {v.name}, {other.name})"

    def op_cast(self, v: Val) -> Val:
        targets = [F64, I32, I64, BOOL] + ([] if self.grad else [F32, F32])
        t = self.choice(targets)
        spell = self.choice([f"np.{t.name}" if t != BOOL else "bool", f"'{t.name}'" if t != BOOL else "np.bool_"])
        # (np.asarray of a traced value is a concretization error by contract: not drawn)
        expr = f"{v.name}.astype({spell})"
        decision = None
        if v.kind == "f" and t.kind == "i":
            decision = self.int_boundary_decision(v)
        elif v.kind == "f" and t == BOOL:
            decision = self.zero_decision(v)
        if t.kind != "f" or decision is not None:
            return self.emit(expr, [v], err=lambda out: 0.0, decision=decision,
                             dep=False if v.kind == "f" else None)
        return self.emit(expr, [v], err=lambda out: v.err + self.rounding(out))

    def op_nn(self, v: Val) -> Val:
        v = self.floaty(v)
        if v.ndim == 0:
            return self.op_unary(v)
        axis = int(self.rng.integers(-v.ndim, v.ndim))
        fn = self.choice(["softmax", "log_softmax", "logsumexp"])
        expr = f"tj.nn.{fn}({v.name}, axis={axis})"
        n_ax = v.shape[axis]

        def err(out):
            base = (2 if fn == "softmax" else 1) * v.err + EPS.get(out.dtype, 0) * (n_ax + 6) * max(out.mag, 1.0)
            return base + (v.err + EPS.get(out.dtype, 0) * v.mag * 2 if fn == "log_softmax" else 0.0)
        return self.emit(expr, [v], err=err)

    # ------------------------------------------------------------------ np.linalg and np.fft
    # The matrices are built to be well conditioned: M + c * I with |M| <= 1 and c = 2n + 1 is
    # diagonally dominant (singular values in [n + 1, 3n + 1]), and M @ M.T + c * I is
    # symmetric positive definite. Each result's error bound is the rounding of a backward-stable
    # algorithm, ``eps * n * cond`` relative to the result, plus the inputs' errors carried
    # through the derivative's norm (for x = solve(A, b): ``|A^-1| (|db| + |dA| |x|)``). The
    # condition numbers are measured on the data. A float32 matrix is solved in float32 by
    # tracejit and in float64 by NumPy: the float32 bound covers both.

    def square_operand(self, v: Val) -> Val:
        """A float matrix (or a batch of them) with |values| <= 1: ``v`` if it is square."""
        square = lambda w: w.kind != "b" and 2 <= w.ndim <= 3 and w.shape[-1] == w.shape[-2] and w.shape[-1] <= 4
        if not square(v):
            n = int(self.rng.integers(1, 5))
            v = self.operand(square, fresh_shape=self.choice([(n, n), (n, n), (2, n, n)]), fresh_dtype=self.float_dtype())
        return self.bounded(self.floaty(v), 1.0)

    @staticmethod
    def _singular_values(a):
        return np.linalg.svd(np.asarray(a, dtype=np.float64), compute_uv=False)

    def _inverse_norm_and_cond(self, a):
        s = self._singular_values(a)
        return 1.0 / float(np.min(s)), float(np.max(s) / np.min(s))

    def op_linalg(self, v: Val) -> Val:
        m = self.square_operand(v)
        n = m.shape[-1]
        eye = f"np.eye({n}, dtype={m.name}.dtype)"
        op = self.weighted([("solve", 3), ("inv", 2), ("det", 2), ("slogdet", 2), ("cholesky", 2), ("eigvalsh", 1),
                            ("norm", 3)])
        if op == "norm":
            return self.op_norm(m)
        if op in ("cholesky", "eigvalsh"):
            # symmetric positive definite: the product's rounding is an error of the matrix
            product = f"{m.name} @ np.swapaxes({m.name}, -1, -2)" if m.ndim == 3 else f"{m.name} @ {m.name}.T"
            if self.chance(0.3):
                product = f"np.swapaxes({m.name}, -1, -2) @ {m.name}" if m.ndim == 3 else f"{m.name}.T @ {m.name}"
            matrix_src, c = f"{product} + {n + 1}.0 * {eye}", n + 1.0
            a = np.einsum("...ij,...kj->...ik", m.f64, m.f64) + c * np.eye(n)
            a_err = 2 * n * m.err + EPS.get(m.dtype) * (n + 2) * (n + c)
        else:
            c = (2.0 * n + 1) * self.choice([1.0, 1.0, -1.0])
            matrix_src = f"{m.name} + {c!r} * {eye}"
            a = m.f64 + c * np.eye(n)
            a_err = m.err + EPS.get(m.dtype) * (abs(c) + 1)
        inv_norm, cond = self._inverse_norm_and_cond(a)
        spread = a_err * n  # the 2-norm of the matrix's error, from its elements' bound
        rounding = lambda out: 4 * n * EPS.get(out.dtype, 0.0) * cond * (out.mag + 1.0) + self.rounding(out)
        if op == "solve":
            b = self.operand(lambda w: w.kind != "b" and (w.shape in ((n,), (n, 1), (n, 2)) or (
                m.ndim == 3 and w.shape in (m.shape[:1] + (n, 1), m.shape[:1] + (n, 2)))),
                fresh_shape=self.choice([(n,), (n, 2)]), fresh_dtype=m.dtype)
            b = self.bounded(self.floaty(b), 4.0)
            expr = f"np.linalg.solve({matrix_src}, {b.name})"
            err = lambda out: inv_norm * math.sqrt(n) * (b.err + spread * out.mag) + rounding(out)
            return self.emit(expr, [m, b], err=err)
        if op == "inv":
            expr = f"np.linalg.inv({matrix_src})"
            return self.emit(expr, [m], err=lambda out: inv_norm * math.sqrt(n) * spread * out.mag + rounding(out))
        if op == "eigvalsh":
            # Weyl: each eigenvalue moves at most by the 2-norm of the matrix's error; the
            # gradient needs them apart
            expr = f"np.linalg.eigvalsh({matrix_src})"
            decision = None
            if self.grad and n > 1:
                def decision():
                    gaps = np.diff(np.linalg.eigvalsh(a), axis=-1)
                    return gaps, self.margin(np.abs(gaps) + 1, 2 * spread, True)
            return self.emit(expr, [m], err=lambda out: spread + rounding(out), decision=decision)
        if op == "cholesky":
            upper = self.chance(0.3)
            expr = f"np.linalg.cholesky({matrix_src}{', upper=True' if upper else ''})"
            # dL = L phi(L^-1 dA L^-T): at most |L| |L^-1|^2 |dA|
            s = self._singular_values(a)
            carry = math.sqrt(float(np.max(s))) / float(np.min(s))
            return self.emit(expr, [m], err=lambda out: 2 * carry * spread + rounding(out))
        # det and slogdet: d log|det| = tr(A^-1 dA)
        log_err = inv_norm * n * spread
        if op == "det":
            expr = f"np.linalg.det({matrix_src})"
            return self.emit(expr, [m], err=lambda out: out.mag * (2 * log_err + 4 * n * EPS.get(out.dtype, 0.0) * cond)
                             + self.rounding(out))
        part = self.choice(["[1]", ".logabsdet", "[0]", ".sign"])
        expr = f"np.linalg.slogdet({matrix_src}){part}"
        if part in ("[0]", ".sign"):  # +-1, far from a sign change: exact in every mode, no gradient
            return self.emit(expr, [m], err=lambda out: 0.0, dep=False)
        return self.emit(expr, [m], err=lambda out: log_err + 4 * n * EPS.get(out.dtype, 0.0) * cond + self.rounding(out))

    def op_norm(self, m: Val) -> Val:
        """Vector and matrix norms of a matrix (or its rows), smooth ones only in gradient groups."""
        n = m.name
        size = m.size
        if self.grad:
            form = self.choice([(f"np.linalg.norm({n})", None), (f"np.linalg.norm({n}, axis=-1)", -1),
                                (f"np.linalg.norm({n}, 'fro', axis=(-2, -1))", (-2, -1)),
                                (f"np.linalg.norm({n}, axis=0, keepdims=True)", 0)])
        else:
            form = self.choice([(f"np.linalg.norm({n})", None), (f"np.linalg.norm({n}, 1, axis=-1)", -1),
                                (f"np.linalg.norm({n}, np.inf, axis=(-2, -1))", (-2, -1)),
                                (f"np.linalg.norm({n}, 2, axis=(-2, -1))", (-2, -1)),
                                (f"np.linalg.norm({n}, 'nuc', axis=(-1, -2))", (-1, -2)),
                                (f"np.linalg.norm({n}, -np.inf, axis=-1, keepdims=True)", -1),
                                (f"np.linalg.norm({n}, 3, axis=0)", 0)])
        expr, axis = form
        decision = None
        if self.grad:  # the norm's gradient is x / |x|: away from 0
            def decision():
                norms = np.asarray(np.linalg.norm(m.f64, axis=axis))
                return norms, self.margin(np.ones_like(norms), 2 * size * m.err, True)
        return self.emit(expr, [m], err=lambda out: size * m.err + 4 * size * EPS.get(out.dtype, 0.0) * (out.mag + 1.0),
                         decision=decision)

    def op_fft(self, v: Val) -> Val:
        """Round trips and real views of the discrete Fourier transform along one axis."""
        v = self.bounded(self.floaty(v), 4.0)
        if v.ndim == 0:
            return self.op_unary(v)
        axis = int(self.rng.integers(-v.ndim, v.ndim))
        length = v.shape[axis]
        n = v.name
        form = self.weighted([("irfft(rfft)", 3), ("ifft(fft).real", 2), ("rfft.real", 2), ("fft.imag", 1),
                              ("abs(rfft)", 1), ("irfft(rfft * 2)", 1), ("ortho", 1)])
        expr = {
            "irfft(rfft)": f"np.fft.irfft(np.fft.rfft({n}, axis={axis}), n={length}, axis={axis})",
            "ifft(fft).real": f"np.fft.ifft(np.fft.fft({n}, axis={axis}), axis={axis}).real",
            "rfft.real": f"np.fft.rfft({n}, axis={axis}).real",
            "fft.imag": f"np.fft.fft({n}, axis={axis}).imag",
            "abs(rfft)": f"np.abs(np.fft.rfft({n}, axis={axis}))",
            "irfft(rfft * 2)": f"np.fft.irfft(np.fft.rfft({n}, axis={axis}) * 2.0, n={length}, axis={axis})",
            "ortho": f"np.fft.ifft(np.fft.fft({n}, axis={axis}, norm='ortho') * 0.5, axis={axis}, norm='ortho').real",
        }[form]
        # |dF| <= length |dv|; each butterfly level rounds by eps |F|
        gain = 1.0 if form in ("irfft(rfft)", "ifft(fft).real", "irfft(rfft * 2)", "ortho") else float(length)
        levels = math.log2(length) + 2

        def err(out):
            return gain * 2 * v.err + 4 * levels * EPS.get(out.dtype, 0.0) * length * (v.mag + out.mag) + self.rounding(out)
        decision = None
        if form == "abs(rfft)" and self.grad:  # |z| has a kink at 0
            def decision():
                spectrum = np.abs(np.fft.rfft(v.f64, axis=axis))
                return spectrum, self.margin(spectrum + 1, length * v.err + levels * 1e-15 * length * v.mag, True)
        return self.emit(expr, [v], err=err, decision=decision)

    # ------------------------------------------------------------------ programs
    OPS = [("unary", 7), ("binary", 8), ("reduce", 4), ("shape", 3), ("index", 4), ("join", 2), ("matmul", 2),
           ("cast", 2), ("nn", 1), ("setitem", 2),
           ("linalg", 0.5), ("fft", 0.5)]

    def step(self, v: Val) -> Val:
        op = self.weighted(self.OPS)
        return getattr(self, f"op_{op}")(v)

    def make_program(self, index: int, n_ops: int) -> Program:
        self.program = Program(index)
        self.pool = []
        start = None
        for _ in range(50):
            mark = len(self.args)
            try:
                if self.grad:  # gradient programs start from a differentiated (float64) value
                    start = self.operand(lambda w: w.dtype == F64 and w.dep, fresh_dtype=F64)
                else:
                    start = self.operand(lambda w: w.kind != "b" or self.chance(0.3))
                break
            except Rejected:
                del self.args[mark:]
        if start is None:
            raise RuntimeError("no start value")
        current = start
        done = 0
        attempts = 0
        while done < n_ops and attempts < 40 * n_ops:
            attempts += 1
            mark_lines, mark_pool, mark_args = len(self.program.lines), len(self.pool), len(self.args)
            uses = {id(v): v.uses for v in self.pool + self.args}
            inputs = list(self.program.inputs)
            try:
                current = self.step(current if self.chance(0.8) else self.choice(self.pool or [current]))
                done += 1
            except Rejected:
                # undo everything the failed attempt added (domain-helper lines included)
                for line in self.program.lines[mark_lines:]:
                    self.env.pop(line.split(" = ", 1)[0].split("[", 1)[0], None)
                del self.program.lines[mark_lines:]
                del self.pool[mark_pool:]
                for a in self.args[mark_args:]:
                    self.env.pop(a.name, None)
                del self.args[mark_args:]
                for v in self.pool + self.args:
                    v.uses = uses.get(id(v), 0)
                self.program.inputs = inputs
        if not self.pool:  # nothing succeeded: the program is a copy of its start value
            self.step_identity(start)
        outs = [v for v in self.pool if v.uses == 0]
        if self.pool[-1] not in outs:
            outs.append(self.pool[-1])
        self.program.outputs = outs
        return self.program

    def step_identity(self, v):
        expr = f"{v.name} * 1" if v.kind != "b" else f"{v.name} & True"
        return self.emit(expr, [v], err=lambda out: v.err)


# ----------------------------------------------------------------------------- groups


def make_group(seed: int, n_programs: int = 10, *, grad: bool = False, min_ops: int = 2, max_ops: int = 5) -> Group:
    """``n_programs`` random programs as one function ``group(*args)`` returning every output."""
    gen = Generator(seed, grad=grad)
    programs = []
    for k in range(n_programs):
        programs.append(gen.make_program(k, int(gen.rng.integers(min_ops, max_ops + 1))))
    # arguments that ended up unused (a rejected attempt may have needed them) are dropped
    used = {a.name for p in programs for a in p.inputs}
    args = [a for a in gen.args if a.name in used]
    outputs = []
    body = []
    for p in programs:
        body.append(f"    # program {p.index}")
        body.extend("    " + line for line in p.lines)
        for v in p.outputs:
            outputs.append(Output(len(outputs), p.index, v.name, v.dtype, v.shape, v.err, v.value))
    signature = ", ".join(a.name for a in args)
    ret = ", ".join(o.name for o in outputs)
    source = f"def group({signature}):\n" + "\n".join(body) + f"\n    return ({ret},)\n"
    namespace = dict(NAMESPACE)
    exec(compile(source, f"<fuzz group {seed}>", "exec"), namespace)  # noqa: S102
    group = Group(seed, grad, args, programs, outputs, source, namespace["group"])
    if grad:
        _add_loss(group, gen.rng)
    return group


def _add_loss(group: Group, rng):
    """``loss = sum(out_k * w_k)`` over the float outputs; returns ``(loss, outputs)``."""
    floats = [o for o in group.outputs if o.dtype == F64]
    if not group.weights:
        group.weights = [np.round(rng.uniform(-1, 1, o.shape), 3) for o in floats]
    group.diff_argnums = tuple(i for i, a in enumerate(group.args) if not a.weak and a.dtype.kind == "f")
    wnames = [f"w{j}" for j in range(len(floats))]
    terms = " + ".join(f"np.sum(outs[{o.position}] * {w})" for o, w in zip(floats, wnames)) or "np.float64(0.0)"
    params = ", ".join([a.name for a in group.args] + wnames)
    call = ", ".join(a.name for a in group.args)
    group.loss_source = f"def loss({params}):\n    outs = group({call})\n    return {terms}, outs\n"
    namespace = dict(NAMESPACE, group=group.fn)
    exec(compile(group.loss_source, f"<fuzz loss {group.seed}>", "exec"), namespace)  # noqa: S102
    group.loss_fn = namespace["loss"]


def subgroup(group: Group, keep) -> Group:
    """The programs of ``group`` whose indices are in ``keep``, as a group of their own, with the same
    arguments, data and loss weights: to isolate a failure, or to set a program aside."""
    keep = sorted(keep)
    programs = [p for p in group.programs if p.index in keep]
    reads = {id(a) for p in programs for a in p.inputs}
    args = [a for a in group.args if id(a) in reads]
    outputs, body = [], []
    for p in programs:
        body.append(f"    # program {p.index}")
        body.extend("    " + line for line in p.lines)
        for v in p.outputs:
            outputs.append(Output(len(outputs), p.index, v.name, v.dtype, v.shape, v.err, v.value))
    source = (f"def group({', '.join(a.name for a in args)}):\n" + "\n".join(body)
              + f"\n    return ({''.join(o.name + ', ' for o in outputs)})\n")
    namespace = dict(NAMESPACE)
    exec(compile(source, f"<fuzz group {group.seed} programs {keep}>", "exec"), namespace)  # noqa: S102
    sub = Group(group.seed, group.grad, args, programs, outputs, source, namespace["group"])
    if group.grad:
        floats = [o for o in group.outputs if o.dtype == F64]
        by_key = {(o.program, o.name): w for o, w in zip(floats, group.weights)}
        sub.weights = [by_key[(o.program, o.name)] for o in outputs if o.dtype == F64]
        _add_loss(sub, None)
    return sub


def reproducer(group: Group, k: int | None = None) -> str:
    """A stand-alone script: the arguments written out, the (one-program) function, and the
    results in eager, graph and compiled mode (for a gradient group: of ``value_and_grad``
    of its loss)."""
    g = group if k is None else subgroup(group, [k])
    lines = ["import numpy as np", "import tracejit as tj", "", g.source]
    if g.grad:
        lines.append(g.loss_source)
    with np.printoptions(precision=17, threshold=10_000, floatmode="unique"):
        for a in g.args:
            if a.weak:
                lines.append(f"{a.name} = {a.value!r}")
            else:
                lines.append(f"{a.name} = np.array({np.array2string(a.arr, separator=', ')}, dtype=np.{a.dtype.name})")
        for j, w in enumerate(g.weights):
            lines.append(f"w{j} = np.array({np.array2string(np.asarray(w), separator=', ')})")
    call = ", ".join([a.name for a in g.args] + [f"w{j}" for j in range(len(g.weights))])
    if g.grad:
        lines += ["", f"f = tj.trace(tj.value_and_grad(loss, argnums={g.diff_argnums!r}, has_aux=True))"]
    else:
        lines += ["", "f = tj.trace(group)"]
    lines += ["for mode in ('eager', 'graph', 'compiled'):", "    with tj.mode(mode):", f"        print(mode, f({call}))"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- call-site programs
#
# Programs whose risk is in how they are called, not in what they compute: one array passed
# as several arguments and updated in place through them, and Python int arguments at and
# beyond the limits of the integer dtype they meet. Each is one small function with the
# arguments to call it with; NumPy's result (or NumPy's OverflowError) is the reference.

_ALIAS_STATEMENTS = [
    "{a} += {b}", "{a} -= 0.5 * {b}", "{a} *= {b}", "{a} /= {b} * {b} + 1.0", "{a} *= 0.5",
    "{a} += 1.0", "{a}[1:] += {b}[:-1]", "{a}[::2] = {b}[::2] * 2.0", "np.multiply({a}, 2.0, out={a})",
]
_ALIAS_RESULTS = ["{a} + {b}", "{a} * {b} - {c}", "np.sum({a}) + np.sum({c})", "({a} - {b}).max()", "{c} / 2.0"]


@dataclass
class CallCase:
    """A function (its source too) and the arguments to call it with (``make_args()`` makes
    fresh ones, sharing memory as the case intends)."""

    seed: int
    source: str
    fn: object
    make_args: object
    describe: str

    def message(self) -> str:
        return f"call-site fuzz case {self.seed}: {self.describe}\n{self.source}"


def _function(source: str, seed: int):
    namespace = dict(NAMESPACE)
    exec(compile(source, f"<fuzz call case {seed}>", "exec"), namespace)  # noqa: S102 - the text above
    return namespace["f"]


def make_alias_case(seed: int) -> CallCase:
    """Three parameters ``a, b, c`` updated in place in random order, called with one float64
    array under two or three of the names (or, now and then, separate arrays)."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    lines = []
    for _ in range(int(rng.integers(2, 5))):
        a, b = rng.choice(names, 2, replace=False)
        lines.append(str(rng.choice(_ALIAS_STATEMENTS)).format(a=a, b=b))
    a, b, c = rng.permutation(names)
    result = str(rng.choice(_ALIAS_RESULTS)).format(a=a, b=b, c=c)
    source = "def f(a, b, c):\n" + "".join(f"    {line}\n" for line in lines) + f"    return {result}\n"
    pattern = [(0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 0, 0), (0, 1, 2)][int(rng.integers(5))]
    shape = [(6,), (2, 4)][int(rng.integers(2))]
    data = [np.round(rng.uniform(0.5, 2.0, shape), 2) for _ in range(3)]

    def make_args():
        arrays = [d.copy() for d in data]
        return tuple(arrays[k] for k in pattern)

    return CallCase(seed, source, _function(source, seed), make_args, f"arguments {pattern} of {shape} float64")


_INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]
_INT_EXPRESSIONS = ["a + s", "s - a", "a * s", "np.maximum(a, s)", "np.minimum(s, a)", "a < s", "s >= a",
                    "a == s", "a != s", "a // s", "a % s", "np.where(a > 1, a, s)", "(a + 1) * 2 + s"]


def make_int_limit_case(seed: int) -> CallCase:
    """``f(a, s)``: an integer array and a Python int at or beyond its dtype's limits. (uint64 is
    left out: a Python int argument is traced as int64, so 2**63 and beyond cannot be passed.)"""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(_INT_DTYPES[int(rng.integers(len(_INT_DTYPES)))])
    info = np.iinfo(dtype)
    expr = str(rng.choice(_INT_EXPRESSIONS))
    lo, hi = int(info.min), int(info.max)
    near = [lo, hi, lo - 1, hi + 1, 0, 1, -1, lo + 1, hi - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 40]
    s = near[int(rng.integers(len(near)))]
    if dtype == np.int64:
        s = max(min(s, hi), lo)  # beyond int64 a Python int cannot be an argument at all
    values = np.array([0, 1, 2, hi // 2, hi], dtype)
    source = f"def f(a, s):\n    return {expr}\n"
    return CallCase(seed, source, _function(source, seed), lambda: (values.copy(), s), f"a: {dtype}, s = {s}")


# Terms of f(x) over the globals G0 (2, 3) and G1 (3,): some meet x (the array is captured by
# reference), some are computed by NumPy alone while tracing (their values become constants of
# the program), some both; _square is a helper reading G1 itself.
_OUTSIDE_TERMS = ["x * G0", "x + G0.sum()", "x * np.tanh(G1)", "x - G1[1:].mean()", "x * float(G0[0, 1])",
                  "x + G0.T.T", "x * (G1 * 2.0)", "np.maximum(x, G0[:, ::-1])", "x @ np.diag(G1)",
                  "x + G0.copy()", "x + _square()", "x * G1 + (G1 ** 2).sum()", "x + G0[1]"]
_OUTSIDE_CHANGES = ["G0 += 1.5", "G1[0] = -2.0", "G0 = G0 * 2.0", "G1 = G1[::-1].copy()", "G0[1, 2] = 0.25",
                    "pass"]


def make_outside_case(seed: int):
    """``(source, namespace, changes)``: ``namespace['f'](x)`` reads the global arrays G0 and G1
    of ``namespace``; each change (a statement run in that namespace between calls) changes
    them in place or rebinds them, and every later call must see the new values."""
    rng = np.random.default_rng(seed)
    terms = rng.choice(_OUTSIDE_TERMS, int(rng.integers(2, 4)), replace=False)
    source = ("def _square():\n    return G1 * G1\n\n\ndef f(x):\n    return "
              + " + ".join(f"({t})" for t in terms) + "\n")
    namespace = dict(NAMESPACE, G0=np.round(rng.uniform(-1, 1, (2, 3)), 2), G1=np.round(rng.uniform(-1, 1, 3), 2))
    exec(compile(source, f"<fuzz outside case {seed}>", "exec"), namespace)  # noqa: S102 - the text above
    changes = list(rng.choice(_OUTSIDE_CHANGES, 3))
    return source, namespace, changes


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="print a fuzz group's source, or a stand-alone reproducer")
    parser.add_argument("seed", type=int)
    parser.add_argument("--grad", action="store_true")
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--program", type=int, default=None)
    ns = parser.parse_args()
    grp = make_group(ns.seed, ns.size, grad=ns.grad)
    print(reproducer(grp, ns.program) if ns.program is not None else grp.describe())
