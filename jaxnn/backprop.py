"""Backpropagation written by hand: the course's delta rules, layer by layer.

No ``jax.grad``, ``jax.vjp`` or other derivative transformation is used here; JAX only compiles
the arithmetic. With ``a_0 = X`` and, for each layer, ``z_l = a_{l-1} Theta_l[:, 1:]^T +
Theta_l[:, 0]`` and ``a_l = g(z_l)``:

* output layer: ``delta_L = dJ/dz_L = (h - Y) / m`` for sigmoid outputs with the summed binary
  cross-entropy, ``(softmax(z_L) * rowsum(Y) - Y) / m`` for softmax (``= (h - Y)/m`` for one-hot
  targets);
* affine layer (the backward rule of ``z = a W^T + b``): ``dTheta[:, 0] = sum_i delta_i``,
  ``dTheta[:, 1:] = delta^T a``, and the signal sent down is ``delta W``;
* activation: ``delta_{l-1} = (delta_l W_l) * g'(z_{l-1})``, with ``g'`` written through
  ``a_{l-1}`` (see :mod:`jaxnn.activations`);
* regularization: ``+ (lam / m) * Theta_l`` with the bias column left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxnn._validation import Params
from jaxnn.activations import get_activation
from jaxnn.losses import cast, data_loss, penalty, prepare_problem
from jaxnn.model import affine

Array = jax.Array


def output_delta(z: Array, Y: Array, output: str) -> Array:
    """``dJ/dz_L`` of the mean cross-entropy, shape ``(m, K)``."""
    m = z.shape[0]
    if output == "sigmoid":
        return (jax.nn.sigmoid(z) - Y) / m
    return (jax.nn.softmax(z, axis=1) * jnp.sum(Y, axis=1, keepdims=True) - Y) / m


def affine_backward(delta: Array, a: Array, theta: Array) -> tuple[Array, Array]:
    """Backward rule of ``z = a @ Theta[:, 1:].T + Theta[:, 0]``.

    ``delta = dJ/dz`` ``(m, n_out)``, ``a`` ``(m, n_in)``. Returns ``dJ/dTheta``
    ``(n_out, 1 + n_in)`` and ``dJ/da`` ``(m, n_in)``."""
    d_theta = jnp.concatenate([jnp.sum(delta, axis=0)[:, None], delta.T @ a], axis=1)
    return d_theta, delta @ theta[:, 1:]


def penalty_grad(theta: Array, lam: ArrayLike, m: int) -> Array:
    """Gradient of ``lam/(2m) * sum(Theta[:, 1:]**2)``: ``(lam/m) Theta``, bias column zero."""
    return (lam / m) * theta.at[:, 0].set(0)


def backprop_arrays(params: Params, X: Array, Y: Array, lam: ArrayLike,
                    activation: str = "sigmoid", output: str = "sigmoid"
                    ) -> tuple[Array, Params]:
    """``(J, grads)`` for float arrays and targets ``Y`` ``(m, K)``. Traceable, no checks."""
    act = get_activation(activation)
    m = X.shape[0]
    # forward pass, keeping every layer's activation a_0 = X, a_1, ..., a_{L-1}
    acts = [X]
    for theta in params[:-1]:
        acts.append(act.fn(affine(theta, acts[-1])))
    z = affine(params[-1], acts[-1])
    J = data_loss(z, Y, output) + penalty(params, lam, m)
    # backward pass
    delta = output_delta(z, Y, output)
    grads = []
    for layer in range(len(params) - 1, -1, -1):
        d_theta, d_a = affine_backward(delta, acts[layer], params[layer])
        grads.append(d_theta + penalty_grad(params[layer], lam, m))
        if layer > 0:
            delta = d_a * act.grad_from_output(acts[layer])
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
