"""Backpropagation written by hand: the course's delta rules, layer by layer.

No ``jax.grad``, ``jax.vjp`` or other derivative transformation is used here; JAX only compiles
the arithmetic. With ``a_0 = X`` and, for each layer, ``z_l = Theta_l[:, 1:] a_{l-1} +
Theta_l[:, 0]`` and ``a_l = g(z_l)``:

* output layer: ``delta_L = dJ/dz_L = (h - Y) / m`` for sigmoid outputs with the summed binary
  cross-entropy, ``(softmax(z_L) * rowsum(Y) - Y) / m`` for softmax (``= (h - Y)/m`` for one-hot
  targets), computed with the loss from the same exponentials (:func:`output_loss_and_delta`);
* affine layer (the backward rule of ``z = W a + b``): ``dTheta[:, 0] = sum_i delta_i``,
  ``dTheta[:, 1:] = delta a^T``, and the signal sent down is ``W^T delta``;
* activation: ``delta_{l-1} = (W_l^T delta_l) * g'(z_{l-1})``, with ``g'`` written through
  ``a_{l-1}`` (see :mod:`jaxnn.activations`);
* regularization: ``+ (lam / m) * Theta_l`` with the bias column left out.

Inside, activations, logits and deltas are held with one *column* per example (``(units, m)``,
the transpose of the course's ``(m, units)``), from the input to the output layer: then the two
large products, ``Theta1 X^T`` forward and ``delta_2 X`` backward, are plain row-major matrix
products, the fastest layout for XLA's CPU backend (about 20% faster per product than the other
orientations on the 400-25-10 net), and no intermediate is transposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxnn._validation import Params
from jaxnn.activations import get_activation
from jaxnn.losses import cast, penalty, prepare_problem

Array = jax.Array


def output_loss_and_delta(z_t: Array, Y_t: Array, output: str) -> tuple[Array, Array]:
    """The mean cross-entropy and ``delta_L = dJ/dz_L`` from the output logits, one column per
    example: ``z_t`` and the targets ``Y_t`` ``(K, m)``, delta ``(K, m)``.

    Sigmoid outputs: ``softplus(z) - y z`` and ``(sigmoid(z) - y) / m``, both from one
    ``e = exp(-|z|)``: ``softplus(z) = max(z, 0) + log1p(e)``, ``sigmoid(z) = 1/(1+e)`` for
    ``z >= 0`` and ``e/(1+e)`` below (no overflow for any finite ``z``). Softmax outputs:
    ``y (logsumexp(z) - z)`` and ``(softmax(z) * sum_k y_k - y) / m``, per column."""
    m = z_t.shape[1]
    if output == "sigmoid":
        e = jnp.exp(-jnp.abs(z_t))
        loss = jnp.maximum(z_t, 0) + jnp.log1p(e) - Y_t * z_t
        h = jnp.where(z_t >= 0, 1, e) / (1 + e)
        return jnp.sum(loss) / m, (h - Y_t) / m
    shifted = z_t - jnp.max(z_t, axis=0, keepdims=True)
    e = jnp.exp(shifted)
    total = jnp.sum(e, axis=0, keepdims=True)
    log_h = shifted - jnp.log(total)  # log softmax
    delta = (e / total) * jnp.sum(Y_t, axis=0, keepdims=True) - Y_t
    return -jnp.sum(Y_t * log_h) / m, delta / m


def affine_forward(theta: Array, a_t: Array) -> Array:
    """``z = Theta[:, 1:] a + Theta[:, 0]`` for ``a_t`` ``(n_in, m)``: ``z`` ``(n_out, m)``."""
    return theta[:, 1:] @ a_t + theta[:, :1]


def affine_backward(delta_t: Array, a: Array, theta: Array) -> tuple[Array, Array]:
    """Backward rule of :func:`affine_forward`.

    ``delta_t = dJ/dz`` ``(n_out, m)``; ``a`` the layer's input ``(m, n_in)``. Returns
    ``dJ/dTheta`` ``(n_out, 1 + n_in)`` and ``dJ/da`` as ``(n_in, m)``."""
    d_theta = jnp.concatenate([jnp.sum(delta_t, axis=1, keepdims=True), delta_t @ a], axis=1)
    return d_theta, theta[:, 1:].T @ delta_t


def penalty_grad(theta: Array, lam: ArrayLike, m: int) -> Array:
    """Gradient of ``lam/(2m) * sum(Theta[:, 1:]**2)``: ``(lam/m) Theta``, bias column zero."""
    return (lam / m) * theta.at[:, 0].set(0)


def backprop_arrays(params: Params, X: Array, Y: Array, lam: ArrayLike,
                    activation: str = "sigmoid", output: str = "sigmoid"
                    ) -> tuple[Array, Params]:
    """``(J, grads)`` for ``X`` ``(m, n_0)`` and targets ``Y`` ``(m, K)``. Traceable, no checks."""
    act = get_activation(activation)
    m = X.shape[0]
    # forward pass, keeping every layer's activation a_0 = X^T, a_1, ..., a_{L-1} as (units, m)
    acts_t = [X.T]
    for theta in params[:-1]:
        acts_t.append(act.fn(affine_forward(theta, acts_t[-1])))
    loss, delta_t = output_loss_and_delta(affine_forward(params[-1], acts_t[-1]), Y.T, output)
    J = loss + penalty(params, lam, m)
    # backward pass
    grads = []
    for layer in range(len(params) - 1, -1, -1):
        a = X if layer == 0 else acts_t[layer].T
        d_theta, d_a_t = affine_backward(delta_t, a, params[layer])
        grads.append(d_theta + penalty_grad(params[layer], lam, m))
        if layer > 0:
            delta_t = d_a_t * act.grad_from_output(acts_t[layer])
    return J, tuple(reversed(grads))


@partial(jax.jit, static_argnames=("activation", "output", "dtype"))
def _backprop(params, X, y, lam, activation, output, dtype):
    params, X, Y = cast(params, X, y, dtype)
    return backprop_arrays(params, X, Y, lam, activation, output)


def backprop(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: ArrayLike = 0.0,
    *,
    activation: str = "sigmoid",
    output: str = "sigmoid",
) -> tuple[Array, Params]:
    """``(J, grads)`` by the hand-written backward pass; ``grads`` mirrors ``params``.

    ``X`` ``(m, n_0)``; ``y`` integer labels ``(m,)`` or a target matrix ``(m, K)``. Same checks
    as :func:`jaxnn.cost`. Compiled once per shape, dtype, activation and output."""
    args = prepare_problem(params, X, y, lam, activation, output)
    return _backprop(*args[:4], activation, output, args[4])
