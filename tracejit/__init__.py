"""tracejit: write training code as plain NumPy; run it eagerly, or traced and compiled.

>>> import numpy as np, tracejit as tj
>>> @tj.trace
... def f(x):
...     return np.tanh(x) * 2
>>> f(np.ones(3, np.float32))
array([1.5231884, 1.5231884, 1.5231884], dtype=float32)

See ``README.md`` for the tour and ``ARCHITECTURE.md`` for how the pieces fit.
"""
from . import numpy  # imports (and so registers) the primitives in ``ops`` first
from . import distributed, nn, optim, transforms
from .autodiff import grad, stop_gradient, value_and_grad, vjp
from .check import MismatchError
from .core import Aval, Const, Eqn, Graph, Var, verify
from .errors import ConcretizationError, ShapeError, TracerError, UnsupportedError
from .interpret import interpret
from .explain import explain
from .forward import jvp, linearize
from .jacobians import elementwise_grad, hessian, hvp, jacfwd, jacobian, jacrev
from .vectorize import vmap
from .jit import Traced, trace
from .tiers import block_until_compiled
from .log import set_log
from .modes import get_mode, mode, set_mode
from .primitives import defop, registry as primitives

__version__ = "0.1.0"

__all__ = [
    "trace", "Traced", "block_until_compiled", "grad", "value_and_grad", "vjp", "stop_gradient", "mode", "set_mode", "get_mode",
    "jvp", "linearize", "jacfwd", "jacrev", "jacobian", "hessian", "hvp", "elementwise_grad", "vmap",
    "numpy", "nn", "optim", "distributed", "datasets", "transforms", "bench", "set_log", "explain",
    "Graph", "Aval", "Var", "Const", "Eqn", "verify", "interpret", "defop", "primitives",
    "TracerError", "ConcretizationError", "UnsupportedError", "ShapeError", "MismatchError",
]

# Imported on first use (``tj.bench``, ``tj.datasets``, ``from tracejit import bench``): tracing and
# compiling need neither, and together they are about a fifth of the package's import time
# (the harness and its workloads; ``datasets`` pulls in ``http.client`` and ``urllib``).
_LAZY_SUBMODULES = ("bench", "datasets")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")  # also binds it here, so this runs once
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
