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


def _mnist_train():
    """MNIST's training images (float32 in [0, 1], ``(60000, 784)``) and labels, read from the
    original IDX files under ``$TRACEJIT_DATA`` here (not through tracejit, whose import the
    other systems should not pay)."""
    import gzip
    import numpy as np
    root = os.environ.get("TRACEJIT_DATA", "")
    folder = os.path.join(root, "mnist") if os.path.isdir(os.path.join(root, "mnist")) else root
    paths = [os.path.join(folder, f"train-{kind}-idx{n}-ubyte.gz") for kind, n in (("images", 3), ("labels", 1))]
    if not root or not all(os.path.exists(p) for p in paths):
        raise FileNotFoundError(f"MNIST's training files are not in {folder or '$TRACEJIT_DATA (unset)'}")
    with gzip.open(paths[0]) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(paths[1]) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return (images / np.float32(255)).astype(np.float32), labels


def _epoch(system, wl_module):
    """One epoch of MNIST softmax regression (batches of 128, SGD with rate 0.5 from zeros, as
    ``examples/mnist_softmax.py``) with ``system``'s step: ``(final loss, tj.trace object)``."""
    import numpy as np
    x, y = _mnist_train()
    wl = wl_module.get("softmax_sgd")
    params = {"W": np.zeros((784, 10), np.float32), "b": np.zeros(10, np.float32)}
    convert, block, traced = (lambda tree: tree), (lambda tree: tree), None
    if system == "numpy":
        step = wl.numpy_fn()
    elif system == "compiled":
        import tracejit as tj
        step = traced = tj.trace(wl.tracejit_fn(tj), mode="compiled")
    elif system == "jax.jit":
        jax, jnp = wl_module.import_jax()
        step = jax.jit(wl.jax_fn(jax, jnp))
        convert, block = (lambda tree: wl_module._to_jax(jnp, tree)), jax.block_until_ready
        params = convert(params)
    else:
        raise wl_module.Unavailable(f"no epoch for {system}")
    order = np.random.default_rng(0).permutation(len(x))
    loss = None
    for start in range(0, len(x) - 127, 128):
        batch = order[start:start + 128]
        params, loss = step(params, *convert((x[batch], y[batch])), 0.5)
    block(params)
    return float(loss), traced


def main(argv):
    workload, size_name, system = argv[1], argv[2], argv[3]
    cache_dir = os.environ.get("TRACEJIT_CACHE_DIR", "")
    wl_module = _load_workloads()
    if workload == "mnist_epoch":
        try:
            if cache_dir:
                _configure_caches(system, cache_dir)
            t_built = time.time()
            loss, traced = _epoch(system, wl_module)
            t_result = time.time()
        except wl_module.NotInstalled as e:
            print(json.dumps({"status": "not installed", "note": f"{e} is not installed"}))
            return 0
        except (wl_module.Unavailable, FileNotFoundError) as e:
            print(json.dumps({"status": "unavailable", "note": str(e)}))
            return 0
        stats = getattr(traced, "stats", None) or {}
        print(json.dumps({"status": "ok", "t_start": T_START, "t_built": t_built, "t_result": t_result,
                          "t_compiled": t_result, "startup": t_built - T_START, "first_call": t_result - t_built,
                          "loss": loss, "kernels": stats.get("kernels"),
                          "interpreted_calls": stats.get("interpreted_calls"),
                          "compile_seconds": stats.get("compile_seconds"),
                          "compile_parts": stats.get("compile_parts")}))
        return 0
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
                      "kernels": stats.get("kernels"), "compile_seconds": stats.get("compile_seconds"),
                      "compile_parts": stats.get("compile_parts")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
