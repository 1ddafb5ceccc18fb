"""The front end's registrations: built from the definitions, listed in ``tj.numpy.__all__`` and in
the committed support table ``docs/numpy-support.md``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit.numpy import dispatch, supported

REPO = Path(__file__).resolve().parent.parent


def test_the_support_table_in_the_docs_is_up_to_date():
    committed = (REPO / "docs" / "numpy-support.md").read_text(encoding="utf-8")
    assert committed == supported.markdown(), \
        "docs/numpy-support.md is stale: python -m tracejit.numpy.supported > docs/numpy-support.md"


def test_every_registered_callable_has_one_row_and_every_definition_is_public():
    rows = supported.rows()
    listed = [name for row in rows for name in row["numpy"]]
    registered = [supported._name(f) for f in [*dispatch._UFUNCS, *dispatch._FUNCTIONS]]
    assert sorted(listed) == sorted(registered) and len(set(listed)) == len(listed)
    public = {fn for fn in dispatch._DEFINITIONS if not fn.__name__.startswith("_")}
    namespaces = [(tj.numpy, name) for name in tj.numpy.__all__] + [(tj.numpy.linalg, n) for n in tj.numpy.linalg.__all__]
    assert public <= {getattr(space, name) for space, name in namespaces}


def test_a_function_cannot_be_registered_twice():
    def made_up(a):  # stands for a NumPy function
        return a
    made_up.__module__ = "numpy"

    @dispatch.implements(made_up)
    def first(a):
        return a

    try:
        with pytest.raises(ValueError, match="np.made_up is implemented twice: by first and second"):
            @dispatch.implements(made_up)
            def second(a):
                return a
    finally:
        del dispatch._FUNCTIONS[made_up], dispatch._DEFINITIONS[first]


def test_all_lists_the_numpy_names_and_not_the_machinery():
    names = set(tj.numpy.__all__)
    assert {"sum", "amax", "abs", "divide", "matmul", "where", "take", "astype", "float32", "newaxis"} <= names
    assert not names & {"literal", "operator", "getitem", "setitem", "inplace_update", "apply_ufunc", "bind", "np"}
