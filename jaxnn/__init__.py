"""jaxnn: the classic neural-network exercise (ex4) in JAX.

A fully connected network in the course's layout, its regularized cross-entropy, backpropagation
written by hand and checked against ``jax.grad`` and finite differences, trained with scipy's
L-BFGS, optax or the course's own ``fmincg``.

The names below are loaded on first use (PEP 562), so ``import jaxnn`` (and the ``jaxnn``
command's ``--help``) does not import JAX until something needs it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "sigmoid": "jaxnn.activations",
    "sigmoid_gradient": "jaxnn.activations",
    "backprop": "jaxnn.backprop",
    "GradientCheck": "jaxnn.gradcheck",
    "check_gradients": "jaxnn.gradcheck",
    "numerical_gradient": "jaxnn.gradcheck",
    "load_weights": "jaxnn.io",
    "save_weights": "jaxnn.io",
    "autodiff": "jaxnn.losses",
    "cost": "jaxnn.losses",
    "accuracy": "jaxnn.model",
    "debug_params": "jaxnn.model",
    "forward": "jaxnn.model",
    "init_params": "jaxnn.model",
    "layer_sizes": "jaxnn.model",
    "one_hot": "jaxnn.model",
    "predict": "jaxnn.model",
    "ravel_params": "jaxnn.model",
    "unravel_params": "jaxnn.model",
    "FitManyResult": "jaxnn.parallel.fit_many",
    "fit_many": "jaxnn.parallel.fit_many",
    "init_many": "jaxnn.parallel.members",
    "x64": "jaxnn.precision",
    "program_cache": "jaxnn.saved_programs",
    "set_program_cache": "jaxnn.saved_programs",
    "NetSpec": "jaxnn.spec",
    "FitResult": "jaxnn.train.trainer",
    "fit": "jaxnn.train.trainer",
}
# needs the optional scikit-learn: in dir(jaxnn), not in __all__ (so `import *` works without it)
_OPTIONAL = {"NeuralNetClassifier": "jaxnn.estimator"}
# every public submodule and subpackage, read from the package's directory (no list to keep)
_SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_"))

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name) or _OPTIONAL.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxnn.{name}")
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_OPTIONAL, *_SUBMODULES})


class _Package(types.ModuleType):
    """``jaxnn`` itself. Importing the submodule ``jaxnn.backprop`` would make the attribute
    ``jaxnn.backprop`` that module; the public name is the function, as it always was (the
    module stays importable by its dotted name)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
