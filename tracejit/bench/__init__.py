"""The benchmark harness: eager vs compiled vs NumPy (and JAX / PyTorch when installed).

Two entry points:

- ``tj.bench.compare(fn, *args, modes=("eager", "compiled"))`` times one function in several
  modes and returns a ``Result`` (prints as a table; ``to_dict()`` / ``to_json()``; per mode the
  median, min, max, first-call time, cache-hit overhead, kernel count and retraces);
- ``tj.bench.run(...)`` / ``python -m tracejit.bench`` runs the standard workloads
  (``tj.bench.WORKLOADS``) in every system and returns a ``Report``.

The timing method (interleaved rounds, output checks before timing, adaptive batching) is
described in ``tracejit/bench/timing.py`` and in ``benchmarks/README.md``.
"""
from .machine import machine_info
from .results import Report, Result, SystemResult, format_time
from .runner import DEFAULT_SYSTEMS, SETTINGS, compare, run
from .workloads import SYSTEMS, WORKLOADS, Workload

__all__ = ["compare", "run", "Result", "Report", "SystemResult", "Workload", "WORKLOADS", "SYSTEMS",
           "DEFAULT_SYSTEMS", "SETTINGS", "machine_info", "format_time"]
