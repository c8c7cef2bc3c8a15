"""Exact differences for the incremental gradient check, and the series that evaluate them.

:mod:`jaxnn.incremental` needs, for a perturbation ``d`` of a pre-activation, the change
``g(z + d) - g(z)`` of each hidden activation and the change of each example's loss when the
logits move. Computed as written, both subtract two nearly equal numbers; here each is rewritten
by an algebraic identity that does not (for example ``softplus(z + d) - softplus(z) =
log1p(sigmoid(z) expm1(d))``). ``expm1``, ``log1p`` and ``1 / (1 + x)`` of the small arguments
that arise are summed from their power series, with as many terms as a bound on the argument
needs to be exact to rounding; larger arguments use the library functions. An activation or an
output registered without a rule of its own is differenced by plain subtraction.

No derivative is used here: the check stays independent of :mod:`jaxnn.backprop`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnn.activations import get_activation
from jaxnn.outputs import get_output

Array = jax.Array


# expm1 and log1p of small arguments, from their power series. A bound U on |x| gives the
# number of terms: the first term left out is at most 2^-56 of the result (well below float64
# rounding). Above _MAX_TERMS terms the library functions are used instead.
_MAX_TERMS = 16
_TINY = 2.0**-56


def expm1_terms(bound: float) -> int:
    """Terms of ``x + x^2/2! + ...`` that make it exact to rounding for ``|x| <= bound``
    (0: use ``jnp.expm1``)."""
    if not bound < 1.0:  # no series of _MAX_TERMS terms is exact there (and bound**n overflows)
        return 0
    for n in range(1, _MAX_TERMS + 1):
        # remainder / |x| <= U^n / (n+1)! * e^U
        if bound**n / math.factorial(n + 1) * math.exp(min(bound, 1.0)) <= _TINY:
            return n
    return 0


def log1p_terms(bound: float) -> int:
    """Terms of ``u - u^2/2 + u^3/3 - ...`` exact to rounding for ``|u| <= bound`` (0: library)."""
    if bound >= 0.5:
        return 0
    for n in range(1, _MAX_TERMS + 1):
        if bound**n / (n + 1) / (1 - bound) <= _TINY:  # remainder / |u|
            return n
    return 0


def recip_terms(bound: float) -> int:
    """Terms of ``1 - x + x^2 - ...`` exact to rounding for ``|x| <= bound`` (0: divide)."""
    if bound >= 0.5:
        return 0
    for n in range(1, _MAX_TERMS + 1):
        if bound**n / (1 - bound) <= _TINY:
            return n
    return 0


def recip_series(x: Array, terms: int) -> Array:
    """``1 / (1 + x)`` as ``sum_{k<terms} (-x)^k`` by Horner's rule (a division if ``terms`` is
    0): for the small ``x`` of the activation rules, cheaper than a division."""
    if terms == 0:
        return 1 / (1 + x)
    p = jnp.ones_like(x)
    for _ in range(terms - 1):
        p = 1 - x * p
    return p


def expm1_series(x: Array, terms: int) -> Array:
    """``sum_{k=1..terms} x^k / k!`` by Horner's rule (``jnp.expm1`` when ``terms`` is 0)."""
    if terms == 0:
        return jnp.expm1(x)
    p = jnp.asarray(1 / math.factorial(terms), x.dtype)
    for k in range(terms - 1, 0, -1):
        p = p * x + 1 / math.factorial(k)
    return p * x


def log1p_series(u: Array, terms: int) -> Array:
    """``sum_{k=1..terms} (-1)^(k+1) u^k / k`` by Horner's rule (``jnp.log1p`` if ``terms``
    is 0)."""
    if terms == 0:
        return jnp.log1p(u)
    p = jnp.asarray((-1) ** (terms + 1) / terms, u.dtype)
    for k in range(terms - 1, 0, -1):
        p = p * u + (-1) ** (k + 1) / k
    return p * u


class HiddenDifference(NamedTuple):
    """``g(z + d) - g(z)`` for a hidden activation ``g``, exact to rounding.

    ``state(z, a)``: what the rule keeps from the unperturbed forward pass; ``operand(d,
    expm1)``: what it needs from the change ``d`` of ``z``; ``apply(state, operand, recip)``: the
    change of ``a``. ``lipschitz`` bounds ``|g(z + d) - g(z)| / |d|`` (None: unknown, and the
    series are not used above this layer)."""

    lipschitz: float | None
    state: Callable[[Array, Array], tuple[Array, ...]]
    operand: Callable[[Array, Callable[[Array], Array]], Array]
    apply: Callable[[tuple[Array, ...], Array, Callable[[Array], Array]], Array]
    expm1_scale: float  # |argument of expm1| <= expm1_scale * |d|


def _sigmoid_state(z: Array, a: Array) -> tuple[Array, ...]:
    q = jax.nn.sigmoid(-z)  # 1 - a, accurate where a is near 1
    return a * q, q


def _sigmoid_apply(state: tuple[Array, ...], E: Array, recip: Callable[[Array], Array]) -> Array:
    # sigma(z + d) = a / (a + (1 - a) e^-d), so with E = expm1(-d):
    # sigma(z + d) - sigma(z) = -a (1 - a) E / (1 + (1 - a) E)
    aq, q = state
    return -aq * E * recip(q * E)


def _tanh_state(z: Array, a: Array) -> tuple[Array, ...]:
    return a, 1 / jnp.cosh(z) ** 2  # tanh(z) and 1 - tanh(z)^2, accurate near |a| = 1


def _tanh_operand(d: Array, expm1: Callable[[Array], Array]) -> Array:
    F = expm1(2 * d)
    return F / (F + 2)  # tanh(d)


def _tanh_apply(state: tuple[Array, ...], tau: Array, recip: Callable[[Array], Array]) -> Array:
    # tanh(z + d) = (t + tau) / (1 + t tau), so tanh(z + d) - tanh(z) = tau (1 - t^2) / (1 + t tau)
    t, r = state
    return tau * r * recip(t * tau)


def _relu_apply(state: tuple[Array, ...], d: Array, recip: Callable[[Array], Array]) -> Array:
    # relu(z + d) - relu(z): max(d, -z) where z > 0 (no rounding), relu(z + d) elsewhere
    (z,) = state
    return jnp.where(z > 0, jnp.maximum(d, -z), jnp.maximum(z + d, 0))


_HIDDEN: dict[str, HiddenDifference] = {
    "sigmoid": HiddenDifference(0.25, _sigmoid_state, lambda d, em1: em1(-d), _sigmoid_apply,
                                 1.0),
    "tanh": HiddenDifference(1.0, _tanh_state, _tanh_operand, _tanh_apply, 2.0),
    "relu": HiddenDifference(1.0, lambda z, a: (z,), lambda d, em1: d, _relu_apply, 0.0),
}


def hidden_difference(activation: str) -> HiddenDifference:
    """The rule for ``activation``; any other registered activation by plain subtraction."""
    if activation in _HIDDEN:
        return _HIDDEN[activation]
    g = get_activation(activation).fn
    return HiddenDifference(None, lambda z, a: (z, a), lambda d, em1: d,
                             lambda s, d, recip: g(s[0] + d) - s[1], 0.0)


class OutputDifference(NamedTuple):
    """The change of each example's loss when the output logits move by ``dz``.

    The loss is ``N(z) - Y . z`` with ``N`` the part of the output layer that is not linear in
    the logits; the kernel subtracts the linear part's change ``Y . dz`` itself.
    ``state(z, Y)``: what the rule keeps from the unperturbed logits and targets (both ``(K,
    m)``); ``rows(state, dz, expm1, log1p)``: the change of ``N`` when every logit moves (``dz``
    ``(K, ..., m)``, the state broadcast alike), summed over the ``K`` logits;
    ``column(state_i, G, log1p)``: its change when only logit ``i`` moves by ``d``, from ``G =
    expm1(d)`` and the state's rows ``i``. ``series``: whether the bounds of
    :mod:`jaxnn.incremental` hold (the rule uses ``expm1`` and ``log1p`` only as described
    there)."""

    state: Callable[[Array, Array], tuple[Array, ...]]
    rows: Callable[..., Array]
    column: Callable[..., Array]
    series: bool
    product: bool  # the log1p argument is a product of K factors (bound by the sum of |dz|)


def _product_minus_one(v: Array) -> Array:
    """``prod_k (1 + v_k) - 1`` over axis 0, accumulated as ``u + v + u v`` (no rounding of a
    ``1 + small`` intermediate)."""
    u = v[0]
    for k in range(1, v.shape[0]):
        u = u + v[k] + u * v[k]
    return u


def _sigmoid_rows(state, dz, expm1, log1p):  # noqa: ANN001, ANN202
    # N(z) = sum_k softplus(z_k); softplus(z + d) - softplus(z) = log(1 + h (e^d - 1)) with
    # h = sigmoid(z); summed over k as one log of the product of the K factors
    (h,) = state
    return log1p(_product_minus_one(h * expm1(dz)))


def _softmax_state(z: Array, Y: Array) -> tuple[Array, ...]:
    return jax.nn.softmax(z, axis=0), jnp.sum(Y, axis=0)


def _softmax_rows(state, dz, expm1, log1p):  # noqa: ANN001, ANN202
    # N(z) = rowsum(Y) logsumexp(z); logsumexp(z + d) - logsumexp(z) = log(sum_k p_k e^d_k)
    # = log1p(sum_k p_k expm1(d_k)) with p = softmax(z)
    p, R = state
    return R * log1p(jnp.sum(p * expm1(dz), axis=0))


_OUTPUT: dict[str, OutputDifference] = {
    "sigmoid": OutputDifference(lambda z, Y: (jax.nn.sigmoid(z),), _sigmoid_rows,
                                 lambda s, G, log1p: log1p(s[0] * G), True, True),
    "softmax": OutputDifference(_softmax_state, _softmax_rows,
                                 lambda s, G, log1p: s[1] * log1p(s[0] * G), True, False),
}


def output_difference(output: str) -> OutputDifference:
    """The rule for ``output``; any other registered output by plain subtraction of its loss
    (plus ``Y . dz``, which the kernel subtracts again)."""
    if output in _OUTPUT:
        return _OUTPUT[output]
    loss = get_output(output).loss  # rows (..., K)

    def rows(state, dz, expm1, log1p):  # noqa: ANN001, ANN202
        z, Y = (jnp.moveaxis(x, 0, -1) for x in state)
        d = jnp.moveaxis(dz, 0, -1)
        return loss(z + d, Y) - loss(z, Y) + jnp.sum(Y * d, axis=-1)

    return OutputDifference(lambda z, Y: (z, Y), rows, None, False, False)
