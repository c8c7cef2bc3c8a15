"""The training objective on the unrolled parameter vector, and the scipy bridge around it.

Everything here works on ``theta``, the Octave-order vector ``[Theta1(:); Theta2(:); ...]`` of
length ``n = sum n_{l+1} (1 + n_l)``, with ``X`` ``(m, n_0)`` and a target matrix ``Y`` ``(m, K)``
already on the device. The pure functions are traceable (``jit``, ``vmap``); the
:class:`ScipyObjective` is the host-side callable that ``scipy.optimize.minimize`` drives.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.backprop import backprop_arrays
from jaxnn.losses import regularized_cost
from jaxnn.model import ravel_params, unravel_params

Array = jax.Array
GRADS = ("backprop", "autodiff")


def check_grad(grad: str) -> str:
    if grad not in GRADS:
        raise ValueError(f"grad={grad!r} is not supported; choose one of {list(GRADS)}")
    return grad


def value_and_grad_flat(
    theta: Array,
    X: Array,
    Y: Array,
    lam: ArrayLike,
    *,
    sizes: tuple[int, ...],
    activation: str = "sigmoid",
    output: str = "sigmoid",
    grad: str = "backprop",
) -> tuple[Array, Array]:
    """``(J, g)``: the regularized cost and its gradient on the unrolled vector.

    ``theta`` ``(n,)`` in Octave order for ``sizes``, ``X`` ``(m, n_0)``, ``Y`` ``(m, K)`` a
    target matrix, ``lam`` a scalar. ``J`` is a scalar, ``g`` has the shape of ``theta``. With
    ``grad="backprop"`` the hand-written backward pass (:func:`jaxnn.backprop.backprop_arrays`),
    with ``"autodiff"`` ``jax.value_and_grad`` of :func:`jaxnn.losses.regularized_cost`.
    Pure and traceable: no checks, no casts; ``jit`` and ``vmap`` it freely."""
    params = unravel_params(theta, sizes)
    if check_grad(grad) == "backprop":
        J, g = backprop_arrays(params, X, Y, lam, activation, output)
    else:
        J, g = jax.value_and_grad(regularized_cost)(params, X, Y, lam, activation, output)
    return J, ravel_params(g)


def flat_cost(
    sizes: tuple[int, ...], activation: str, output: str, grad: str
) -> Callable[[Array, Array, Array, ArrayLike], Array]:
    """``cost(theta, X, Y, lam) -> J`` whose JAX derivative in ``theta`` is the chosen gradient.

    With ``grad="backprop"`` the function carries a ``custom_vjp`` whose forward rule runs the
    hand-written backward pass once and whose backward rule scales the saved gradient, so that
    ``jax.value_and_grad`` of it (as optax's line search calls it) costs one backprop and
    returns the hand-written gradient. ``X``, ``Y`` and ``lam`` get no derivative."""
    check_grad(grad)

    def cost(theta: Array, X: Array, Y: Array, lam: ArrayLike) -> Array:
        return regularized_cost(unravel_params(theta, sizes), X, Y, lam, activation, output)

    if grad == "autodiff":
        return cost

    cost = jax.custom_vjp(cost)

    def fwd(theta, X, Y, lam):
        J, g = value_and_grad_flat(theta, X, Y, lam, sizes=sizes, activation=activation,
                                   output=output, grad="backprop")
        return J, g

    def bwd(g, ct):
        return ct * g, None, None, None

    cost.defvjp(fwd, bwd)
    return cost


@partial(jax.jit, static_argnames=("sizes", "activation", "output", "grad"))
def _value_and_grad_packed(theta, X, Y, lam, *, sizes, activation, output, grad):
    """``[J, g_1, ..., g_n]`` in one vector, so one device-to-host transfer returns both."""
    theta = theta.astype(X.dtype)
    J, g = value_and_grad_flat(theta, X, Y, lam, sizes=sizes, activation=activation,
                               output=output, grad=grad)
    return jnp.concatenate([J[None], g])


class ScipyObjective:
    """``theta -> (J, g)`` for ``scipy.optimize.minimize(..., jac=True)``.

    ``theta`` is scipy's float64 host vector; each call is one compiled value-and-gradient
    evaluation on the device-resident ``X`` and ``Y``: ``theta`` goes to the device (cast to
    the training dtype on the host), ``[J, g]`` comes back in one array. The compiled function is
    cached by JAX per shape, dtype, sharding and static options, so every evaluation of one fit
    (and of later fits of the same shape) reuses it. Keeps the evaluation count and the last few
    ``(theta, J)`` pairs so the per-iteration callback can read the cost without re-evaluating.
    """

    def __init__(self, X: Array, Y: Array, lam: Array, *, sizes: tuple[int, ...],
                 activation: str, output: str, grad: str, theta_sharding=None) -> None:
        self.X, self.Y, self.lam = X, Y, lam
        self.dtype = np.dtype(X.dtype)
        self.sharding = theta_sharding
        self._fn = partial(_value_and_grad_packed, sizes=sizes, activation=activation,
                           output=output, grad=check_grad(grad))
        self.n_evals = 0
        self._recent: list[tuple[np.ndarray, float]] = []

    def packed(self, theta: np.ndarray) -> np.ndarray:
        """``[J, g]`` as one host array in the training dtype."""
        t = theta.astype(self.dtype, copy=False)
        if self.sharding is not None:
            t = jax.device_put(t, self.sharding)
        return np.asarray(self._fn(t, self.X, self.Y, self.lam))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        out = self.packed(theta)
        self.n_evals += 1
        J = float(out[0])
        self._recent = [*self._recent[-3:], (theta.copy(), J)]
        return J, out[1:].astype(np.float64)

    def cost_at(self, theta: np.ndarray, evaluate: bool = True) -> float:
        """The cost at ``theta``: from a recent evaluation when there is one, else evaluated
        (or NaN with ``evaluate=False``)."""
        for x, J in reversed(self._recent):
            if np.array_equal(x, theta):
                return J
        return self(theta)[0] if evaluate else float("nan")
