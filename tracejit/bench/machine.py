"""What a benchmark ran on: CPU, cores, memory, Python and library versions, relevant
environment variables and the date. Reads versions from package metadata, so nothing heavy
(jax, torch) is imported just to describe the machine."""
from __future__ import annotations

import datetime
import os
import platform
import sys

__all__ = ["machine_info", "describe_markdown", "ENV_VARS", "environment_notes", "instruction_set"]

# Environment variables that change what is measured.
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMBA_NUM_THREADS", "NUMBA_DISABLE_JIT", "TRACEJIT_MODE", "TRACEJIT_CACHE_DIR", "TRACEJIT_LOG",
            "JAX_PLATFORMS", "JAX_ENABLE_X64", "XLA_FLAGS", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")

_PACKAGES = ("tracejit", "numpy", "numba", "llvmlite", "scipy", "jax", "jaxlib", "torch", "matplotlib")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def instruction_set(flags=None, numba_features=None) -> str | None:
    """The widest x86 vector instruction set of the CPU ("AVX-512", "AVX2 + FMA", "AVX",
    "SSE4.2"), from the CPU's flags; ``NUMBA_CPU_FEATURES`` (Numba's target when set) takes
    precedence, since it decides which instructions the compiled code uses. None elsewhere."""
    if numba_features is None:
        numba_features = os.environ.get("NUMBA_CPU_FEATURES")
    if numba_features:
        flags = {f[1:].replace(".", "_") for f in numba_features.split(",") if f.startswith("+")}
    elif flags is None:
        flags = _cpu_flags()
    for name, needs in (("AVX-512", ("avx512f",)), ("AVX2 + FMA", ("avx2", "fma")), ("AVX", ("avx",)),
                        ("SSE4.2", ("sse4_2",))):
        if all(n in flags for n in needs):
            return name
    return None


def _memory_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(name):
    if name == "tracejit":
        try:
            import tracejit
            return tracejit.__version__
        except Exception:  # pragma: no cover
            pass
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version(name)
    except PackageNotFoundError:
        return None
    except Exception:  # pragma: no cover
        return None


def _blas():
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return " ".join(str(x) for x in (blas.get("name"), blas.get("version")) if x) or None
    except Exception:
        return None


def _git_commit():
    try:
        import subprocess
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def machine_info() -> dict:
    """A JSON-able description of this machine and software."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "instruction_set": instruction_set(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "versions": {name: _version(name) for name in _PACKAGES},
        "numpy_blas": _blas(),
        "git_commit": _git_commit(),
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
        "load_average": _load(),
    }


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        return None


def environment_notes(info) -> list:
    """Warnings worth printing next to the numbers."""
    notes = []
    core = info.get("env", {}).get("OPENBLAS_CORETYPE")
    if core:
        notes.append(f"OPENBLAS_CORETYPE={core} is set: OpenBLAS uses kernels for that CPU type instead of the "
                     "best ones for this CPU, which can slow NumPy's matrix products (and every system using "
                     "them); unset it for representative numbers")
    # the load average counts every CPU of the machine, also those a --threads run leaves out
    load, cores = info.get("load_average"), info.get("cores") or info.get("usable_cores") or 1
    if load and load[0] > 0.5 * cores:
        notes.append(f"the machine was busy when the run started (load average {load[0]:g} on {cores} "
                     f"core{'s' if cores != 1 else ''}): "
                     "other processes compete for the CPU, so times are higher and noisier than on an idle machine")
    return notes


def describe_markdown(info) -> list:
    v = info.get("versions", {})
    rows = [("date", info.get("date")), ("CPU", info.get("cpu")),
            ("instruction set", info.get("instruction_set")),
            ("cores", f"{info.get('cores')} ({info.get('usable_cores')} usable)"),
            ("memory", f"{info.get('memory_gib')} GiB" if info.get("memory_gib") else None),
            ("OS", info.get("os")), ("Python", info.get("python"))]
    for name in _PACKAGES:
        rows.append((name, v.get(name) or "not installed"))
    rows += [("NumPy BLAS", info.get("numpy_blas")), ("git commit", info.get("git_commit"))]
    if info.get("load_average"):
        rows.append(("load average at start (1, 5, 15 min)", ", ".join(f"{x:g}" for x in info["load_average"])))
    env = info.get("env", {})
    rows.append(("environment", ", ".join(f"`{k}={val}`" for k, val in env.items()) or "none of " +
                 ", ".join(f"`{k}`" for k in ENV_VARS[:5]) + " set"))
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in rows if val is not None]
    return lines
