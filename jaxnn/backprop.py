"""Backpropagation written by hand: the course's delta rules, layer by layer.

No ``jax.grad``, ``jax.vjp`` or other derivative transformation is used here; JAX only compiles
the arithmetic. With ``a_0 = X`` and, for each layer, ``z_l = Theta_l[:, 1:] a_{l-1} +
Theta_l[:, 0]`` and ``a_l = g(z_l)``:

* output layer: ``delta_L = dJ/dz_L = (h - Y) / m`` for sigmoid outputs with the summed binary
  cross-entropy, ``(softmax(z_L) * rowsum(Y) - Y) / m`` for softmax (``= (h - Y)/m`` for one-hot
  targets), computed with the loss from the same exponentials (the output's
  ``loss_and_delta`` in :mod:`jaxnn.outputs`);
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

from jaxnn.activations import get_activation
from jaxnn.checks import Params
from jaxnn.defaults import ACTIVATION, OUTPUT
from jaxnn.losses import cast, penalty, prepare_problem
from jaxnn.outputs import get_output

Array = jax.Array


def affine_forward(theta: Array, a_t: Array) -> Array:
    """``z = Theta[:, 1:] a + Theta[:, 0]`` for ``a_t`` ``(n_in, m)``: ``z`` ``(n_out, m)``."""
    return theta[:, 1:] @ a_t + theta[:, :1]


def affine_backward(delta_t: Array, a: Array, theta: Array) -> tuple[Array, Array]:
    """Backward rule of :func:`affine_forward`.

    ``delta_t = dJ/dz`` ``(n_out, m)``; ``a`` the layer's input ``(m, n_in)``. Returns
    ``dJ/dTheta`` ``(n_out, 1 + n_in)`` and ``dJ/da`` as ``(n_in, m)``."""
    d_theta = jnp.concatenate([jnp.sum(delta_t, axis=1, keepdims=True), delta_t @ a], axis=1)
    return d_theta, _weights_transposed(theta) @ delta_t


def _weights_transposed(theta: Array) -> Array:
    """``Theta[:, 1:]^T``; on CPU as an array of its own (the barrier keeps XLA from folding the
    transpose into the product): XLA:CPU gives a product with a transposed left operand to
    Eigen, whose first float32 product in a process has oneDNN generate its kernels (30-45 ms),
    and a row-major one to YNNPACK like backprop's other products (benchmarks/RESULTS.md).
    Elsewhere the transpose stays folded into the product (cuBLAS reads either layout)."""
    return jax.lax.platform_dependent(
        theta[:, 1:], cpu=lambda w: jax.lax.optimization_barrier(w.T), default=lambda w: w.T)


def penalty_grad(theta: Array, lam: ArrayLike, m: int) -> Array:
    """Gradient of ``lam/(2m) * sum(Theta[:, 1:]**2)``: ``(lam/m) Theta``, bias column zero."""
    return (lam / m) * theta.at[:, 0].set(0)


def backprop_arrays(params: Params, X: Array, Y: Array, lam: ArrayLike,
                    activation: str = ACTIVATION, output: str = OUTPUT
                    ) -> tuple[Array, Params]:
    """``(J, grads)`` for ``X`` ``(m, n_0)`` and targets ``Y`` ``(m, K)``. Traceable, no checks."""
    act = get_activation(activation)
    m = X.shape[0]
    # forward pass, keeping every layer's activation a_0 = X^T, a_1, ..., a_{L-1} as (units, m)
    acts_t = [X.T]
    for theta in params[:-1]:
        acts_t.append(act.fn(affine_forward(theta, acts_t[-1])))
    loss, delta_t = get_output(output).loss_and_delta(affine_forward(params[-1], acts_t[-1]), Y.T)
    J, delta_t = loss / m + penalty(params, lam, m), delta_t / m
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
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> tuple[Array, Params]:
    """``(J, grads)`` by the hand-written backward pass; ``grads`` mirrors ``params``.

    ``X`` ``(m, n_0)``; ``y`` integer labels ``(m,)`` or a target matrix ``(m, K)``. Same checks
    as :func:`jaxnn.cost`. Compiled once per shape, dtype, activation and output."""
    args = prepare_problem(params, X, y, lam, activation, output)
    return _backprop(*args[:4], activation, output, args[4])
