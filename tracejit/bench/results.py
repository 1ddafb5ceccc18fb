"""Benchmark results: per system, per workload (``Result``) and per run (``Report``).

All of them print as fixed-width tables, convert to plain dicts / JSON and back
(``Result.from_json(r.to_json())`` gives an equal result), and render as Markdown.
Times are in seconds throughout the data; the tables format them with units.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

__all__ = ["SystemResult", "Result", "Report", "format_time", "format_ratio"]

SCHEMA_VERSION = 1
OK = "ok"


def format_time(seconds, unicode=True) -> str:
    """``412 ns``, ``3.21 µs``, ``12.4 ms``, ``1.52 s`` (three significant digits)."""
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs" if unicode else "us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.3g} {unit}" if abs(v) < 100 else f"{v:.0f} {unit}"
    return "-"  # pragma: no cover


def format_ratio(r) -> str:
    if r is None or not math.isfinite(r):
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


@dataclass
class SystemResult:
    """One system's numbers for one workload.

    ``status`` is ``"ok"`` or why it was not timed: ``"not installed"``, ``"unavailable"``,
    ``"skipped"``, ``"failed"``, ``"timeout"``, ``"mismatch"`` (``note`` says more).
    Times are seconds per call: ``median``, ``min``, ``max`` over ``rounds`` samples of ``batch``
    calls each; ``first_call`` is the first call (tracing + compiling for compiled mode);
    ``overhead`` is the cache-hit overhead of a tracejit call. ``traces``, ``cache_hits``,
    ``retraces`` (count), ``compile_seconds``, ``kernels`` and ``fused_ops`` come from
    ``Traced.stats`` (``None`` for other systems). ``max_error``: worst difference from the
    baseline's output in units of the tolerance (<= 1 agrees). ``extra`` holds anything else
    (e.g. import time of the compile-latency runs).
    """

    name: str
    status: str = OK
    note: str = ""
    median: float | None = None
    min: float | None = None
    max: float | None = None
    rounds: int = 0
    batch: int = 0
    samples: list = field(default_factory=list)
    first_call: float | None = None
    overhead: float | None = None
    compile_seconds: float | None = None
    kernels: int | None = None
    fused_ops: int | None = None
    traces: int | None = None
    cache_hits: int | None = None
    retraces: int | None = None
    max_error: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK and self.median is not None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> "SystemResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Result:
    """The comparison of several systems on one workload; ``tj.bench.compare`` returns one.

    ``kind`` is ``"time"`` (time per call; ratios are speed-ups over the baseline: baseline
    median / system median) or ``"latency"`` (seconds from process start to first result).
    ``systems`` maps names to ``SystemResult`` in column order. Index it by system name.
    """

    name: str
    systems: dict
    baseline: str | None = None
    title: str = ""
    kind: str = "time"
    params: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def __getitem__(self, name) -> SystemResult:
        return self.systems[name]

    def __iter__(self):
        return iter(self.systems.values())

    def speedup(self, name):
        """Baseline median / this system's median (``None`` if either did not run)."""
        base = self.systems.get(self.baseline)
        s = self.systems.get(name)
        if not base or not s or not base.ok or not s.ok or not s.median:
            return None
        return base.median / s.median

    # ---------------------------------------------------------------------------- conversion
    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "kind": self.kind, "baseline": self.baseline,
                "params": dict(self.params), "notes": list(self.notes),
                "systems": {k: v.to_dict() for k, v in self.systems.items()},
                "speedups": {k: self.speedup(k) for k in self.systems} if self.kind == "time" else {}}

    @classmethod
    def from_dict(cls, d) -> "Result":
        return cls(name=d["name"], title=d.get("title", ""), kind=d.get("kind", "time"),
                   baseline=d.get("baseline"), params=dict(d.get("params", {})), notes=list(d.get("notes", [])),
                   systems={k: SystemResult.from_dict(v) for k, v in d["systems"].items()})

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **({"indent": 2} | kw))

    @classmethod
    def from_json(cls, text) -> "Result":
        return cls.from_dict(json.loads(text))

    # ---------------------------------------------------------------------------- tables
    def _rows(self, unicode):
        t = lambda s: format_time(s, unicode)  # noqa: E731
        dash = "–" if unicode else "-"
        if self.kind == "latency":
            header = ["system", "median", f"min {dash} max", "runs", "start-up", "first call", "compiled tier",
                      "kernels", "note"]
        else:
            header = ["system", "median", f"min {dash} max", f"vs {self.baseline}", "first call", "overhead",
                      "kernels", "retraces", "note"]
        rows = []
        for s in self.systems.values():
            if not s.ok:
                rows.append([s.name, s.status] + [""] * (len(header) - 3) + [s.note])
                continue
            spread = f"{t(s.min)} {dash} {t(s.max)}"
            kern = "-" if s.kernels is None else str(s.kernels)
            if self.kind == "latency":
                rows.append([s.name, t(s.median), spread, str(s.rounds), t(s.extra.get("startup")),
                             t(s.first_call), t(s.extra.get("compiled_tier")), kern, s.note])
            else:
                rows.append([s.name, t(s.median), spread, format_ratio(self.speedup(s.name)), t(s.first_call),
                             t(s.overhead), kern, "-" if s.retraces is None else str(s.retraces), s.note])
        return header, rows

    def table(self, unicode=True) -> str:
        header, rows = self._rows(unicode)
        lines = [f"{self.name}: {self.title}" if self.title else self.name]
        lines += _fixed_width(header, rows)
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_markdown(self, level=3) -> str:
        header, rows = self._rows(True)
        out = [f"{'#' * level} {self.title or self.name}", ""]
        if self.title:
            out += [f"`{self.name}`" + (f" ({self.params['size_desc']})" if self.params.get("size_desc") else ""), ""]
        out += _markdown_table(header, rows)
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)


@dataclass
class Report:
    """A run over several workloads (what ``python -m tracejit.bench`` produces)."""

    results: list
    machine: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def __getitem__(self, name) -> Result:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def columns(self):
        from .workloads import SYSTEMS
        seen = []
        for r in self.results:
            seen += [k for k in r.systems if k not in seen]
        return [s for s in SYSTEMS if s in seen] + [s for s in seen if s not in SYSTEMS]

    def _summary(self, unicode):
        cols = self.columns()
        rows = []
        for r in self.results:
            row = [r.name]
            for c in cols:
                s = r.systems.get(c)
                if s is None:
                    row.append("")
                elif not s.ok:
                    row.append(s.status)
                elif r.kind == "time" and c != r.baseline:
                    row.append(f"{format_time(s.median, unicode)} ({format_ratio(r.speedup(c))})")
                else:
                    row.append(format_time(s.median, unicode))
            rows.append(row)
        return ["workload"] + cols, rows

    def table(self, unicode=True) -> str:
        header, rows = self._summary(unicode)
        lines = ["median time per call (speed-up vs NumPy eager); compile rows: process start to first result"]
        lines += _fixed_width(header, rows)
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def details(self, unicode=True) -> str:
        return "\n\n".join(r.table(unicode) for r in self.results)

    def __str__(self):
        return self.table()

    def to_dict(self) -> dict:
        return {"schema": SCHEMA_VERSION, "machine": dict(self.machine), "params": dict(self.params),
                "notes": list(self.notes), "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d) -> "Report":
        return cls(results=[Result.from_dict(r) for r in d["results"]], machine=dict(d.get("machine", {})),
                   params=dict(d.get("params", {})), notes=list(d.get("notes", [])))

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **({"indent": 2} | kw))

    @classmethod
    def from_json(cls, text) -> "Report":
        return cls.from_dict(json.loads(text))

    def to_markdown(self, plot=None) -> str:
        """The whole report as Markdown: machine, summary table, plot (a path relative to the
        Markdown file), one detail table per workload, and the method."""
        from .machine import describe_markdown
        header, rows = self._summary(True)
        out = ["# tracejit benchmarks", ""]
        when = self.machine.get("date", "")
        cmd = self.params.get("command")
        out += [f"Measured {when}" + (f" with `{cmd}`" if cmd else "") + ".", ""]
        out += ["## Summary", "",
                "Median time per call, and in brackets the speed-up over the hand-written NumPy version "
                "(NumPy eager) measured in the same run (higher is faster). The compile rows are seconds "
                "from process start to first result in a new process.", ""]
        out += _markdown_table(header, rows) + [""]
        if plot:
            out += [f"![speed-up over NumPy per workload]({plot})", ""]
        out += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        out += ["## Machine", ""] + describe_markdown(self.machine) + [""]
        out += ["## Details", ""]
        for r in self.results:
            out += [r.to_markdown(level=3), ""]
        out += ["## Method", ""] + METHOD_MARKDOWN + [""]
        return "\n".join(out).rstrip() + "\n"


METHOD_MARKDOWN = [
    "- Every system runs the same computation on the same inputs (float32; JAX on the CPU in float32, "
    "labels int32 there). Before any timing each system's output is checked against the NumPy baseline; "
    "one that disagrees is reported as `mismatch` and not timed.",
    "- *first call* is the first call's wall time (for `compiled`: tracing, the passes and Numba "
    "compilation or loading from the disk cache; for `jax.jit`/`torch.compile`: their compilation).",
    "- Then each system warms up, gets a batch size so one sample lasts at least a few milliseconds "
    "(microsecond workloads are timed over many calls), and the systems are timed in interleaved rounds "
    "(A B C A B C ...) so drift of the machine affects all alike. Garbage collection is off during a "
    "sample. Tables give the median and min–max of the per-call times over the rounds.",
    "- *overhead* is tracejit's cache-hit overhead: the time of a call minus the time spent in the program "
    "it runs (flattening the arguments, the cache key, the lookup, unpacking the results).",
    "- *copy limit* copies the input into a preallocated array of the same size: the least memory traffic "
    "an elementwise chain needs, so no implementation can beat it by much.",
    "- *compile* rows run each system in a new Python process: *cold* with an empty cache folder "
    "(`TRACEJIT_CACHE_DIR`, JAX's persistent compilation cache, TorchInductor's cache), *warm* again with "
    "the folder the cold run filled. The time is from process start to the first result, including "
    "imports; `numpy` is the floor (Python, NumPy and the NumPy version of the step).",
]


def _fixed_width(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    rule = ["-" * w for w in widths]
    if header[-1] == "note":  # free-form: rule it as wide as its title only
        rule[-1] = "-" * len(header[-1])
    lines = [fmt(header), fmt(rule)]
    lines += [fmt(r) for r in rows]
    return lines


def _markdown_table(header, rows):
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    align = ["---" if i == 0 or h == "note" else "---:" for i, h in enumerate(header)]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return lines
