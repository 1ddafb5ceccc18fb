"""The persistent compile cache: generated programs as importable modules on disk.

Layer: backend, used by ``compiler``. Numba's own disk cache (``cache=True``) only works for
functions defined in a real, importable file, so each generated program is written to
``<cache root>/kernels/tj_<key>.py`` and imported under that unique module name (registered in
``sys.modules``); Numba then keeps the machine code in the ``__pycache__`` folder beside it and
a new process skips compilation. The key (``compiler._cache_key``) hashes the source's code
(not its comments, which name the user's lines), the Numba version, the flags and the text of
the modules generated code calls into (``kernels``, ``vecmath``, ``blas``); Numba's own index
adds the CPU. A file found under a key keeps the comments of the program that wrote it.

A sidecar ``tj_<key>.sha256`` holds the hash of the file's text. An entry whose file does not
match it (truncated, edited, half-written) is removed and rebuilt, never trusted; Numba
itself re-validates its index against the file. Files are written to a temporary name and
renamed, so a crash never leaves a partial entry. If the folder cannot be created or written
(read-only, no space), tracejit warns once and compiles in memory only.

The cache root is ``$TRACEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracejit``, else
``~/.cache/tracejit`` (the dataset loaders use its ``datasets`` folder).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import warnings

__all__ = ["cache_root", "kernel_dir", "load_program", "disabled_reason"]

_lock = threading.Lock()
_disabled: str | None = None  # why the disk cache is off in this process, once it is


def cache_root() -> str:
    root = os.environ.get("TRACEJIT_CACHE_DIR")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tracejit")


def kernel_dir() -> str:
    return os.path.join(cache_root(), "kernels")


def disabled_reason() -> str | None:
    """Why compiled programs are kept in memory only (None while the disk cache works)."""
    return _disabled


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _atomic_write(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _disable(reason: str) -> None:
    global _disabled
    if _disabled is None:
        _disabled = reason
        warnings.warn(f"tracejit: the compile cache folder cannot be used ({reason}); compiled programs are kept "
                      "in memory only for this process. Set TRACEJIT_CACHE_DIR to a writable folder to keep them "
                      "across runs.", RuntimeWarning, stacklevel=4)


def _entry_is_valid(py_path: str, sum_path: str) -> bool:
    try:
        with open(py_path, encoding="utf-8") as f:
            text = f.read()
        with open(sum_path, encoding="utf-8") as f:
            expected = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return _digest(text) == expected


def _remove_entry(py_path: str, sum_path: str, module: str) -> None:
    for path in (py_path, sum_path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    pycache = os.path.join(os.path.dirname(py_path), "__pycache__")
    if os.path.isdir(pycache):
        for name in os.listdir(pycache):
            if name.startswith(module + ".") or name.startswith(module + "-"):
                try:
                    os.unlink(os.path.join(pycache, name))
                except OSError:
                    pass


def load_program(source: str, key: str, log=None):
    """The namespace of the generated ``source`` as a module, from the disk cache when possible.

    Returns ``(namespace, from_disk, filename)``; ``from_disk`` is True when a valid entry was
    already there. Falls back to executing the source in memory when the cache is unusable.
    """
    module = f"tj_{key[:40]}"
    with _lock:
        if module in sys.modules:
            mod = sys.modules[module]
            return vars(mod), True, mod.__file__
        if _disabled is None:
            folder = kernel_dir()
            py_path = os.path.join(folder, module + ".py")
            sum_path = os.path.join(folder, module + ".sha256")
            try:
                os.makedirs(folder, exist_ok=True)
                from_disk = os.path.exists(py_path) or os.path.exists(sum_path)
                if from_disk and not _entry_is_valid(py_path, sum_path):
                    if log:
                        log("cache", f"{module}: corrupt or stale cache entry removed and rebuilt")
                    _remove_entry(py_path, sum_path, module)
                    from_disk = False
                if not from_disk:
                    _atomic_write(py_path, source)
                    _atomic_write(sum_path, _digest(source))
                spec = importlib.util.spec_from_file_location(module, py_path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[module] = mod
                try:
                    spec.loader.exec_module(mod)
                except BaseException:
                    del sys.modules[module]
                    raise
                if log:
                    log("cache", f"{module}: {'found on disk' if from_disk else 'written to'} {folder}")
                return vars(mod), from_disk, py_path
            except OSError as exc:
                _disable(f"{type(exc).__name__}: {exc}")
        filename = f"<tracejit {module}>"
        namespace = {"__name__": module}
        exec(compile(source, filename, "exec"), namespace)
        return namespace, False, filename
