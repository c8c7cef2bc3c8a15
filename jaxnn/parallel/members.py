"""Members of a batch of networks: the params pytree with a leading axis ``B`` on every
``Theta``.

``(Theta1 (B, n_1, 1 + n_0), Theta2 (B, n_2, 1 + n_1), ...)``, as made by :func:`init_many`
and trained by :func:`jaxnn.parallel.fit_many`. Here: making such a batch, taking a member out,
and evaluating and combining all members at once (one ``vmap``-ed, compiled call):
:func:`evaluate_many` (cost and accuracy of each), :func:`ensemble_proba` and
:func:`ensemble_predict` (the members' averaged probabilities). Exported by
:mod:`jaxnn.parallel`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxnn.activations import get_activation
from jaxnn.checks import Params, check_sizes, positive_int
from jaxnn.defaults import ACTIVATION, INIT_EPSILON, OUTPUT
from jaxnn.losses import prepare_problem, regularized_cost, targets
from jaxnn.memory import check_memory, param_count
from jaxnn.model import init_params, logits, prepare, prng_key, probabilities, weights_dtype
from jaxnn.outputs import get_output

__all__ = ["ensemble_predict", "ensemble_proba", "evaluate_many", "init_many", "member"]

Array = jax.Array


# --- making a batch and taking it apart ---------------------------------------------------------


def init_many(
    key: int | Array,
    n: int,
    layer_sizes: Sequence[int],
    epsilon: float = INIT_EPSILON,
    dtype: DTypeLike | None = None,
) -> Params:
    """``n`` networks initialized as by :func:`jaxnn.init_params`, stacked on a leading axis.

    Member ``i`` is ``init_params(jax.random.split(key, n)[i], layer_sizes, epsilon, dtype)``
    (``key``: a JAX PRNG key or an int seed). Returns ``Theta_l`` of shape
    ``(n, n_{l+1}, 1 + n_l)``."""
    n = positive_int(n, "n")
    sizes = check_sizes(layer_sizes)
    count = param_count(sizes)
    # init_params's rule for one network (its weights and what drawing them holds), n times
    check_memory(4 * n * count * weights_dtype(dtype).itemsize,
                 f"init_many: {n:,} networks of layer_sizes {sizes} ({count:,} weights each)",
                 hint="reduce n or layer_sizes")
    keys = jax.random.split(prng_key(key), n)
    if n <= 32:  # a few calls reuse init_params's compiled pieces; compiling vmap costs seconds
        members = [init_params(k, sizes, epsilon, dtype) for k in keys]
        return tuple(jnp.stack(layer) for layer in zip(*members, strict=True))
    init_params(keys[0], sizes, epsilon, dtype)  # argument checks, with clear errors
    return _init_many(keys, sizes, float(epsilon), weights_dtype(dtype))


@partial(jax.jit, static_argnames=("sizes", "epsilon", "dtype"))
def _init_many(keys: Array, sizes: tuple[int, ...], epsilon: float, dtype) -> Params:
    """The same values as a loop of init_params over ``keys`` (vmap does not change them)."""
    return jax.vmap(lambda k: init_params(k, sizes, epsilon, dtype))(keys)


def member(params_batch: Sequence[ArrayLike], i: int) -> Params:
    """Network ``i`` of a batch: ``tuple(Theta[i] for Theta in params_batch)``; ``i`` in
    ``0..B-1``, or ``-B..-1`` counting from the end as Python's indexing does."""
    i = member_index(i, n_networks(params_batch))
    return tuple(jnp.asarray(t)[i] if not isinstance(t, np.ndarray) else t[i]
                 for t in params_batch)


def member_index(i: object, B: int, name: str = "i") -> int:
    """``i`` as the index of one of ``B`` networks (JAX would clamp an index out of range to
    the last network, silently)."""
    try:  # an int, a numpy int, a 0-d integer array (jnp.argmin's): what indexing takes
        index = None if isinstance(i, bool | np.bool_) else operator.index(i)
    except TypeError:
        index = None
    if index is None or not -B <= index < B:
        raise ValueError(f"{name} must be a network's index in 0..{B - 1} (or -{B}..-1 from the "
                         f"end), got {i if index is None else index!r}")
    return index


def n_networks(params_batch: object, name: str = "params_batch") -> int:
    """Check that ``params_batch`` is a sequence of 3-D arrays with one common leading axis."""
    if isinstance(params_batch, dict) or not isinstance(params_batch, Sequence) \
            or isinstance(params_batch, str) or len(params_batch) == 0:
        raise ValueError(
            f"{name} must be a tuple of arrays (Theta1, Theta2, ...) each with a leading batch "
            f"axis, e.g. from jaxnn.parallel.init_many; got {type(params_batch).__name__}"
        )
    shapes = [tuple(np.shape(t)) for t in params_batch]
    for i, s in enumerate(shapes):
        if len(s) != 3:
            raise ValueError(
                f"{name}[{i}] (Theta{i + 1}) must be 3-D (B, n_out, 1 + n_in), a batch of "
                f"networks, got shape {s}; for one network use jaxnn.fit"
            )
    B = {s[0] for s in shapes}
    if len(B) != 1:
        raise ValueError(f"{name} has different batch sizes {[s[0] for s in shapes]} on its "
                         "Thetas; every Theta needs the same leading axis B")
    B = B.pop()
    if B < 1:
        raise ValueError(f"{name} holds no networks (B = 0)")
    return B


# --- evaluating and combining batches -----------------------------------------------------------


@partial(jax.jit, static_argnames=("activation", "output"))
def _evaluate_many(params_batch, X, Y, y, lam, activation, output):
    def one(params):  # the cost's one formula; XLA computes the logits once for both
        correct = jnp.sum(jnp.argmax(logits(params, X, activation), axis=1) == y)
        return regularized_cost(params, X, Y, lam, activation, output), correct

    return jax.vmap(one)(params_batch)


def evaluate_many(
    params_batch: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: float = 0.0,
    *,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> dict[str, np.ndarray]:
    """Cost and accuracy of every network of a batch on ``(X, y)``.

    ``y``: integer labels ``(m,)``. Returns ``{"cost": (B,), "accuracy": (B,)}`` where
    ``cost[i] == jaxnn.cost(member i, X, y, lam)`` (``lam=0`` by default: the data loss alone,
    the usual figure for training and validation curves)."""
    n_networks(params_batch)  # the batch's shapes, with clear errors
    member0 = tuple(t[0] for t in params_batch)
    p0, Xc, yc, lam, dt = prepare_problem(member0, X, y, lam, activation, output)
    if np.ndim(yc) != 1:
        raise ValueError("evaluate_many needs integer labels y of shape (m,), not a target "
                         "matrix")
    K = p0[-1].shape[0]
    pb = tuple(jnp.asarray(t, dt) for t in params_batch)
    yd = jnp.asarray(yc)
    J, acc = _evaluate_many(pb, jnp.asarray(Xc, dt), targets(yd, K, dt), yd,
                            jnp.asarray(lam, dt), activation, output)
    # exact, as jaxnn.accuracy: integer counts divided on the host
    return {"cost": np.asarray(J, np.float64),
            "accuracy": np.asarray(acc, np.int64) / int(yd.shape[0])}


@partial(jax.jit, static_argnames=("activation", "output"))
def _ensemble_proba(params_batch, X, weights, activation, output):
    probs = jax.vmap(lambda p: probabilities(logits(p, X, activation), output))(params_batch)
    return jnp.tensordot(weights, probs, axes=1)


def ensemble_proba(
    params_batch: Sequence[ArrayLike],
    X: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> Array:
    """Averaged class probabilities ``(m, K)`` of a batch of networks: ``sum_i w_i h_i(X)``
    with ``h_i = jaxnn.forward(member i, X)`` and weights ``w`` ``(B,)`` (default uniform,
    normalized to sum 1)."""
    B = n_networks(params_batch)
    get_activation(activation), get_output(output)
    p0, Xc, dt = prepare(tuple(t[0] for t in params_batch), X)
    if weights is None:
        w = np.full(B, 1.0 / B)
    else:
        try:
            w = np.asarray(weights, np.float64)
        except (TypeError, ValueError):
            w = None  # not numbers
        if w is None or w.shape != (B,) or not np.all(np.isfinite(w)) or np.any(w < 0) \
                or w.max() == 0:
            raise ValueError(f"weights must be {B} finite numbers >= 0 with a positive sum, "
                             f"got {weights!r}")
        w = w / w.max()  # first: the sum of weights near the largest float would overflow
        w = w / w.sum()
    pb = tuple(jnp.asarray(t, dt) for t in params_batch)
    return _ensemble_proba(pb, jnp.asarray(Xc, dt), jnp.asarray(w, dt), activation, output)


def ensemble_predict(params_batch: Sequence[ArrayLike], X: ArrayLike, **kw: Any) -> Array:
    """Labels ``(m,)`` of the ensemble: argmax of :func:`ensemble_proba`."""
    return jnp.argmax(ensemble_proba(params_batch, X, **kw), axis=1)
