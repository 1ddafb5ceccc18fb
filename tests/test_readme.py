"""README.md's code blocks that show output: run them and compare, so the README cannot drift.

A ```python block directly followed by a plain ``` block is an example and its printed output.
The examples run in order in one namespace (later ones use names of earlier ones) that starts
with ``np`` and ``tj`` imported, as the README's first block does; their standard output must
equal the block that follows, line for line (trailing spaces aside). Every python block, those
without output too (the training step reads MNIST), must run; that check needs the MNIST files
(``$TRACEJIT_DATA`` or ``../shared/data`` beside the repository) and is skipped without them.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = str(REPO / "README.md")
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)


def examples(text: str) -> list[tuple[int, str, str]]:
    """(line number, code, expected output) of each python block followed by an output block."""
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in _BLOCK.finditer(text)]
    found = []
    for (lang, code, start, end), (next_lang, output, next_start, _) in zip(blocks, blocks[1:]):
        if lang == "python" and next_lang == "" and not text[end:next_start].strip():
            found.append((text.count("\n", 0, start) + 1, code, output))
    return found


def _strip(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def test_the_parser_finds_examples_and_their_outputs():
    text = "a\n```python\nprint(1)\n```\n```\n1\n```\n\n```python\nx = 2\n```\ntext\n```\nnot output\n```\n"
    assert examples(text) == [(2, "print(1)\n", "1\n")]


def test_every_readme_example_prints_what_the_readme_shows():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    found = examples(text)
    assert len(found) >= 3, "README examples with output went missing"
    namespace = {}
    exec("import numpy as np\nimport tracejit as tj\n", namespace)  # noqa: S102 - the README's own imports
    for line, code, expected in found:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - README code
        if _strip(out.getvalue()) != _strip(expected):
            pytest.fail(f"README.md line {line}: the example prints\n{out.getvalue()}\nbut the README shows\n"
                        f"{expected}")


def test_every_readme_python_block_runs(monkeypatch):
    data = next((Path(root) for root in (os.environ.get("TRACEJIT_DATA"), REPO.parent / "shared" / "data")
                 if root and (Path(root) / "mnist").is_dir()), None)
    if data is None:
        pytest.skip("the README's training example needs MNIST: set TRACEJIT_DATA")
    monkeypatch.setenv("TRACEJIT_DATA", str(data))
    with open(README, encoding="utf-8") as f:
        text = f.read()
    blocks = [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _BLOCK.finditer(text) if m.group(1) == "python"]
    assert len(blocks) >= 4
    namespace = {}
    for line, code in blocks:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - README code
    assert namespace["l"] < 0.5  # the training step's last loss: it trained
