"""The example programs run end to end on a little data and print what they promise.

Each example is imported from ``examples/`` and its ``main(argv)`` called with ``--epochs 1``
and ``--limit``. The data are the real MNIST / Fashion-MNIST files when present
(``$TRACEJIT_DATA`` or ``../shared/data`` beside the repository); otherwise tiny IDX files
written here, with a pattern per class that a linear model learns in a few steps.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit import datasets

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
NAMES = {"mnist": "mnist", "fashion": "fashion-mnist"}
_modules = {}


def example(name):
    """The example ``examples/<name>.py`` as a module (imported once)."""
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


def real_data_folder(name):
    for root in (os.environ.get("TRACEJIT_DATA"), REPO.parent / "shared" / "data"):
        if root and all((Path(root) / name / f).is_file() for f in datasets.FILES):
            return Path(root) / name
    return None


def write_tiny_data_set(folder, seed):
    """Four small IDX files: class k has a bright horizontal band at rows 2k..2k+3, over noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for prefix, n in (("train", 4096), ("t10k", 300)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 4 : 2 * k + 7, 4:24] = 255
        datasets.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        datasets.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in datasets.FILES}


@pytest.fixture(scope="module")
def data_folders(tmp_path_factory):
    """``{data set name: (folder, checksums to install or None)}``."""
    folders = {}
    for i, name in enumerate(NAMES.values()):
        real = real_data_folder(name)
        if real is not None:
            folders[name] = (real, None)
        else:
            folder = tmp_path_factory.mktemp("data") / name
            folders[name] = (folder, write_tiny_data_set(folder, seed=i))
    return folders


@pytest.fixture
def data(data_folders, monkeypatch):
    """``data(name) -> folder`` of that data set; tiny stand-ins get their checksums accepted."""
    def get(name):
        folder, checksums = data_folders[name]
        if checksums is not None:
            monkeypatch.setitem(datasets.CHECKSUMS, name, checksums)
        return str(folder)
    return get


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No MNIST anywhere: no TRACEJIT_DATA, an empty download cache, no mirrors."""
    monkeypatch.delenv("TRACEJIT_DATA", raising=False)
    monkeypatch.setattr(datasets, "cache_dir", lambda name: tmp_path / "cache" / name)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", ())
    return str(tmp_path / "empty")


def percent(pattern, text):
    """The percentage that follows ``pattern`` in ``text`` (the last one), as a fraction."""
    found = re.findall(pattern + r"\s*([\d.]+)%", text)
    assert found, f"no line matching {pattern!r} in:\n{text}"
    return float(found[-1]) / 100


def test_softmax_trains_eager_and_compiled_alike(data, capsys):
    example("mnist_softmax").main(["--data", data("mnist"), "--epochs", "1", "--limit", "4096"])
    out, err = capsys.readouterr()

    assert "data: MNIST, 4096 training" in out
    assert len(re.findall(r"gradient check: .* = (\S+) \(rtol 1e-5\) ok", out)) == 2, out
    eager, compiled = percent(r"\[eager\] test accuracy:", out), percent(r"\[compiled\] test accuracy:", out)
    assert eager > 0.8 and abs(eager - compiled) <= 0.002
    rel = float(re.search(r"max relative loss difference (\S+) over 32 steps \(rtol 1e-3\) ok", out).group(1))
    assert rel <= 1e-3
    assert re.search(r"speed-up: compiled is [\d.]+x faster than eager", out), out
    assert re.search(r"\[compiled\] epoch 1/1: 100%.* 32/32 .*loss [\d.]+", err), err  # the progress bar (tqdm)


def test_softmax_falls_back_to_sklearn_digits_without_mnist(offline, capsys):
    pytest.importorskip("sklearn")
    example("mnist_softmax").main(["--data", offline, "--epochs", "3", "--mode", "eager"])
    out, err = capsys.readouterr()

    assert "MNIST is not available" in err and "NOT MNIST" in err
    assert "data: sklearn 8x8 digits, 1437 training and 360 test images of 64 pixels" in out
    assert percent(r"\[eager\] test accuracy:", out) > 0.85


def test_softmax_without_mnist_or_sklearn_says_how_to_get_either(offline, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(SystemExit) as exit_info:
        example("mnist_softmax").main(["--data", offline, "--mode", "eager"])
    message = str(exit_info.value.code)
    assert "--data" in message and "TRACEJIT_DATA" in message and "tracejit[examples]" in message


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_mlp_trains(dataset, data, capsys):
    argv = ["--dataset", dataset, "--data", data(NAMES[dataset]), "--epochs", "1", "--limit", "1024"]
    losses = {}
    for mode in ("eager", "compiled"):
        example("mnist_mlp").main(argv + ["--mode", mode])
        out, _ = capsys.readouterr()
        line = re.search(r"epoch 1/1  train loss ([\d.]+)  test loss ([\d.]+)  test accuracy", out)
        assert line, out
        losses[mode] = [float(v) for v in line.groups()]
        assert percent("test accuracy:", out) > 0.6
        assert f"({mode} mode)" in out
    np.testing.assert_allclose(losses["compiled"], losses["eager"], atol=2e-4)  # 4 printed decimals
    # the Adam state keeps its signature from step to step: one trace for the whole run
    assert example("mnist_mlp").train_step.stats["retraces"] == []


def test_graph_tour_shows_graphs_and_source(capsys):
    example("graph_tour").main([])
    out, _ = capsys.readouterr()

    counts = [int(n) for n in re.findall(r"SGD step .*\((\d+) equations\)", out)]
    assert len(counts) == 2 and counts[1] < counts[0], counts  # optimisation removed equations
    assert "mul a b" in out and "def classic(" in out and "def sgd_step(" in out
    assert "gives [3. 5. 7. 9.]" in out
    assert re.search(r"traces: 1, cache hits: \d+, retraces: 0, compile time: [\d.]+ s, kernels: [1-9]", out), out


def test_flow_softmax_optimizer_and_gradients_assign_agree(data, capsys):
    results = example("flow_mnist_softmax").main(["--data", data("mnist"), "--steps", "100"])
    out, _ = capsys.readouterr()
    assert results["same_losses"] and "same losses at every step: True" in out
    assert results["accuracy"] > 0.8 and results["accuracy"] == results["hand_accuracy"]


@pytest.mark.long
def test_flow_lenet_trains(data, capsys):
    results = example("flow_lenet").main(["--data", data("mnist"), "--epochs", "1", "--limit", "2000"])
    out, _ = capsys.readouterr()
    assert "shape[conv2_weight]=[50, 20, 5, 5]" in out and "shape[fc1_weight]=[800, 500]" in out
    assert results["accuracy"] > 0.5, out
def test_data_parallel_example_runs_as_one_process(data, capsys):
    losses = example("mnist_data_parallel").main(
        ["--data", data("mnist"), "--steps", "3", "--limit", "1024", "--batch-size", "64", "--mode", "graph"])
    out, _ = capsys.readouterr()
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert "1 process: global batch 64 (64 per process), 3 steps" in out
    assert re.search(r"\[rank 0/1\] 3 steps in [\d.]+ s: [\d.]+ ms/step, [\d,]+ samples/s on this process; "
                     r"allreduce 0.000 s \(0.0% of the time, 0 calls\)", out), out
    assert "[rank 0/1] parameters identical to rank 0's" in out
