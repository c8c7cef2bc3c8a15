"""Finite differences and the three-way gradient comparison (numerical, backprop, autodiff)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn._validation import Params, as_params
from jaxnn.backprop import _backprop
from jaxnn.losses import _autodiff, cast, prepare_problem, regularized_cost
from jaxnn.model import layer_sizes, ravel_params, unravel_params
from jaxnn.precision import x64

Array = jax.Array


def numerical_gradient(
    f: Callable[[Params], ArrayLike],
    params: Sequence[ArrayLike],
    eps: float = 1e-4,
    *,
    chunk_size: int = 256,
) -> Params:
    """Central differences ``(f(theta + eps e_i) - f(theta - eps e_i)) / (2 eps)`` for every
    parameter, returned with the structure of ``params`` (the course's
    ``computeNumericalGradient``).

    ``f`` maps params to a scalar and must be traceable by JAX: it is ``vmap``-ed over
    ``chunk_size`` perturbation directions at a time, so one compiled call evaluates
    ``2 * chunk_size`` perturbed costs. Work in float64 (:func:`jaxnn.precision.x64`) for
    meaningful differences."""
    if not (isinstance(eps, float | int) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    params = as_params(params)
    sizes = layer_sizes(params)
    theta = ravel_params(params)
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


def relative_difference(a: ArrayLike, b: ArrayLike) -> float:
    """The course's agreement measure ``norm(a - b) / norm(a + b)`` (0 when both are zero)."""
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    den = np.linalg.norm(a + b)
    return float(np.linalg.norm(a - b) / den) if den > 0 else float(np.linalg.norm(a - b))


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
    arrays with the structure of ``params``."""

    cost: float
    numerical: tuple[np.ndarray, ...]
    backprop: tuple[np.ndarray, ...]
    autodiff: tuple[np.ndarray, ...]
    relative_difference: float
    autodiff_difference: float
    layers: tuple[LayerCheck, ...]
    lam: float
    eps: float

    def passed(self, tol: float = 1e-9) -> bool:
        """Both differences (numerical vs backprop, backprop vs autodiff) at most ``tol``."""
        return self.relative_difference <= tol and self.autodiff_difference <= tol

    def __str__(self) -> str:
        n = sum(g.size for g in self.numerical)
        lines = [f"Gradient check: {n} parameters, lam={self.lam:g}, eps={self.eps:g}, "
                 f"J={self.cost:.6f}"]
        if n <= 60:
            lines.append(f"{'numerical':>14} {'backprop':>14} {'autodiff':>14}")
            for g_n, g_b, g_a in zip(*(map(_octave, (self.numerical, self.backprop,
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
        lines.append("relative difference = norm(a-b)/norm(a+b); below 1e-9 means the "
                     "backprop is correct.")
        return "\n".join(lines)


def _octave(grads: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.concatenate([g.ravel(order="F") for g in grads])


def check_gradients(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: float = 0.0,
    *,
    eps: float = 1e-4,
    activation: str = "sigmoid",
    output: str = "sigmoid",
    chunk_size: int = 256,
) -> GradientCheck:
    """Compare the numerical gradient, :func:`jaxnn.backprop` and :func:`jaxnn.autodiff` in
    float64 (under a scoped x64 switch, whatever the inputs' dtype).

    Same arguments and checks as :func:`jaxnn.cost`; returns a :class:`GradientCheck`."""
    with x64():
        params = tuple(np.asarray(t, np.float64) for t in as_params(params))
        X = np.asarray(X, np.float64) if np.ndim(X) else X
        args = prepare_problem(params, X, y, lam, activation, output)
        p, Xc, yc, lam, dtype = args
        J, g_b = _backprop(p, Xc, yc, lam, activation, output, dtype)
        _, g_a = _autodiff(p, Xc, yc, lam, activation, output, dtype)
        p, Xc, Y = cast(tuple(map(jnp.asarray, p)), jnp.asarray(Xc), jnp.asarray(yc), dtype)
        g_n = numerical_gradient(
            lambda q: regularized_cost(q, Xc, Y, lam, activation, output), p, eps,
            chunk_size=chunk_size)
        num, bp, ad = (tuple(np.asarray(g, np.float64) for g in gs) for gs in (g_n, g_b, g_a))
        J = float(J)
    layers = tuple(
        LayerCheck(i + 1, tuple(n.shape), relative_difference(n, b), relative_difference(b, a),
                   float(np.max(np.abs(n - b))))
        for i, (n, b, a) in enumerate(zip(num, bp, ad, strict=True))
    )
    return GradientCheck(
        cost=J, numerical=num, backprop=bp, autodiff=ad,
        relative_difference=relative_difference(_octave(num), _octave(bp)),
        autodiff_difference=relative_difference(_octave(bp), _octave(ad)),
        layers=layers, lam=float(lam), eps=float(eps),
    )
