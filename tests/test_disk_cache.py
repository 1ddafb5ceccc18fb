"""The persistent compile cache: reuse across processes, corrupt entries, unusable folders."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tracejit.backend import disk_cache

PROGRAM = textwrap.dedent("""
    import numpy as np, tracejit as tj
    @tj.trace
    def f(x):
        return np.tanh(x) * 2 + 1
    print(repr(f(np.arange(4, dtype=np.float32)).tolist()))
""")
EXPECTED = repr((np.tanh(np.arange(4, dtype=np.float32)) * 2 + 1).tolist())


def run_program(cache_dir):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir), TRACEJIT_LOG="cache")
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


def test_a_new_process_reuses_the_compiled_program(tmp_path):
    out, err = run_program(tmp_path)
    assert out == EXPECTED
    assert "written to" in err
    files = os.listdir(tmp_path / "kernels")
    assert any(name.endswith(".py") for name in files) and any(name.endswith(".sha256") for name in files)
    out, err = run_program(tmp_path)
    assert out == EXPECTED
    assert "found on disk" in err and "written to" not in err


def test_machine_code_is_kept_without_numbas_annotated_ir(tmp_path):
    run_program(tmp_path)
    data_files = list((tmp_path / "kernels").rglob("*.nbc"))
    assert data_files
    for data_file in data_files:  # Numba's reduced compile result, pickled
        data = data_file.read_bytes()
        assert disk_cache.TYPE_ANNOTATION_NOT_KEPT.encode() in data
        assert b"label 0" not in data  # the annotated IR's first block
    out, err = run_program(tmp_path)  # and the program loads and runs from it
    assert out == EXPECTED and "found on disk" in err


def test_with_tiering_a_compiled_program_is_loaded_before_the_first_call_returns(tmp_path):
    # Loading takes a fraction of a second; the interpreter running beside the load would only
    # slow both down. (A program not in the cache is interpreted while it compiles: test_tiers.)
    program = PROGRAM + "print(f.stats['interpreted_calls'])\n"
    for tiered, interpreted in (("0", "0"), ("1", "0")):  # the first run fills the cache
        env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path), TRACEJIT_LOG="compile", TRACEJIT_TIERED=tiered)
        done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines() == [EXPECTED, interpreted], done.stdout
    assert "because it is compiled already (in the disk cache)" in done.stderr, done.stderr


def test_the_runtime_sees_whether_any_machine_code_is_cached_without_the_backend(tmp_path, monkeypatch):
    # With none, a tiered first call need not import the backend (and Numba) to look for its program.
    from tracejit import settings
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    assert not settings.machine_code_cached()
    (tmp_path / "kernels" / "__pycache__").mkdir(parents=True)
    (tmp_path / "kernels" / "__pycache__" / "tj_x.f-1.py311.1.nbc").write_bytes(b"")
    assert not settings.machine_code_cached()
    (tmp_path / "kernels" / "__pycache__" / "tj_x.f-1.py311.nbi").write_bytes(b"")
    assert settings.machine_code_cached() and disk_cache.cache_root() == str(tmp_path)


def test_a_function_moved_to_other_lines_reuses_its_compiled_program(tmp_path):
    # The equations' lines are in the generated comments and in the messages the program raises,
    # yet the program is the same: a new process finds it, and reports the lines of the moment.
    def program(blank_lines):
        return "import numpy as np, tracejit as tj\n" + "\n" * blank_lines + textwrap.dedent("""
            @tj.trace
            def f(x, i):
                return np.tanh(x)[i] * 2 + 1
            x = np.arange(4, dtype=np.float32)
            print(repr(f(x, np.array([1, 3])).tolist()))
            try:
                f(x, np.array([1, 9]))
            except IndexError as e:
                print(e)
        """)

    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path), TRACEJIT_LOG="cache")
    expected = repr((np.tanh(np.arange(4, dtype=np.float32))[[1, 3]] * 2 + 1).tolist())
    for blank_lines, line, cache_says in ((0, 5, "written to"), (7, 12, "found on disk")):
        done = subprocess.run([sys.executable, "-c", program(blank_lines)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        result, message = done.stdout.strip().splitlines()
        assert result == expected
        assert message == f"gather: index out of bounds for axis 0 with size 4 (<string>:{line})"
        assert cache_says in done.stderr and len(os.listdir(tmp_path / "kernels")) == 3, done.stderr


def test_a_corrupt_entry_is_detected_and_rebuilt(tmp_path):
    run_program(tmp_path)
    (module,) = [n for n in os.listdir(tmp_path / "kernels") if n.endswith(".py")]
    with open(tmp_path / "kernels" / module, "a") as f:
        f.write("\nraise SystemExit('this entry was tampered with')\n")
    out, err = run_program(tmp_path)
    assert out == EXPECTED
    assert "corrupt or stale cache entry removed and rebuilt" in err
    out, err = run_program(tmp_path)  # and the rebuilt entry is good again
    assert out == EXPECTED and "found on disk" in err


def test_a_truncated_entry_is_rebuilt(tmp_path):
    run_program(tmp_path)
    (module,) = [n for n in os.listdir(tmp_path / "kernels") if n.endswith(".py")]
    path = tmp_path / "kernels" / module
    path.write_text(path.read_text()[:40])
    out, err = run_program(tmp_path)
    assert out == EXPECTED and "removed and rebuilt" in err


def test_an_unusable_folder_falls_back_to_memory_with_one_warning(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(blocker / "cache"))
    program = PROGRAM + textwrap.dedent("""
        g = tj.trace(lambda x: x * 3)
        print(repr(g(np.ones(2)).tolist()))
    """)
    done = subprocess.run([sys.executable, "-W", "always", "-c", program], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == EXPECTED
    assert done.stderr.count("compile cache folder cannot be used") == 1
    assert "memory only" in done.stderr


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    assert disk_cache.kernel_dir() == os.path.join(str(tmp_path), "kernels")
    monkeypatch.delenv("TRACEJIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert disk_cache.cache_root() == os.path.join(str(tmp_path / "xdg"), "tracejit")


@pytest.mark.parametrize("text", ["", "x = 1\n"])
def test_load_program_in_memory_fallback_executes_the_source(monkeypatch, text):
    monkeypatch.setattr(disk_cache, "_disabled", "testing")
    namespace, from_disk, filename = disk_cache.load_program(text + "y = 2\n", "f" * 64)
    assert namespace["y"] == 2 and not from_disk and filename.startswith("<tracejit")


def test_the_key_changes_with_the_modules_generated_code_calls(monkeypatch):
    # Numba's cache checks only the program's own file: a program compiled against an older
    # intrinsics.py or vecmath.py must get a new key, not the old machine code.
    import types

    from tracejit.backend import compiler
    program = types.SimpleNamespace(flags={"fastmath": False}, source="def f(a):\n    return (a,)\n")
    key = compiler._cache_key(program, "(float32[:],)")
    assert compiler._cache_key(program, "(float32[:],)") == key
    monkeypatch.setattr(compiler, "_helpers_hash", lambda: "a changed intrinsics.py")
    assert compiler._cache_key(program, "(float32[:],)") != key


def test_the_key_changes_with_llvms_optimisation_levels(monkeypatch):
    import types

    from tracejit.backend import compiler
    program = types.SimpleNamespace(flags={"fastmath": False}, source="def f(a):\n    return (a,)\n")
    key = compiler._cache_key(program, "(float32[:],)")
    monkeypatch.setattr(compiler, "MODULE_PASS_LEVEL", 3)
    o3 = compiler._cache_key(program, "(float32[:],)")
    monkeypatch.setattr(compiler, "FUNCTION_PASS_LEVEL", 3)
    assert len({key, o3, compiler._cache_key(program, "(float32[:],)")}) == 3


# --------------------------------------------------------------------------- the cache is code
# Whatever is in the cache folder is executed or unpickled: it is used only when nobody else can
# have written it. Tests run as root here, so another user is stood in through disk_cache's
# ``_current_uid`` seam, in the subprocess.

def _as_user(uid):
    return f"import tracejit.backend.disk_cache as dc\ndc._current_uid = lambda: {uid}\n"


def run_checked(cache_dir, prelude="", env=None, program=PROGRAM):
    full = {k: v for k, v in os.environ.items() if k != "TRACEJIT_CACHE_TRUST"}
    full.update(TRACEJIT_CACHE_DIR=str(cache_dir), TRACEJIT_LOG="cache", **(env or {}))
    done = subprocess.run([sys.executable, "-W", "always", "-c", prelude + program], env=full, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


def _plant(cache_dir):
    """Make the cached module print PLANTED when run, its checksum sidecar updated to match:
    only the trust and key checks stand between it and execution."""
    import hashlib
    (module,) = [n for n in os.listdir(cache_dir / "kernels") if n.endswith(".py")]
    path = cache_dir / "kernels" / module
    text = path.read_text() + "\nprint('PLANTED')\n"
    path.write_text(text)
    (cache_dir / "kernels" / module.replace(".py", ".sha256")).write_text(hashlib.sha256(text.encode()).hexdigest())
    return path


def _refused(out, err, what, module_used=False):
    assert out == EXPECTED, (out, err)  # the right result, computed without the planted code
    assert "PLANTED" not in out
    assert err.count("is not trusted") == 1, err
    assert what in err and "memory only" in err and "Fix:" in err, err
    assert ("found on disk" in err) == module_used and "machine code loaded" not in err, err


def test_cache_folders_are_private_and_files_owner_only(tmp_path):
    cache = tmp_path / "new" / "cache"
    run_program(cache)
    for folder in (cache, cache / "kernels", cache / "kernels" / "__pycache__"):
        assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700), folder
    files = [cache / "kernels" / n for n in os.listdir(cache / "kernels") if n != "__pycache__"]
    files += [cache / "kernels" / "__pycache__" / n for n in os.listdir(cache / "kernels" / "__pycache__")]
    assert any(str(f).endswith(".nbc") for f in files) and any(str(f).endswith(".nbi") for f in files)
    for f in files:
        assert oct(os.stat(f).st_mode & 0o777) == oct(0o600), f


def test_a_world_writable_cache_folder_is_refused(tmp_path):
    run_program(tmp_path)
    _plant(tmp_path)
    os.chmod(tmp_path / "kernels", 0o777)
    out, err = run_checked(tmp_path)
    _refused(out, err, "writable by its group and others")
    assert str(tmp_path / "kernels") in err and "mode 0777" in err


def test_a_cache_folder_owned_by_another_user_is_refused(tmp_path):
    run_program(tmp_path)
    _plant(tmp_path)
    out, err = run_checked(tmp_path, _as_user(4242))
    _refused(out, err, "not to you (uid 4242)")
    assert str(tmp_path) in err


def test_a_group_writable_file_is_refused(tmp_path):
    run_program(tmp_path)
    os.chmod(_plant(tmp_path), 0o664)
    out, err = run_checked(tmp_path)
    _refused(out, err, "is writable by its group")


def test_a_group_writable_machine_code_file_is_refused(tmp_path):
    run_program(tmp_path)
    pycache = tmp_path / "kernels" / "__pycache__"
    (index,) = [n for n in os.listdir(pycache) if n.endswith(".nbi") and "_part" not in n]
    os.chmod(pycache / index, 0o666)
    out, err = run_checked(tmp_path)
    _refused(out, err, "writable by its group and others", module_used=True)  # its module was checked and good


def test_a_swapped_module_is_rebuilt_not_run(tmp_path):
    run_program(tmp_path)
    _plant(tmp_path)  # the checksum matches its text, but the code is not the key's program
    out, err = run_checked(tmp_path)
    assert out == EXPECTED and "PLANTED" not in out
    assert err.count("another program than the one of its key") >= 1 and "removed and rebuilt" in err
    out, err = run_checked(tmp_path)  # the rebuilt entry is used again
    assert out == EXPECTED and "found on disk" in err and "RuntimeWarning" not in err


def test_a_shared_cache_owned_by_root_is_accepted_only_when_asked(tmp_path):
    run_program(tmp_path)  # written by root (the test runner): another user's process reads it
    out, err = run_checked(tmp_path, _as_user(4242), env={"TRACEJIT_CACHE_TRUST": "shared"})
    assert out == EXPECTED and "found on disk" in err and "machine code loaded" in err and "not trusted" not in err
    os.chmod(tmp_path / "kernels", 0o775)  # but never one that others can write
    out, err = run_checked(tmp_path, _as_user(4242), env={"TRACEJIT_CACHE_TRUST": "shared"})
    _refused(out, err, "is writable by its group")


# --------------------------------------------------------------------------- damaged machine code

def _damage(data: bytes, how: str) -> bytes:
    return {"empty": b"", "truncated": data[:len(data) // 2], "random": os.urandom(max(64, len(data)))}[how]


@pytest.mark.parametrize("suffix,how", [(".nbi", "empty"), (".nbc", "random"),
                                        pytest.param(".nbc", "truncated", marks=pytest.mark.long),
                                        pytest.param(".nbi", "random", marks=pytest.mark.long)])
def test_a_damaged_machine_code_file_is_removed_and_rebuilt(tmp_path, suffix, how):
    run_program(tmp_path)
    pycache = tmp_path / "kernels" / "__pycache__"
    for name in os.listdir(pycache):
        if name.endswith(suffix):
            path = pycache / name
            path.write_bytes(_damage(path.read_bytes(), how))
    out, err = run_checked(tmp_path)
    assert out == EXPECTED, err
    assert err.count("RuntimeWarning") == 1 and "was damaged" in err, err
    out, err = run_checked(tmp_path)  # rebuilt: loaded again, no warning
    assert out == EXPECTED and "machine code loaded" in err and "RuntimeWarning" not in err, err


# --------------------------------------------------------------------------- a read-only cache

# Root writes through any mode, so the subprocess makes every write under the cache folder fail
# as on a read-only file system (before tracejit is imported).
READ_ONLY = textwrap.dedent("""
    import builtins, errno, os
    ROOT = os.path.realpath(os.environ["TRACEJIT_CACHE_DIR"])
    def _inside(path):
        return isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(ROOT)
    def _deny(path):
        raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
    _open, _os_open = builtins.open, os.open
    def _guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and _inside(file):
            _deny(file)
        return _open(file, mode, *args, **kwargs)
    def _guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path):
            _deny(path)
        return _os_open(path, flags, *args, **kwargs)
    builtins.open, os.open = _guarded_open, _guarded_os_open
    for _name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir", "chmod"):
        def _guarded(path, *args, _orig=getattr(os, _name), **kwargs):
            if _inside(path):
                _deny(path)
            return _orig(path, *args, **kwargs)
        setattr(os, _name, _guarded)
""")

REPORT_LOADED = textwrap.dedent("""
    from tracejit.backend import compiler
    print("machine code loaded:", sum(sum(fn._cache_hits.values()) for fn in getattr(compiler._cache, "recent", compiler._cache).values()))
""")


def test_a_read_only_warm_cache_is_used_and_nothing_is_written_elsewhere(tmp_path):
    cache, home = tmp_path / "cache", tmp_path / "home"
    run_program(cache)
    before = sorted(os.listdir(cache / "kernels")), sorted(os.listdir(cache / "kernels" / "__pycache__"))
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "NUMBA_CACHE_DIR": ""}
    out, err = run_checked(cache, READ_ONLY, env=env, program=PROGRAM + REPORT_LOADED)
    result, loaded = out.splitlines()
    assert result == EXPECTED
    assert loaded == "machine code loaded: 1", err  # not compiled again
    assert "RuntimeWarning" not in err, err
    # a program that is not in the cache yet is compiled in memory, with one warning
    program = PROGRAM + "g = tj.trace(lambda x: x * 3)\nprint(g(np.ones(2)).tolist())\nh = tj.trace(lambda x: x - 3)" \
                        "\nprint(h(np.ones(2)).tolist())\n"
    out, err = run_checked(cache, READ_ONLY, env=env, program=program)
    assert out.splitlines() == [EXPECTED, "[3.0, 3.0]", "[-2.0, -2.0]"]
    assert err.count("cannot be written") == 1 and "Read-only file system" in err, err
    assert (sorted(os.listdir(cache / "kernels")), sorted(os.listdir(cache / "kernels" / "__pycache__"))) == before
    assert not home.exists()  # nothing written to ~/.cache/numba either


def test_an_unknown_trust_setting_is_an_error(monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_TRUST", "everyone")
    with pytest.raises(ValueError, match="TRACEJIT_CACHE_TRUST must be 'shared' or unset, got 'everyone'"):
        disk_cache._shared()


@pytest.mark.parametrize("left", [".py", ".sha256"])
def test_half_an_entry_is_written_whole_without_a_damage_warning(tmp_path, left):
    """A program file without its checksum, or the reverse, is what another process leaves
    between its two writes (ranks of an MPI job compiling one program at once): not damage to
    report and remove from under that process, but an entry to write whole."""
    cache = tmp_path / "cache"
    run_program(cache)
    (missing,) = [p for p in (cache / "kernels").iterdir() if p.suffix in (".py", ".sha256") and p.suffix != left]
    missing.unlink()
    out, err = run_program(cache)
    assert out == EXPECTED and "damaged" not in err, err
    assert missing.exists()
    assert run_program(cache)[0] == EXPECTED
