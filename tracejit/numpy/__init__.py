"""``tj.numpy``: the NumPy-named front end that turns NumPy calls into primitives.

Layer: front end, between user code and ``ops``. Tracers route ``np.exp(t)``, ``t + 1``,
``np.mean(t, axis=0)`` ... here (through ``__array_ufunc__``/``__array_function__`` and
their operators, ``tracer.py``). Each function works out NumPy 2's result dtype (NEP 50:
Python scalars are weak), inserts explicit ``cast`` and ``broadcast_to`` equations, and binds
primitives. Called with plain arrays (no tracer among the arguments) the functions simply call
NumPy, so eager code is NumPy itself.

Anything with a data-dependent output shape (``np.nonzero``, ``np.unique``, boolean masks
computed from traced values) and any NumPy function not listed here raises
``UnsupportedError``: tracejit never falls back silently.

The modules, each importing only those before it:

- ``promotion`` -- operands, NEP 50 dtypes, broadcasting, conversion (``_to``, ``astype``);
- ``views`` -- which tracers are views of which, and in-place updates;
- ``dispatch`` -- the tables mapping NumPy's functions and ufuncs to the definitions, filled by
  ``@implements(np.name)`` on each definition, and the entry points of NumPy's protocols;
- ``shapes`` -- ``asarray``, reshapes, transposes, concatenation and stacking, tile, meshgrid,
  ``*_like``, refusals of data-dependent shapes;
- ``ufuncs`` -- elementwise primitives with promotion and broadcasting, ``where``, ``clip``, and
  the Python operators;
- ``reductions`` -- sum, mean, var, std, max, min, argmax, argmin, any, all;
- ``contractions`` -- matmul, dot, vdot, inner, outer, tensordot, einsum;
- ``indexing`` -- ``x[index]``, ``x[index] = v``, take, take_along_axis, pad, and what picks
  elements by position: flips, roll, splits, repeat, triangles, diagonals, trace, select, kron;
- ``sorting`` -- sort, argsort, partition, median, quantile, percentile;
- ``linalg`` -- ``np.linalg``: inv, solve, det, slogdet, cholesky, eigh, eigvalsh, svd, qr, pinv, norm.

Adding a NumPy function is one definition in the right module, decorated with
``@implements(np.name)``, and one spec in ``tests/op_specs.py``: the dispatch tables,
``__all__`` and the support table (``python -m tracejit.numpy.supported``) follow from it.
"""
from __future__ import annotations

import numpy as np

# NumPy names re-exported unchanged: dtypes, constants and array creation from shapes.
from numpy import (
    arange, bool_, complex64, complex128, e, empty, eye, float16, float32, float64, full, identity, inf, int8, int16,
    int32, int64, linspace, nan, newaxis, ones, pi, uint8, zeros,
)

from ..errors import ShapeError, TracerError, UnsupportedError
from .contractions import *  # noqa: F403  (each module's __all__: the definitions made there)
from .dispatch import _DEFINITIONS, _FUNCTIONS, _UFUNCS, _qualified_name, apply_function, apply_ufunc
from .indexing import *  # noqa: F403
from .indexing import getitem, setitem
from . import linalg  # ``tj.numpy.linalg.inv`` ..., as NumPy spells them (not star-imported)
from .promotion import _ELEMENTWISE_PLANS, _Literal, _ndarray0d, _scalar0d, astype, literal
from .reductions import *  # noqa: F403
from .shapes import *  # noqa: F403
from .sorting import *  # noqa: F403
from .ufuncs import *  # noqa: F403
from .ufuncs import operator
from .views import inplace_update

# The NumPy names tracejit supports: the definitions registered for NumPy functions and ufuncs
# (aliases too), ``astype`` (the ndarray method), and NumPy's own objects re-exported above.
_NOT_IN_NUMPY = object()
__all__ = sorted(name for name, value in list(globals().items())
                 if not name.startswith("_") and (name == "astype" or value is getattr(np, name, _NOT_IN_NUMPY)
                                                  or callable(value) and value in _DEFINITIONS)) + ["linalg"]
