"""Hidden-layer activations, each next to its hand-written derivative.

Every derivative is written in terms of the activation's *output* ``a = g(z)`` (or of ``a``'s
sign for ReLU), which backprop already holds from the forward pass, so no activation is
recomputed on the way back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxnn.checks import check_choice, real_floats

Array = jax.Array


def sigmoid(z: ArrayLike) -> Array:
    """The logistic function ``1 / (1 + exp(-z))``, elementwise and overflow-free; integers
    (``sigmoid(0)``) are taken in JAX's default float."""
    return jax.nn.sigmoid(real_floats(z, "z"))


def sigmoid_gradient(z: ArrayLike) -> Array:
    """``g'(z) = g(z) (1 - g(z))`` for the sigmoid ``g``, elementwise (the course's
    ``sigmoidGradient``)."""
    g = sigmoid(z)
    return g * (1 - g)


class Activation(NamedTuple):
    """A hidden activation ``a = fn(z)`` and its derivative ``da/dz`` expressed through ``a``."""

    fn: Callable[[Array], Array]
    grad_from_output: Callable[[Array], Array]


ACTIVATIONS: dict[str, Activation] = {
    # sigmoid: g'(z) = a (1 - a)
    "sigmoid": Activation(jax.nn.sigmoid, lambda a: a * (1 - a)),
    # tanh: g'(z) = 1 - a^2
    "tanh": Activation(jnp.tanh, lambda a: 1 - a * a),
    # relu: g'(z) = 1 where z > 0 (equivalently a > 0), else 0 (0 at the kink, like jax.nn.relu)
    "relu": Activation(jax.nn.relu, lambda a: (a > 0).astype(a.dtype)),
}

def get_activation(name: str) -> Activation:
    """Look up a hidden activation by name, with an error that lists the choices."""
    return ACTIVATIONS[check_choice(name, list(ACTIVATIONS), "activation")]
