"""Child process of the compile-latency benchmark: ``python _child.py WORKLOAD SIZE SYSTEM``.

Run as a script (not ``-m``) so that importing it does not import tracejit: the NumPy floor
and the peers are measured without tracejit's import time. It loads ``workloads.py`` by path,
builds the system (this imports tracejit / jax / torch), runs it once and prints one JSON line
with wall-clock times; the parent takes the time from before it started the process.
"""
import time

T_START = time.time()

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def _load_workloads():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads.py")
    spec = importlib.util.spec_from_file_location("_tracejit_bench_workloads", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _configure_caches(system, cache_dir):
    if system == "jax.jit":
        import jax
        jax.config.update("jax_compilation_cache_dir", os.path.join(cache_dir, "jax"))
        for option, value in (("jax_persistent_cache_min_compile_time_secs", 0),
                              ("jax_persistent_cache_min_entry_size_bytes", 0)):
            try:
                jax.config.update(option, value)
            except AttributeError:  # older jax
                pass


def main(argv):
    workload, size_name, system = argv[1], argv[2], argv[3]
    cache_dir = os.environ.get("TRACEJIT_CACHE_DIR", "")
    wl_module = _load_workloads()
    try:
        wl = wl_module.get(workload)
        args = wl.make_inputs(wl.sizes[size_name])
        if cache_dir:
            _configure_caches(system, cache_dir)
        impl = wl.build(system, args)
        t_built = time.time()
        impl.call()
        t_result = time.time()
        # tracejit's compiled mode may have answered from the interpreter (tiered execution):
        # the time its compiled program first answers too
        wait = getattr(impl.traced, "wait", None)
        t_compiled = t_result
        if wait is not None and impl.traced.stats.get("interpreted_calls"):
            wait()
            impl.call()
            t_compiled = time.time()
    except wl_module.NotInstalled as e:
        print(json.dumps({"status": "not installed", "note": f"{e} is not installed"}))
        return 0
    except wl_module.Unavailable as e:
        print(json.dumps({"status": "unavailable", "note": str(e)}))
        return 0
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(json.dumps({"status": "failed", "note": f"{type(e).__name__}: {msg}"}))
        return 0
    stats = getattr(impl.traced, "stats", None) or {}
    print(json.dumps({"status": "ok", "t_start": T_START, "t_built": t_built, "t_result": t_result,
                      "t_compiled": t_compiled,
                      "startup": t_built - T_START, "first_call": t_result - t_built,
                      "kernels": stats.get("kernels"), "compile_seconds": stats.get("compile_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
