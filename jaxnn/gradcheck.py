"""Finite differences and the three-way gradient comparison (numerical, backprop, autodiff).

Two central-difference gradients, ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)`` for
every parameter:

* :func:`numerical_gradient` perturbs one parameter and re-evaluates a scalar function (the
  course's ``computeNumericalGradient``): the general tool, for any function of ``params``.
* :func:`jaxnn.incremental.numerical_cost_gradient` computes the same differences of the
  network's cost *incrementally*, recomputing only what a perturbation changes, with exact
  differences and no derivative (:mod:`jaxnn.incremental`, :mod:`jaxnn.differences`). It agrees
  with :func:`numerical_gradient` of :func:`jaxnn.cost` to rounding (the tests measure it).

:func:`check_gradients` compares a numerical gradient with :func:`jaxnn.backprop` and
:func:`jaxnn.autodiff` in float64 and reports the course's relative difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.backprop import backprop_arrays
from jaxnn.checks import (
    Params,
    as_params,
    check_choice,
    check_chunk_size,
    check_eps,
    check_scalar_function,
)
from jaxnn.defaults import ACTIVATION, GRADCHECK_CHUNK, GRADCHECK_EPS, GRADCHECK_TOL, OUTPUT
from jaxnn.incremental import float64_problem, incremental_gradient_arrays, prepare_arrays
from jaxnn.losses import regularized_cost
from jaxnn.model import layer_sizes, ravel_params, unravel_params
from jaxnn.precision import x64

Array = jax.Array

METHODS = ("incremental", "plain")


def numerical_gradient(
    f: Callable[[Params], ArrayLike],
    params: Sequence[ArrayLike],
    eps: float = GRADCHECK_EPS,
    *,
    chunk_size: int = GRADCHECK_CHUNK,
) -> Params:
    """Central differences ``(f(theta + eps e_i) - f(theta - eps e_i)) / (2 eps)`` for every
    parameter, returned with the structure of ``params`` (the course's
    ``computeNumericalGradient``).

    ``f`` maps params to a scalar and must be traceable by JAX: it is ``vmap``-ed over
    ``chunk_size`` perturbation directions at a time, so one compiled call evaluates
    ``2 * chunk_size`` perturbed costs. Work in float64 (:func:`jaxnn.precision.x64`) for
    meaningful differences. For the network's cost,
    :func:`jaxnn.incremental.numerical_cost_gradient` computes the same numbers much faster."""
    eps, chunk_size = check_eps(eps), check_chunk_size(chunk_size)
    params = as_params(params)
    if not callable(f):
        raise ValueError(f"f must be a function of params returning the cost, got "
                         f"{type(f).__name__}")
    sizes = layer_sizes(params)
    theta = ravel_params(params)
    dtype = jax.dtypes.canonicalize_dtype(theta.dtype)  # as f sees it in the compiled chunks
    check_scalar_function(f, "f", "a function of params returning the cost",
                          tuple(jax.ShapeDtypeStruct(t.shape, dtype) for t in params))
    n = theta.shape[0]
    c = min(chunk_size, n)

    @jax.jit
    def chunk(theta: Array, start: Array) -> Array:
        idx = jnp.minimum(start + jnp.arange(c), n - 1)  # the last chunk repeats index n-1
        step = jax.nn.one_hot(idx, n, dtype=theta.dtype) * eps  # (c, n)
        g = jax.vmap(lambda th: f(unravel_params(th, sizes)))
        return (g(theta + step) - g(theta - step)) / (2 * eps)

    parts = [chunk(theta, jnp.asarray(s)) for s in range(0, n, c)]
    return unravel_params(jnp.concatenate(parts)[:n], sizes)


@partial(jax.jit, static_argnames=("activation", "output", "prepare"))
def _references(params, X, Y, lam, activation, output, prepare=False):  # noqa: ANN001, ANN202
    """``(J, backprop's gradient, autodiff's gradient, the incremental differences' forward
    pass or None)`` in one compiled call (one compilation instead of three)."""
    J, g_b = backprop_arrays(params, X, Y, lam, activation, output)
    _, g_a = jax.value_and_grad(regularized_cost)(params, X, Y, lam, activation, output)
    return J, g_b, g_a, prepare_arrays(params, X, Y, activation, output) if prepare else None


# --- the report ----------------------------------------------------------------------------------


def relative_difference(a: ArrayLike, b: ArrayLike) -> float:
    """The course's agreement measure ``norm(a - b) / norm(a + b)`` (0 when both are zero)."""
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    # both scaled by their largest entry first: the squares of gradients near 1e160 (a large
    # lam) overflow float64, and the measure does not depend on the scale
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    if not 0 < scale < np.inf:
        scale = 1.0
    den = np.linalg.norm(a / scale + b / scale)
    diff = np.linalg.norm(a / scale - b / scale)
    return float(diff / den) if den > 0 else float(diff * scale)


@dataclass(frozen=True)
class LayerCheck:
    """Agreement of the three gradients for one ``Theta``."""

    layer: int
    shape: tuple[int, int]
    relative_difference: float
    autodiff_difference: float
    max_abs_difference: float


@dataclass(frozen=True)
class GradientCheck:
    """Result of :func:`check_gradients`; ``print`` it for a table. Gradients are float64 numpy
    arrays with the structure of ``params``; ``method`` names how the numerical one was
    computed."""

    cost: float
    numerical: tuple[np.ndarray, ...]
    backprop: tuple[np.ndarray, ...]
    autodiff: tuple[np.ndarray, ...]
    relative_difference: float
    autodiff_difference: float
    layers: tuple[LayerCheck, ...]
    lam: float
    eps: float
    method: str = "incremental"

    def passed(self, tol: float = GRADCHECK_TOL) -> bool:
        """Both differences (numerical vs backprop, backprop vs autodiff) at most ``tol``."""
        return self.relative_difference <= tol and self.autodiff_difference <= tol

    def __str__(self) -> str:
        n = sum(g.size for g in self.numerical)
        lines = [f"Gradient check: {n} parameters, lam={self.lam:g}, eps={self.eps:g}, "
                 f"J={self.cost:.6f}"]
        if n <= 60:
            lines.append(f"{'numerical':>14} {'backprop':>14} {'autodiff':>14}")
            for g_n, g_b, g_a in zip(*(map(octave_order, (self.numerical, self.backprop,
                                                              self.autodiff))), strict=True):
                lines.append(f"{g_n:14.10f} {g_b:14.10f} {g_a:14.10f}")
        head = (f"{'layer':<8}{'shape':>12}{'num vs backprop':>18}{'backprop vs auto':>18}"
                f"{'max |num-bp|':>15}")
        lines += [head, "-" * len(head)]
        for lc in self.layers:
            lines.append(f"{'Theta' + str(lc.layer):<8}{str(lc.shape):>12}"
                         f"{lc.relative_difference:>18.3e}{lc.autodiff_difference:>18.3e}"
                         f"{lc.max_abs_difference:>15.3e}")
        lines.append(f"{'all':<8}{n:>12}{self.relative_difference:>18.3e}"
                     f"{self.autodiff_difference:>18.3e}")
        lines.append(f"relative difference = norm(a-b)/norm(a+b); below {GRADCHECK_TOL:g} "
                     "means the backprop is correct.")
        return "\n".join(lines)


def octave_order(grads: Sequence[np.ndarray]) -> np.ndarray:
    """Gradients unrolled into one vector in Octave's order (as :func:`jaxnn.ravel_params`)."""
    return np.concatenate([np.asarray(g).ravel(order="F") for g in grads])


def check_gradients(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: float = 0.0,
    *,
    eps: float = GRADCHECK_EPS,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    method: str = "incremental",
    chunk_size: int | None = None,
) -> GradientCheck:
    """Compare the numerical gradient, :func:`jaxnn.backprop` and :func:`jaxnn.autodiff` in
    float64 (under a scoped x64 switch, whatever the inputs' dtype).

    ``method="incremental"`` (default) computes the numerical gradient with
    :func:`jaxnn.incremental.numerical_cost_gradient`; ``"plain"`` perturbs each parameter and
    re-evaluates the cost (:func:`numerical_gradient`, ``chunk_size`` directions at a time,
    default 256): the same numbers to rounding, far slower on large networks. Same arguments and
    checks as :func:`jaxnn.cost`; returns a :class:`GradientCheck`."""
    check_choice(method, METHODS, "method")
    eps, chunk_size = check_eps(eps), check_chunk_size(chunk_size, allow_none=True)
    with x64():
        incremental = method == "incremental"
        p, Xc, Y, lam = float64_problem(params, X, y, lam, activation, output, incremental)
        J, g_b, g_a, prepared = _references(p, Xc, Y, lam, activation, output, incremental)
        if incremental:
            g_n = incremental_gradient_arrays(p, Xc, Y, float(lam), float(eps), activation,
                                              output, chunk_size, prepared=prepared)
        else:
            g_n = numerical_gradient(
                lambda q: regularized_cost(q, Xc, Y, lam, activation, output), p, eps,
                chunk_size=GRADCHECK_CHUNK if chunk_size is None else chunk_size)
        num, bp, ad = (tuple(np.asarray(g, np.float64) for g in gs) for gs in (g_n, g_b, g_a))
        J = float(J)
    layers = tuple(
        LayerCheck(i + 1, tuple(n.shape), relative_difference(n, b), relative_difference(b, a),
                   float(np.max(np.abs(n - b))))
        for i, (n, b, a) in enumerate(zip(num, bp, ad, strict=True))
    )
    return GradientCheck(
        cost=J, numerical=num, backprop=bp, autodiff=ad,
        relative_difference=relative_difference(octave_order(num), octave_order(bp)),
        autodiff_difference=relative_difference(octave_order(bp), octave_order(ad)),
        layers=layers, lam=float(lam), eps=float(eps), method=method,
    )
