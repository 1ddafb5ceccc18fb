"""The test suite keeps its compiled programs out of the user's cache folder."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import conftest
from tracejit.backend import disk_cache

REPO = Path(__file__).resolve().parent.parent


def test_the_suite_compiles_into_a_temporary_folder_unless_told_otherwise():
    root = disk_cache.cache_root()
    assert root == os.environ["TRACEJIT_CACHE_DIR"]
    if conftest.TEMPORARY_CACHE:  # the caller did not choose a folder
        assert root == conftest.TEMPORARY_CACHE
        assert Path(root).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    default = os.path.join(os.path.expanduser("~"), ".cache", "tracejit")
    assert not Path(root).resolve().is_relative_to(Path(default).resolve()) or not conftest.TEMPORARY_CACHE


@pytest.mark.long
def test_a_test_run_leaves_nothing_in_the_home_cache(tmp_path):
    test = tmp_path / "test_one.py"
    test.write_text("import numpy as np, tracejit as tj\n\n"
                    "def test_compiles():\n    assert tj.trace(lambda x: x * 2)(np.ones(3)).tolist() == [2, 2, 2]\n")
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEJIT_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / "home" / ".cache" / "tracejit").exists()
