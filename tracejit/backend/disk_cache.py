"""The persistent compile cache: generated programs as modules on disk, and their machine code.

Layer: backend, used by ``compiler``. Numba's own disk cache only works for functions defined
in a real file, so each generated program is written to ``<cache root>/kernels/tj_<key>.py``,
executed as the module ``tj_<key>`` (registered in ``sys.modules``), and Numba keeps its machine
code in ``kernels/__pycache__`` (``machine_code_cache``: Numba's index and data files, with the
checks below); a new process skips compilation. The key (``compiler._cache_key``) hashes the
source's code (not its comments, which name the user's lines), the Numba version, the flags and
the text of the modules generated code calls into (``intrinsics``, ``vecmath``, ``blas``,
``collectives``); Numba's own index adds the CPU. A file found under a key keeps the comments of the program that wrote it.

**The cache is code.** Whatever is in these folders is executed (the modules) or unpickled (the
machine code), so it is only used when nobody else can have written it:

- folders are created with mode 0700 and files 0600, written to a temporary name and renamed
  (a crash never leaves a partial entry);
- before anything is executed or unpickled, the cache root, ``kernels`` and ``kernels/__pycache__``
  and each file read must belong to the current user and must not be writable by group or
  others (``TRACEJIT_CACHE_TRUST=shared`` also accepts root as the owner, for a shared read-only
  cache such as a cluster image). Otherwise tracejit warns once (path, owner, mode and how to fix
  it) and keeps compiled programs in memory only for the rest of the process;
- a module's code must be the code generated for its key (checked on every load, together with
  the ``tj_<key>.sha256`` sidecar of the file's text), else the entry is removed and rebuilt; the
  text checked is the text executed (read once, never re-opened through the import system), and
  its bytecode (``__pycache__/tj_<key>.<python>.code``) is used only if it was compiled from
  that very text (its hash leads the file);
- a damaged machine-code file (empty, truncated, random: Numba's unpickling fails) is removed,
  the program compiled again, with one warning.

A cache that cannot be written (read-only, full) is still read: programs already there are
loaded, new ones are compiled in memory, with one warning. Nothing is written outside the cache
folder (Numba's machine code goes to ``kernels/__pycache__`` or nowhere). If the folder cannot be
created at all, tracejit warns once and compiles in memory only.

The cache root is ``$TRACEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracejit``, else
``~/.cache/tracejit`` (the dataset loaders use its ``datasets`` folder).
"""
from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import pickle
import stat
import sys
import tempfile
import threading
import types
import warnings

from ..settings import cache_root

__all__ = ["cache_root", "kernel_dir", "load_program", "disabled_reason", "machine_code_cache", "forget_module",
           "code_of", "TRUST_ENV"]

TRUST_ENV = "TRACEJIT_CACHE_TRUST"
#: What a program loaded from the disk cache has for Numba's type annotations (``inspect_types``).
TYPE_ANNOTATION_NOT_KEPT = ("(not kept in tracejit's disk cache: see the program's generated source, "
                            "CompiledProgram.source)")

_lock = threading.RLock()
_disabled: str | None = None  # why the disk cache is off in this process, once it is
_unwritable: str | None = None  # why new entries cannot be written (the cache is still read)
_damaged_warned: set = set()  # entries whose damage was reported
_loaded: dict = {}  # module name -> file (or pseudo-file) of the programs this process loaded




def kernel_dir() -> str:
    return os.path.join(cache_root(), "kernels")


def disabled_reason() -> str | None:
    """Why compiled programs are kept in memory only (None while the disk cache works)."""
    return _disabled


def code_of(source: str) -> str:
    """``source`` without its comment lines: what the key hashes and what a loaded file must hold."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- trust

def _current_uid() -> int:
    """The user the cache must belong to (a function, so that tests can stand in another user)."""
    return os.geteuid()


class Untrusted(Exception):
    """A cache folder or file that someone else than the current user could have written."""

    def __init__(self, path, st, why):
        super().__init__(path, why)
        self.path, self.st, self.why = path, st, why

    def message(self) -> str:
        mode = stat.S_IMODE(self.st.st_mode)
        kind = "folder" if stat.S_ISDIR(self.st.st_mode) else "file"
        owner = _user_name(self.st.st_uid)
        shared = " (with TRACEJIT_CACHE_TRUST=shared: yours or root's)" if _shared() else ""
        return (f"tracejit: the compile cache {kind} {self.path} is not trusted: it {self.why} (owner {owner}, "
                f"mode {mode:04o}). Its files would be executed, so only a cache that nobody else can write is used"
                f"{shared}; compiled programs "
                f"are kept in memory only in this process. Fix: make it yours and private (`chmod -R go-w "
                f"{self.path}`, owned by you), delete it, or set TRACEJIT_CACHE_DIR to a folder of your own; for a "
                "deliberately shared read-only cache owned by root, set TRACEJIT_CACHE_TRUST=shared.")


def _user_name(uid: int) -> str:
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _shared() -> bool:
    """Whether ``TRACEJIT_CACHE_TRUST=shared`` (root may own the cache too)."""
    value = os.environ.get(TRUST_ENV, "")
    if value not in ("", "shared"):
        raise ValueError(f"{TRUST_ENV} must be 'shared' or unset, got {value!r}")
    return value == "shared"


def _check(path: str, st) -> None:
    """Raise ``Untrusted`` unless ``st`` (of ``path``) is owned by the current user (or by root
    with ``TRACEJIT_CACHE_TRUST=shared``) and not writable by group or others."""
    uid = _current_uid()
    owners = (uid, 0) if _shared() else (uid,)
    if st.st_uid not in owners:
        raise Untrusted(path, st, f"belongs to {_user_name(st.st_uid)}, not to you ({_user_name(uid)})")
    writers = [who for who, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit]
    if writers:
        raise Untrusted(path, st, "is writable by " + " and ".join(writers))
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise Untrusted(path, st, "is neither a folder nor a regular file")


def _trusted_folder(path: str) -> None:
    """Create ``path`` (and missing parents) with mode 0700 if needed; check it (``_check``)."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
    _check(path, os.stat(path))


def read_trusted(path: str) -> bytes:
    """The bytes of ``path``, checked (``_check``) on the open file itself, so the file checked is
    the file read. ``FileNotFoundError`` if there is none; ``Untrusted`` if it fails the check."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        _check(path, os.fstat(fd))
        return f.read()


def _disable(reason: str, message: str | None = None) -> None:
    global _disabled
    if _disabled is None:
        _disabled = reason
        warnings.warn(message or (
            f"tracejit: the compile cache folder cannot be used ({reason}); compiled programs are kept in memory "
            "only for this process. Set TRACEJIT_CACHE_DIR to a writable folder to keep them across runs."),
            RuntimeWarning, stacklevel=5)


def _distrust(exc: Untrusted) -> None:
    _disable(f"untrusted: {exc.path} {exc.why}", exc.message())


def cannot_write(folder: str, exc: BaseException) -> None:
    """Report once that the cache cannot be written (it is still read)."""
    global _unwritable
    if _unwritable is None:
        _unwritable = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"tracejit: the compile cache {folder} cannot be written ({_unwritable}); the programs "
                      "already in it are used, new ones are compiled in memory only for this process.",
                      RuntimeWarning, stacklevel=5)


def _damaged(path: str, why: str, log=None) -> None:
    """Report a damaged entry (once per entry) that is being removed and rebuilt."""
    if log:
        log("cache", f"{os.path.basename(path)}: corrupt or stale cache entry removed and rebuilt ({why})")
    if path not in _damaged_warned:
        _damaged_warned.add(path)
        warnings.warn(f"tracejit: the compile cache entry {path} was damaged ({why}); it is removed and the "
                      "program compiled again.", RuntimeWarning, stacklevel=5)


# ----------------------------------------------------------------------------- writing

def write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, as a file only its owner can read and write."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".part")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _remove_entry(py_path: str, sum_path: str, module: str) -> None:
    _unlink(py_path)
    _unlink(sum_path)
    pycache = os.path.join(os.path.dirname(py_path), "__pycache__")
    if os.path.isdir(pycache):
        for name in os.listdir(pycache):
            if name.startswith(module + ".") or name.startswith(module + "-"):
                _unlink(os.path.join(pycache, name))


# ----------------------------------------------------------------------------- programs

def forget_module(module: str, namespace_id: int | None = None) -> None:
    """Drop a program's module (and its lines) once nothing uses its compiled function; with
    ``namespace_id``, only if the module registered is still the one with that namespace."""
    import linecache
    with _lock:
        mod = sys.modules.get(module)
        if namespace_id is not None and mod is not None and id(vars(mod)) != namespace_id:
            return  # loaded again since: that one is in use
        filename = _loaded.pop(module, None)
        sys.modules.pop(module, None)
        if filename is not None:
            linecache.cache.pop(filename, None)


def loaded_modules() -> list:
    """Names of the program modules this process holds."""
    return list(_loaded)


def _entry_text(source: str, py_path: str, sum_path: str, module: str, log):
    """The verified text of the entry on disk, or None when there is none (a bad one is removed)."""
    try:
        data = read_trusted(py_path)
    except FileNotFoundError:
        data = None
    try:
        expected = read_trusted(sum_path).decode("ascii", "replace").strip()
    except FileNotFoundError:
        expected = None
    if data is None or expected is None:
        # none, or half an entry: another process may be between writing the program and its
        # checksum (ranks of one MPI job compile the same program at once), so it is not
        # damage; this process writes the entry whole, each file atomically
        return None
    try:
        text = data.decode("utf-8") if data is not None else None
    except UnicodeDecodeError:
        text = None
    if text is None or expected != _digest(text):
        why = "its text does not match its checksum"
    elif code_of(text) != code_of(source):
        why = "it holds another program than the one of its key"
    else:
        return text
    _damaged(py_path, why, log)
    _remove_entry(py_path, sum_path, module)
    return None


def _code(text: str, py_path: str, module: str):
    """The code object of ``text`` (verified), from the bytecode kept beside it when that was
    compiled from this very text (its hash leads the file), else compiled and kept."""
    pycache = os.path.join(os.path.dirname(py_path), "__pycache__")
    code_path = os.path.join(pycache, f"{module}.{sys.implementation.cache_tag}.code")
    digest = _digest(text).encode("ascii")
    try:
        data = read_trusted(code_path)
        if data[:len(digest)] == digest:
            return marshal.loads(data[len(digest):])
    except FileNotFoundError:
        pass
    except (EOFError, ValueError, TypeError):  # damaged: compiled again below and replaced
        pass
    code = compile(text, py_path, "exec")
    try:
        _trusted_folder(pycache)
        write_private(code_path, digest + marshal.dumps(code))
    except OSError as exc:
        cannot_write(os.path.dirname(py_path), exc)
    return code


def _from_disk(source: str, key: str, module: str, log):
    """``(namespace, from_disk, filename)`` of the program through the cache folder, or None to
    run it from memory."""
    root, folder = cache_root(), kernel_dir()
    py_path = os.path.join(folder, module + ".py")
    sum_path = os.path.join(folder, module + ".sha256")
    try:
        _trusted_folder(root)
        _trusted_folder(folder)
        pycache = os.path.join(folder, "__pycache__")
        if os.path.isdir(pycache):
            _trusted_folder(pycache)
        text = _entry_text(source, py_path, sum_path, module, log)
        from_disk = text is not None
        if not from_disk:
            try:
                write_private(py_path, source.encode("utf-8"))
                write_private(sum_path, _digest(source).encode("ascii"))
            except OSError as exc:
                cannot_write(folder, exc)
                return None
            text = source
        # the text verified above is the text executed (never read again through the import system)
        code = _code(text, py_path, module)
    except Untrusted as exc:
        _distrust(exc)
        return None
    except OSError as exc:
        _disable(f"{type(exc).__name__}: {exc}")
        return None
    mod = types.ModuleType(module)
    mod.__file__ = py_path
    sys.modules[module] = mod  # Numba finds a loaded program's globals through it
    try:
        exec(code, vars(mod))  # noqa: S102
    except BaseException:
        del sys.modules[module]
        raise
    _loaded[module] = py_path
    if log:
        log("cache", f"{module}: {'found on disk' if from_disk else 'written to'} {folder}")
    return vars(mod), from_disk, py_path


def load_program(source: str, key: str, log=None):
    """The namespace of the generated ``source`` as a module, from the disk cache when possible.

    Returns ``(namespace, from_disk, filename)``; ``from_disk`` is True when a valid entry was
    already there. Falls back to executing the source in memory when the cache is unusable.
    """
    module = f"tj_{key[:40]}"
    with _lock:
        mod = sys.modules.get(module)
        if mod is not None and module in _loaded:
            return vars(mod), True, mod.__file__
        if _disabled is None:
            found = _from_disk(source, key, module, log)
            if found is not None:
                return found
        filename = f"<tracejit {module}>"
        namespace = {"__name__": module}
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102
        return namespace, False, filename


def has_machine_code(key: str) -> bool:
    """Whether the cache folder holds the program of ``key`` with its machine code beside it, as
    a finished compile leaves them (their contents are checked when they are loaded)."""
    if _disabled is not None:
        return False
    module = f"tj_{key[:40]}"
    folder = kernel_dir()
    try:
        names = os.listdir(os.path.join(folder, "__pycache__"))
    except OSError:
        return False
    return os.path.isfile(os.path.join(folder, module + ".py")) and \
        any(name.startswith(module + ".") and name.endswith(".nbi") for name in names)


# ----------------------------------------------------------------------------- machine code

_machine_code_cache_class = None


def machine_code_cache(py_func):
    """A Numba cache object for ``py_func`` (a function of a program module under ``kernels``)
    that keeps its machine code in ``kernels/__pycache__`` with the checks of this module:
    trusted files only, damaged files removed (and compiled again), private files, and a
    warning instead of a write elsewhere when the folder cannot be written."""
    global _machine_code_cache_class
    if _machine_code_cache_class is None:
        _machine_code_cache_class = _make_machine_code_cache_class()
    return _machine_code_cache_class(py_func)


class _Damaged(Exception):
    pass


def _make_machine_code_cache_class():
    from numba.core import caching

    class Locator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
        """Always ``__pycache__`` beside the program's file, never a folder elsewhere."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(os.path.dirname(py_file), "__pycache__")

        def get_cache_path(self):
            return self._cache_path

        def ensure_cache_path(self):
            _trusted_folder(self._cache_path)

        @classmethod
        def from_function(cls, py_func, py_file):
            return cls(py_func, py_file)

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = [Locator]

        def reduce(self, cres):
            # Numba keeps with the machine code the typed IR as annotated text, for its
            # ``inspect_types``: for the softmax-regression step 180 kB, which took 12 ms of its
            # cold compile to render. A program's readable form is its generated source.
            return cres._replace(type_annotation=TYPE_ANNOTATION_NOT_KEPT)._reduce()

    class CacheFile(caching.IndexDataCacheFile):
        def _load_index(self):
            try:
                data = read_trusted(self._index_path)
            except FileNotFoundError:
                return {}
            try:
                version, rest = _split_version(data)
                if version != self._version:
                    return {}
                stamp, overloads = pickle.loads(rest)
            except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged file
                raise _Damaged(f"{type(exc).__name__}: {exc}") from None
            return overloads if stamp == self._source_stamp else {}

        def _load_data(self, name):
            data = read_trusted(self._data_path(name))  # a missing file is a miss (OSError, in load)
            try:
                return pickle.loads(data)
            except Exception as exc:  # noqa: BLE001
                raise _Damaged(f"{type(exc).__name__}: {exc}") from None

        @contextlib.contextmanager
        def _open_for_write(self, filepath):
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(filepath), prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    yield f
                os.replace(tmp, filepath)
            except BaseException:
                _unlink(tmp)
                raise

    class MachineCodeCache(caching.FunctionCache):
        _impl_class = Impl

        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file = CacheFile(self._cache_path, self._impl.filename_base, self._cache_file._source_stamp)

        def load_overload(self, sig, target_context):
            target_context.refresh()
            return self._load_overload(sig, target_context)

        def _load_overload(self, sig, target_context):
            if _disabled is not None:
                return None
            try:
                return super()._load_overload(sig, target_context)
            except Untrusted as exc:
                _distrust(exc)
            except _Damaged as exc:
                self._drop(str(exc))
            except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, KeyError,
                    IndexError) as exc:  # the data unpickled but is not a compiled program
                self._drop(f"{type(exc).__name__}: {exc}")
            return None

        def _drop(self, why):
            _damaged(self._cache_file._index_path, why)
            base = self._impl.filename_base
            with contextlib.suppress(OSError):
                for name in os.listdir(self._cache_path):
                    if name.startswith(base + ".") and name.endswith((".nbi", ".nbc")):
                        _unlink(os.path.join(self._cache_path, name))

        def save_overload(self, sig, data):
            if _disabled is not None or _unwritable is not None:
                return
            try:
                self._save_overload(sig, data)
            except Untrusted as exc:
                _distrust(exc)
            except _Damaged:  # the index is unreadable: start it afresh
                self._drop("unreadable index")
            except OSError as exc:
                cannot_write(self._cache_path, exc)

    return MachineCodeCache


def _split_version(data: bytes):
    """Numba's index file: a pickled version string, then the pickled index."""
    import io
    stream = io.BytesIO(data)
    version = pickle.load(stream)
    return version, stream.read()
