"""``NeuralNetClassifier``: the network as a scikit-learn estimator, over :func:`jaxnn.fit`.

Needs scikit-learn (``pip install 'jaxnn[sklearn]'``); ``import jaxnn`` does not import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import numpy as np

from jaxnn.checks import (
    check_dtype,
    check_epsilon,
    check_hidden,
    check_X_representable,
    positive_int,
)
from jaxnn.defaults import ACTIVATION, GRAD, HIDDEN, INIT_EPSILON, LAM, MAXITER, METHOD, OUTPUT
from jaxnn.extras import install_hint, require
from jaxnn.memory import check_memory, param_count
from jaxnn.model import logits
from jaxnn.names import DTYPES
from jaxnn.outputs import get_output
from jaxnn.precision import x64_when
from jaxnn.train.trainer import FitResult, fit

require("jaxnn.NeuralNetClassifier", "sklearn", extra="sklearn")
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.preprocessing import LabelEncoder  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils.multiclass import check_classification_targets  # noqa: E402

try:  # jaxnn's metadata holds the floor; a source tree never installed has none to check
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - scikit-learn < 1.6 outside an install
    raise ImportError(f"jaxnn.NeuralNetClassifier needs scikit-learn >= 1.6 ({exc}): "
                      f"{install_hint('sklearn')}", name="sklearn") from exc

__all__ = ["NeuralNetClassifier"]


@partial(jax.jit, static_argnames=("activation", "output"))
def _proba(params: tuple[jax.Array, ...], X: jax.Array, activation: str, output: str
           ) -> jax.Array:
    """Rows summing to one: ``softmax(z)``, or for sigmoid outputs ``sigmoid(z_k) / sum_j
    sigmoid(z_j)`` computed as ``softmax(log_sigmoid(z))`` (no 0/0 when every output
    underflows)."""
    return get_output(output).normalized(logits(params, X, activation))


class NeuralNetClassifier(ClassifierMixin, BaseEstimator):
    """A fully connected network trained by :func:`jaxnn.fit`, with scikit-learn's interface.

    The network is ``(n_features, *hidden_layer_sizes, n_classes)`` with one output unit per
    class (two for a binary problem), initialized uniformly in ``[-epsilon, epsilon]`` (as
    :func:`jaxnn.init_params`, but drawn by numpy from ``random_state``), and trained to
    minimize jaxnn's regularized cost: the course's per-class sigmoid cross-entropy
    (``output="sigmoid"``) or the softmax cross-entropy, plus ``lam/(2m)`` times the sum of
    squared non-bias weights (scikit-learn's ``MLPClassifier(alpha=lam)`` puts the same penalty
    on its averaged loss). Labels may be any values: they are encoded as ``0..K-1`` in the
    order of ``classes_``.

    ``predict_proba`` returns rows that sum to one: with ``output="softmax"`` the softmax; with
    the course's ``"sigmoid"`` output the K independent sigmoid outputs divided by their sum.
    ``predict`` is the class of the largest output either way.

    Parameters:
        hidden_layer_sizes: units per hidden layer (an int for one layer; ``()`` for none).
        lam: the L2 penalty (>= 0).
        activation: hidden activation, ``"sigmoid"``, ``"tanh"`` or ``"relu"``.
        output: ``"sigmoid"`` (the course's) or ``"softmax"``.
        method: a :func:`jaxnn.fit` method (``"L-BFGS-B"``, ``"lbfgs"``, ``"adam"``, ...).
        max_iter: iterations (epochs for adam/sgd).
        tol: convergence tolerance passed to :func:`jaxnn.fit` (None: the method's default).
        grad: ``"backprop"`` or ``"autodiff"``.
        learning_rate, batch_size: for adam/sgd (None: fit's defaults; full batch).
        epsilon: half-width of the uniform initialization.
        dtype: ``"float32"`` (default) or ``"float64"`` (runs under :func:`jaxnn.x64`).
        random_state: None, an int or a ``numpy.random.RandomState``: initial weights and the
            mini-batch shuffling.

    Attributes:
        classes_: the labels, sorted. n_features_in_: input width.
        params_: the trained ``(Theta1, ..., ThetaL)`` (numpy, in the course's layout).
        loss_: final cost. loss_curve_: cost after each iteration (a list, as scikit-learn's).
        n_iter_: iterations done. result_: the :class:`jaxnn.FitResult`.
    """

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = HIDDEN,
        lam: float = LAM,
        *,
        activation: str = ACTIVATION,
        output: str = OUTPUT,
        method: str = METHOD,
        max_iter: int = MAXITER,
        tol: float | None = None,
        grad: str = GRAD,
        learning_rate: float | None = None,
        batch_size: int | None = None,
        epsilon: float = INIT_EPSILON,
        dtype: str = DTYPES[0],
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.lam = lam
        self.activation = activation
        self.output = output
        self.method = method
        self.max_iter = max_iter
        self.tol = tol
        self.grad = grad
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epsilon = epsilon
        self.dtype = dtype
        self.random_state = random_state

    # --- helpers ------------------------------------------------------------------------------

    def _hidden(self) -> tuple[int, ...]:
        return check_hidden(self.hidden_layer_sizes, "hidden_layer_sizes")

    def _precision(self) -> contextlib.AbstractContextManager:
        return x64_when(check_dtype(self.dtype, allow_none=False))

    def _init_params(self, rng: np.random.RandomState, sizes: tuple[int, ...]
                     ) -> tuple[np.ndarray, ...]:
        """Uniform in ``[-epsilon, epsilon]`` (the course's ``randInitializeWeights``), drawn
        with numpy from ``random_state`` (no JAX compilation per network shape)."""
        eps = check_epsilon(self.epsilon, self.dtype)
        check_memory(2 * param_count(sizes) * np.dtype(self.dtype).itemsize,
                     f"NeuralNetClassifier: layer sizes {sizes}", hint="use smaller layers",
                     device="host")
        return tuple(rng.uniform(-eps, eps, size=(n_out, 1 + n_in)).astype(self.dtype)
                     for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True))

    # --- scikit-learn API -----------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> NeuralNetClassifier:
        """Train on ``X`` ``(m, n_features)`` and labels ``y`` ``(m,)``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"NeuralNetClassifier needs at least 2 classes in y; got 1 class "
                f"({encoder.classes_[0]!r})"
            )
        sizes = (X.shape[1], *self._hidden(), len(encoder.classes_))
        positive_int(self.max_iter, "max_iter")
        precision = self._precision()  # checks dtype
        try:
            rng = check_random_state(self.random_state)
        except ValueError:  # numpy's "Seed must be between 0 and 2**32 - 1", unnamed
            raise ValueError("random_state must be None, an integer in [0, 2**32 - 1] or a "
                             f"numpy.random.RandomState, got {self.random_state!r}") from None
        params = self._init_params(rng, sizes)
        shuffle_seed = int(rng.randint(0, 2**31 - 1))
        extra = {k: v for k, v in (("tol", self.tol), ("learning_rate", self.learning_rate),
                                   ("batch_size", self.batch_size)) if v is not None}
        if not isinstance(self.method, str) or self.method in ("adam", "sgd"):
            extra["seed"] = shuffle_seed
        with precision:
            result = fit(params, X, encoder.transform(y).astype(np.int32), self.lam,
                         method=self.method, maxiter=self.max_iter, grad=self.grad,
                         activation=self.activation, output=self.output, dtype=self.dtype,
                         **extra)
        self.classes_ = encoder.classes_
        self.params_ = result.params
        self.loss_ = result.cost
        self.loss_curve_ = result.history.tolist()
        self.n_iter_ = result.n_iter
        self.result_: FitResult = result
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(m, n_classes)``, rows summing to one, columns in the order
        of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        with self._precision():
            dtype = np.dtype(self.params_[0].dtype)
            check_X_representable(X, dtype)  # else NaN probabilities, and class 0 predicted
            p = np.asarray(_proba(self.params_, X.astype(dtype, copy=False), self.activation,
                                  self.output), np.float64)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Labels ``(m,)``: the class with the largest probability."""
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(proba, axis=1)]
