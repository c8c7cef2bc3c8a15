"""The names users choose things by: training methods, activations, outputs, gradients, pixel
orders; the types of such arguments (:data:`Order`, :data:`PathLike`); and how a count of things
reads (:func:`counted`).

Kept free of heavy imports (no JAX, no numpy) so that the ``jaxnn`` command can build its parser and
answer ``--help`` before JAX is imported. The registries that implement them
(:data:`jaxnn.activations.ACTIVATIONS`, :data:`jaxnn.outputs.OUTPUTS`) are keyed by exactly
these names, which a test checks.
"""

import os
from typing import Literal

SCIPY_METHODS = ("TNC", "CG", "BFGS")  # scipy.optimize.minimize
# whole loop compiled: scipy's L-BFGS-B (fit's default), optax's L-BFGS, the course's fmincg
COMPILED_METHODS = ("L-BFGS-B", "lbfgs", "fmincg")
MINIBATCH_METHODS = ("adam", "sgd")  # optax, mini-batches
METHODS = ("L-BFGS-B", *SCIPY_METHODS, "lbfgs", "fmincg", *MINIBATCH_METHODS)
MANY_METHODS = ("lbfgs", "fmincg", "adam", "sgd")  # what jaxnn.parallel.fit_many runs
#: what fit and fit_stream take as ``method`` besides the names
OPTAX_ALTERNATIVE = "pass an optax GradientTransformation"

ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("sigmoid", "softmax")
GRADS = ("backprop", "autodiff")
DTYPES = ("float32", "float64")  # the training precisions
ORDERS = ("C", "F")  # how an image is flattened: row-major, or column-major as Octave's X(:)
Order = Literal["C", "F"]
PathLike = str | os.PathLike[str]  # a file name wherever jaxnn reads or writes one


def counted(n: int, noun: str) -> str:
    """``"1 iteration"``, ``"400 iterations"``: ``n`` and ``noun``, plural unless ``n`` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
