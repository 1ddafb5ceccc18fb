"""Start-up cost: what ``import tracejit`` leaves out until it is used.

Each check runs in a new interpreter, since this test process has imported everything already.
"""
import json
import subprocess
import sys
import textwrap


def imported_after(program):
    """``sys.modules`` names (of the ones checked) present after running ``program``."""
    checked = ["tracejit.bench", "tracejit.datasets", "http.client", "urllib.request"]
    code = program + f"\nimport json, sys\nprint(json.dumps([m for m in {checked!r} if m in sys.modules]))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_leaves_out_the_harness_and_the_dataset_loaders():
    assert imported_after("import tracejit") == []


def test_the_lazy_submodules_are_there_when_used():
    program = textwrap.dedent("""
        import tracejit as tj
        assert callable(tj.bench.compare) and callable(tj.datasets.mnist)
        assert {"bench", "datasets"} <= set(dir(tj))
        from tracejit import bench, datasets
        assert bench is tj.bench and datasets is tj.datasets
        try:
            tj.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("tj.no_such_name did not raise")
    """)
    assert imported_after(program) == ["tracejit.bench", "tracejit.datasets", "http.client", "urllib.request"]


def test_star_import_still_gives_every_public_name():
    program = "from tracejit import *\nassert bench.compare and datasets.mnist and trace and grad\n"
    assert "tracejit.bench" in imported_after(program)
