"""``NetSpec``: the network's shape and options as one hashable, static value.

The training loops, ``fit_many`` and the streaming trainer work on the unrolled parameter vector
``theta`` (Octave order, :func:`jaxnn.ravel_params`). What they need to know about the network
(layer sizes, hidden activation, output layer, and which gradient to use) travels as one
``NetSpec``, passed to ``jit`` as a single static argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from jax.typing import ArrayLike

from jaxnn.activations import get_activation
from jaxnn.backprop import backprop_arrays
from jaxnn.checks import check_grad, check_sizes
from jaxnn.defaults import ACTIVATION, GRAD, OUTPUT
from jaxnn.losses import regularized_cost
from jaxnn.model import ravel_params, unravel_params
from jaxnn.outputs import get_output

Array = jax.Array


@dataclass(frozen=True)
class NetSpec:
    """Layer sizes ``(n_0, ..., K)``, hidden ``activation``, ``output`` layer and ``grad``
    (``"backprop"``: the hand-written backward pass; ``"autodiff"``: ``jax.value_and_grad``).

    Frozen and hashable: a static argument of ``jit``. Checked on construction."""

    sizes: tuple[int, ...]
    activation: str = ACTIVATION
    output: str = OUTPUT
    grad: str = GRAD

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", check_sizes(self.sizes))
        get_activation(self.activation)
        get_output(self.output)
        check_grad(self.grad)

    @property
    def n_params(self) -> int:
        """Length of the unrolled vector: ``sum n_{l+1} (1 + n_l)``."""
        s = self.sizes
        return sum(o * (1 + i) for i, o in zip(s[:-1], s[1:], strict=True))

    def unravel(self, theta: ArrayLike) -> tuple:
        """``theta`` ``(..., n)`` back to ``(Theta1, ..., ThetaL)`` (numpy stays numpy)."""
        return unravel_params(theta, self.sizes)

    def cost(self, theta: Array, X: Array, Y: Array, lam: ArrayLike) -> Array:
        """The regularized cost at ``theta`` ``(n,)`` for ``X`` ``(m, n_0)``, targets ``Y``
        ``(m, K)``. Traceable; no checks."""
        return regularized_cost(self.unravel(theta), X, Y, lam, self.activation, self.output)

    def value_and_grad(self, theta: Array, X: Array, Y: Array, lam: ArrayLike
                       ) -> tuple[Array, Array]:
        """``(J, g)``: the cost and its gradient, ``g`` unrolled like ``theta``, by the chosen
        ``grad``. Traceable; no checks: ``jit`` and ``vmap`` it freely."""
        params = self.unravel(theta)
        if self.grad == "backprop":
            J, g = backprop_arrays(params, X, Y, lam, self.activation, self.output)
        else:
            J, g = jax.value_and_grad(regularized_cost)(params, X, Y, lam, self.activation,
                                                        self.output)
        return J, ravel_params(g)

    def differentiable_cost(self):  # noqa: ANN201 - a jax.custom_vjp function
        """``cost(theta, X, Y, lam) -> J`` whose JAX derivative in ``theta`` is the chosen
        gradient.

        With ``grad="backprop"`` the function carries a ``custom_vjp`` whose forward rule runs
        the hand-written backward pass once and whose backward rule scales the saved gradient,
        so that ``jax.value_and_grad`` of it (as optax's line searches call it, for a user who
        drives optax directly) costs one backprop and returns the hand-written gradient.
        ``X``, ``Y`` and ``lam`` get no derivative."""
        if self.grad == "autodiff":
            return self.cost

        @jax.custom_vjp
        def cost(theta, X, Y, lam):
            return self.cost(theta, X, Y, lam)

        def fwd(theta, X, Y, lam):
            return self.value_and_grad(theta, X, Y, lam)

        def bwd(g, ct):
            return ct * g, None, None, None

        cost.defvjp(fwd, bwd)
        return cost
