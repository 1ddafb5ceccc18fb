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
    # kernels.py or vecmath.py must get a new key, not the old machine code.
    import types

    from tracejit.backend import compiler
    program = types.SimpleNamespace(flags={"fastmath": False}, source="def f(a):\n    return (a,)\n")
    key = compiler._cache_key(program, "(float32[:],)")
    assert compiler._cache_key(program, "(float32[:],)") == key
    monkeypatch.setattr(compiler, "_helpers_hash", lambda: "a changed kernels.py")
    assert compiler._cache_key(program, "(float32[:],)") != key
