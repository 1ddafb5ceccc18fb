"""Every backend module imports on its own, in a fresh interpreter, without the package's
``__init__`` having imported the others first: the backend's modules form no import cycle
(``tests/test_layering.py`` checks the import graph as text; this runs it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "tracejit" / "backend"
MODULES = sorted(p.stem for p in BACKEND.glob("*.py") if p.stem != "__init__")

# In the child: ``tracejit.backend`` stands in as a bare package (its __init__ would import
# codegen and compiler first), then the one module is imported and its public names read.
_CHILD = """
import importlib, sys, types
import tracejit
package = types.ModuleType("tracejit.backend")
package.__path__ = [{path!r}]
sys.modules["tracejit.backend"] = package
tracejit.backend = package
module = importlib.import_module("tracejit.backend." + {name!r})
missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
assert not missing, f"names in __all__ that the module does not define: {{missing}}"
print("imported", sorted(n for n in sys.modules if n.startswith("tracejit.backend.")))
"""


def test_the_list_of_backend_modules_is_what_the_package_has():
    assert {"lowering", "codegen", "emitters", "fused_kernels", "intrinsics", "scalar", "memory",
            "compiler"} <= set(MODULES)


def test_each_backend_module_imports_alone_in_a_fresh_interpreter():
    children = {name: subprocess.Popen([sys.executable, "-c", _CHILD.format(path=str(BACKEND), name=name)],
                                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in MODULES}
    failed = {}
    for name, child in children.items():
        out, err = child.communicate(timeout=120)
        if child.returncode != 0 or f"'tracejit.backend.{name}'" not in out:
            failed[name] = err.strip().splitlines()[-1:] or out
    assert failed == {}


def test_the_child_sees_a_cycle(tmp_path):
    # the check itself: two modules importing names from each other fail to import alone
    (tmp_path / "a.py").write_text("from .b import B\nA = 1\n")
    (tmp_path / "b.py").write_text("from .a import A\nB = 1\n")
    child = subprocess.run([sys.executable, "-c", _CHILD.format(path=str(tmp_path), name="a")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert child.returncode != 0 and "ImportError" in child.stderr


def test_importing_the_backend_leaves_the_cycle_collector_as_it_found_it():
    # the import pauses the collector while it runs (tracejit/backend/__init__.py): at most the
    # one collection set off as it is switched back on, where Numba's import alone sets off ~75
    program = ("import gc, tracejit; runs = []; gc.callbacks.append(lambda phase, info: runs.append(phase)); "
               "{before}; import tracejit.backend, tracejit.backend.compiler; "
               "print(gc.isenabled(), gc.get_freeze_count(), runs.count('start') <= 1)")
    for before, expected in (("pass", "True 0 True"), ("gc.disable()", "False 0 True")):
        done = subprocess.run([sys.executable, "-c", program.format(before=before)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == expected.split(), (before, done.stdout)
