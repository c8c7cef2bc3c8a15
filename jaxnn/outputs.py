"""Output layers, each with its loss, its probabilities and its backward rule, in one entry.

An output layer turns the last layer's logits ``z`` into class probabilities and defines the
per-example cross-entropy. Every rule works from the logits (log-sigmoid, logsumexp): no
clipping, finite for any finite input. A new output is one entry of :data:`OUTPUTS`;
:func:`jaxnn.model.forward`, :func:`jaxnn.cost`, :func:`jaxnn.backprop` and the estimator all
read it from here.

* ``"sigmoid"`` (the course's): ``K`` independent logistic units; per example
  ``sum_k softplus(z_k) - y_k z_k`` (= ``-y log h - (1-y) log(1-h)``), ``dloss/dz = h - y``.
* ``"softmax"``: ``sum_k y_k (logsumexp(z) - z_k)``, ``dloss/dz = softmax(z) sum_k y_k - y``
  (``= h - y`` for one-hot targets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnn.checks import check_choice

Array = jax.Array


class Output(NamedTuple):
    """One output layer. ``z``, ``Y``: logits and targets with one *row* per example
    ``(m, K)``; ``z_t``, ``Y_t``: the same with one *column* per example ``(K, m)`` (the layout
    of :func:`jaxnn.backprop.backprop_arrays`)."""

    #: ``loss(z, Y) -> (m,)``: each example's cross-entropy.
    loss: Callable[[Array, Array], Array]
    #: ``probabilities(z) -> (m, K)``: what :func:`jaxnn.forward` returns.
    probabilities: Callable[[Array], Array]
    #: ``normalized(z) -> (m, K)``: probabilities rescaled so each row sums to one
    #: (``predict_proba`` of the estimator).
    normalized: Callable[[Array], Array]
    #: ``loss_and_delta(z_t, Y_t) -> (sum of the losses, dloss_i/dz_i (K, m))``: the backward
    #: rule, from the same exponentials as the loss.
    loss_and_delta: Callable[[Array, Array], tuple[Array, Array]]


# --- sigmoid ------------------------------------------------------------------------------------


def _sigmoid_loss(z: Array, Y: Array) -> Array:
    return jnp.sum(jax.nn.softplus(z) - Y * z, axis=-1)


def _sigmoid_loss_and_delta(z_t: Array, Y_t: Array) -> tuple[Array, Array]:
    # softplus(z) = max(z, 0) + log1p(e) and sigmoid(z) = 1/(1+e) (z >= 0) or e/(1+e) (z < 0),
    # both from one e = exp(-|z|): no overflow for any finite z
    e = jnp.exp(-jnp.abs(z_t))
    loss = jnp.maximum(z_t, 0) + jnp.log1p(e) - Y_t * z_t
    h = jnp.where(z_t >= 0, 1, e) / (1 + e)
    return jnp.sum(loss), h - Y_t


def _sigmoid_normalized(z: Array) -> Array:
    # sigmoid(z_k) / sum_j sigmoid(z_j) as softmax(log_sigmoid(z)): no 0/0 when all underflow
    return jax.nn.softmax(jax.nn.log_sigmoid(z), axis=-1)


# --- softmax ------------------------------------------------------------------------------------


def _softmax_loss(z: Array, Y: Array) -> Array:
    return jnp.sum(Y * (jax.nn.logsumexp(z, axis=-1, keepdims=True) - z), axis=-1)


def _softmax_loss_and_delta(z_t: Array, Y_t: Array) -> tuple[Array, Array]:
    shifted = z_t - jnp.max(z_t, axis=0, keepdims=True)
    e = jnp.exp(shifted)
    total = jnp.sum(e, axis=0, keepdims=True)
    log_h = shifted - jnp.log(total)  # log softmax
    delta = (e / total) * jnp.sum(Y_t, axis=0, keepdims=True) - Y_t
    return -jnp.sum(Y_t * log_h), delta


def _softmax(z: Array) -> Array:
    return jax.nn.softmax(z, axis=-1)


OUTPUTS: dict[str, Output] = {
    "sigmoid": Output(_sigmoid_loss, jax.nn.sigmoid, _sigmoid_normalized,
                      _sigmoid_loss_and_delta),
    "softmax": Output(_softmax_loss, _softmax, _softmax, _softmax_loss_and_delta),
}


def get_output(name: str) -> Output:
    """Look up an output layer by name, with an error that lists the choices."""
    return OUTPUTS[check_choice(name, list(OUTPUTS), "output")]
