"""The training objective on the unrolled parameter vector, and the scipy-side callable.

Everything here works on ``theta``, the Octave-order vector ``[Theta1(:); Theta2(:); ...]`` of
length ``n = sum n_{l+1} (1 + n_l)``, with ``X`` ``(m, n_0)`` and a target matrix ``Y`` ``(m, K)``
already on the device. :func:`value_and_grad_flat` is pure and traceable (``jit``, ``vmap``);
:class:`ScipyObjective` is the host-side callable that ``scipy.optimize.minimize`` drives.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.defaults import ACTIVATION, GRAD, OUTPUT
from jaxnn.spec import NetSpec

Array = jax.Array


def value_and_grad_flat(
    theta: Array,
    X: Array,
    Y: Array,
    lam: ArrayLike,
    *,
    sizes: tuple[int, ...],
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    grad: str = GRAD,
) -> tuple[Array, Array]:
    """``(J, g)``: the regularized cost and its gradient on the unrolled vector.

    ``theta`` ``(n,)`` in Octave order for ``sizes``, ``X`` ``(m, n_0)``, ``Y`` ``(m, K)`` a
    target matrix, ``lam`` a scalar. ``J`` is a scalar, ``g`` has the shape of ``theta``. With
    ``grad="backprop"`` the hand-written backward pass (:func:`jaxnn.backprop.backprop_arrays`),
    with ``"autodiff"`` ``jax.value_and_grad`` of :func:`jaxnn.losses.regularized_cost`.
    Pure and traceable: no checks, no casts; ``jit`` and ``vmap`` it freely. (The same as
    ``NetSpec(sizes, activation, output, grad).value_and_grad``.)"""
    return NetSpec(tuple(sizes), activation, output, grad).value_and_grad(theta, X, Y, lam)


@partial(jax.jit, static_argnames=("spec",))
def packed_value_and_grad(theta: Array, X: Array, Y: Array, lam: Array, spec: NetSpec
                          ) -> Array:
    """``[J, g_1, ..., g_n]`` in one vector, so one device-to-host transfer returns both."""
    J, g = spec.value_and_grad(theta.astype(X.dtype), X, Y, lam)
    return jnp.concatenate([J[None], g])


class ScipyObjective:
    """``theta -> (J, g)`` for ``scipy.optimize.minimize(..., jac=True)``.

    ``theta`` is scipy's float64 host vector; each call is one compiled value-and-gradient
    evaluation on the device-resident ``X`` and ``Y``: ``theta`` goes to the device (cast to
    the training dtype on the host), ``[J, g]`` comes back in one array. The compiled function
    is cached by JAX per shape, dtype, sharding and spec, so every evaluation of one fit (and of
    later fits of the same shape) reuses it. Keeps the evaluation count and the last few
    ``(theta, J)`` pairs so the per-iteration callback can read the cost without
    re-evaluating."""

    def __init__(self, X: Array, Y: Array, lam: Array, spec: NetSpec,
                 theta_sharding=None) -> None:
        self.X, self.Y, self.lam, self.spec = X, Y, lam, spec
        self.dtype = np.dtype(X.dtype)
        self.sharding = theta_sharding
        self.n_evals = 0
        self._recent: list[tuple[np.ndarray, float]] = []

    def packed(self, theta: np.ndarray) -> np.ndarray:
        """``[J, g]`` as one host array in the training dtype."""
        with np.errstate(over="ignore"):  # a trial past the dtype's range: an inf cost, handled
            t = theta.astype(self.dtype, copy=False)  # by the optimizer like any other
        if self.sharding is not None:
            t = jax.device_put(t, self.sharding)
        return np.asarray(packed_value_and_grad(t, self.X, self.Y, self.lam, self.spec))

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
