"""jaxnn: the classic neural-network exercise (ex4) in JAX.

A fully connected network in the course's layout, its regularized cross-entropy, backpropagation
written by hand and checked against ``jax.grad`` and finite differences, trained with scipy's
L-BFGS or optax.
"""

from jaxnn.activations import sigmoid, sigmoid_gradient
from jaxnn.backprop import backprop
from jaxnn.gradcheck import GradientCheck, check_gradients, numerical_gradient
from jaxnn.io import load_weights, save_weights
from jaxnn.losses import autodiff, cost
from jaxnn.model import (
    accuracy,
    debug_params,
    forward,
    init_params,
    layer_sizes,
    one_hot,
    predict,
    ravel_params,
    unravel_params,
)
from jaxnn.parallel import FitManyResult, fit_many, init_many
from jaxnn.precision import x64
from jaxnn.train import FitResult, fit

__version__ = "0.1.0"


def __getattr__(name: str):
    """``NeuralNetClassifier`` is imported on first use: it needs the optional scikit-learn."""
    if name == "NeuralNetClassifier":
        from jaxnn.estimator import NeuralNetClassifier

        return NeuralNetClassifier
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")


__all__ = [
    "FitManyResult",
    "FitResult",
    "GradientCheck",
    "NeuralNetClassifier",
    "accuracy",
    "autodiff",
    "backprop",
    "check_gradients",
    "cost",
    "debug_params",
    "fit",
    "fit_many",
    "forward",
    "init_many",
    "init_params",
    "layer_sizes",
    "load_weights",
    "numerical_gradient",
    "one_hot",
    "predict",
    "ravel_params",
    "save_weights",
    "sigmoid",
    "sigmoid_gradient",
    "unravel_params",
    "x64",
]
