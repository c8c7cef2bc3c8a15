"""Finite differences and the three-way gradient comparison (numerical, backprop, autodiff).

Two central-difference gradients, ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)`` for
every parameter:

* :func:`numerical_gradient` perturbs one parameter and re-evaluates a scalar function (the
  course's ``computeNumericalGradient``): the general tool, for any function of ``params``.
* :func:`numerical_cost_gradient` computes the same differences of the network's cost
  *incrementally*. Perturbing ``Theta_l[i, j]`` leaves every layer below ``l`` unchanged,
  moves row ``i`` of ``z_l`` by ``eps`` times input ``j`` (1 for the bias), so the next layer's
  pre-activations change by a rank-one term; only the layers above are recomputed, and only
  the *change* of each example's loss is computed and summed. For the course's 400-25-10
  network a perturbed evaluation is a pass over 5000 x 10 numbers instead of 5000 x 400.

The incremental evaluation uses no derivative: every change is an exact difference,
``g(z + d) - g(z)`` and ``loss(z + d) - loss(z)``, rewritten by algebraic identities that
avoid cancelling two nearly equal numbers (for example ``softplus(z + d) - softplus(z) =
log1p(sigmoid(z) expm1(d))``). ``expm1`` and ``log1p`` of the small arguments that arise are
summed from their power series, with as many terms as a bound on the arguments (computed from
``eps``, the data and the weights) needs to be exact to rounding; larger arguments use the
library functions. So it stays an independent check of :func:`jaxnn.backprop`, and it agrees
with :func:`numerical_gradient` of :func:`jaxnn.cost` to rounding (the tests measure it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.activations import get_activation
from jaxnn.backprop import affine_forward, backprop_arrays
from jaxnn.checks import Params, as_params, check_memory
from jaxnn.compiling import VECTOR_KERNELS, jit_with_options
from jaxnn.losses import cast, prepare_problem, regularized_cost
from jaxnn.model import layer_sizes, ravel_params, unravel_params
from jaxnn.outputs import get_output
from jaxnn.precision import x64

Array = jax.Array

METHODS = ("incremental", "plain")


def _check_eps(eps: object) -> None:
    if not (isinstance(eps, float | int) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")


def _check_chunk(chunk_size: object, allow_none: bool = False) -> None:
    if allow_none and chunk_size is None:
        return
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


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
    meaningful differences. For the network's cost, :func:`numerical_cost_gradient` computes
    the same numbers much faster."""
    _check_eps(eps)
    _check_chunk(chunk_size)
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


# --- the incremental central differences of the network's cost ---------------------------------
#
# Layout: every array holds one *column* per example, as in jaxnn.backprop: activations
# (units, m). The perturbations of one layer are evaluated in blocks of bi units i by bj inputs j
# (_plan), one compiled call per block (_layer_kernel): the change of a_l as (bi, bj, m), fused
# with the change of the loss where the next layer is the output (the course's network: one
# loop over the block, nothing stored but the per-example changes); through deeper networks one
# perturbation at a time, (units, m) arrays and one matrix product per layer, a size that stays
# in the caches. The pieces of each block are sliced on the host (_blocks), not in the kernel.

# expm1 and log1p of small arguments, from their power series. A bound U on |x| gives the
# number of terms: the first term left out is at most 2^-56 of the result (well below float64
# rounding). Above _MAX_TERMS terms the library functions are used instead.
_MAX_TERMS = 16
_TINY = 2.0**-56


def _expm1_terms(bound: float) -> int:
    """Terms of ``x + x^2/2! + ...`` that make it exact to rounding for ``|x| <= bound``
    (0: use ``jnp.expm1``)."""
    for n in range(1, _MAX_TERMS + 1):
        # remainder / |x| <= U^n / (n+1)! * e^U
        if bound**n / math.factorial(n + 1) * math.exp(min(bound, 1.0)) <= _TINY:
            return n
    return 0


def _log1p_terms(bound: float) -> int:
    """Terms of ``u - u^2/2 + u^3/3 - ...`` exact to rounding for ``|u| <= bound`` (0: library)."""
    if bound >= 0.5:
        return 0
    for n in range(1, _MAX_TERMS + 1):
        if bound**n / (n + 1) / (1 - bound) <= _TINY:  # remainder / |u|
            return n
    return 0


def _recip_terms(bound: float) -> int:
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


class _HiddenDifference(NamedTuple):
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


_HIDDEN: dict[str, _HiddenDifference] = {
    "sigmoid": _HiddenDifference(0.25, _sigmoid_state, lambda d, em1: em1(-d), _sigmoid_apply,
                                 1.0),
    "tanh": _HiddenDifference(1.0, _tanh_state, _tanh_operand, _tanh_apply, 2.0),
    "relu": _HiddenDifference(1.0, lambda z, a: (z,), lambda d, em1: d, _relu_apply, 0.0),
}


def _hidden_difference(activation: str) -> _HiddenDifference:
    """The rule for ``activation``; any other registered activation by plain subtraction."""
    if activation in _HIDDEN:
        return _HIDDEN[activation]
    g = get_activation(activation).fn
    return _HiddenDifference(None, lambda z, a: (z, a), lambda d, em1: d,
                             lambda s, d, recip: g(s[0] + d) - s[1], 0.0)


class _OutputDifference(NamedTuple):
    """The change of each example's loss when the output logits move by ``dz``.

    The loss is ``N(z) - Y . z`` with ``N`` the part of the output layer that is not linear in
    the logits; the kernel subtracts the linear part's change ``Y . dz`` itself.
    ``state(z, Y)``: what the rule keeps from the unperturbed logits and targets (both ``(K,
    m)``); ``rows(state, dz, expm1, log1p)``: the change of ``N`` when every logit moves (``dz``
    ``(K, ..., m)``, the state broadcast alike), summed over the ``K`` logits;
    ``column(state_i, G, log1p)``: its change when only logit ``i`` moves by ``d``, from ``G =
    expm1(d)`` and the state's rows ``i``. ``series``: whether the bounds of :func:`_bounds`
    hold (the rule uses ``expm1`` and ``log1p`` only as described there)."""

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


_OUTPUT: dict[str, _OutputDifference] = {
    "sigmoid": _OutputDifference(lambda z, Y: (jax.nn.sigmoid(z),), _sigmoid_rows,
                                 lambda s, G, log1p: log1p(s[0] * G), True, True),
    "softmax": _OutputDifference(_softmax_state, _softmax_rows,
                                 lambda s, G, log1p: s[1] * log1p(s[0] * G), True, False),
}


def _output_difference(output: str) -> _OutputDifference:
    """The rule for ``output``; any other registered output by plain subtraction of its loss
    (plus ``Y . dz``, which the kernel subtracts again)."""
    if output in _OUTPUT:
        return _OUTPUT[output]
    loss = get_output(output).loss  # rows (..., K)

    def rows(state, dz, expm1, log1p):  # noqa: ANN001, ANN202
        z, Y = (jnp.moveaxis(x, 0, -1) for x in state)
        d = jnp.moveaxis(dz, 0, -1)
        return loss(z + d, Y) - loss(z, Y) + jnp.sum(Y * d, axis=-1)

    return _OutputDifference(lambda z, Y: (z, Y), rows, None, False, False)


_Plan = tuple[tuple[tuple[int, int], tuple[int, ...], tuple[int, ...]], ...]


def _prepare_arrays(params: Params, X: Array, Y: Array, activation: str,
                    output: str) -> tuple[dict, list]:
    """The unperturbed forward pass as the incremental differences need it (``net``), and for
    each layer ``(units, inputs)``: the arrays whose rows go with the units ``i`` of the layer,
    and its inputs ``(1 + n_in, m)`` (see :func:`_blocks` and :func:`_input_operands`)."""
    hidden, out, g = (_hidden_difference(activation), _output_difference(output),
                      get_activation(activation).fn)
    m, L = X.shape[0], len(params)
    ones = jnp.ones((1, m), X.dtype)
    # the forward pass written as backprop's (affine_forward), so that XLA computes it once
    # where both are compiled together (_references)
    a, inputs, states = X.T, [jnp.concatenate([ones, X.T])], []  # inputs[l]: (1 + n_l, m)
    for theta in params[:-1]:
        z = affine_forward(theta, a)
        a = g(z)
        states.append(hidden.state(z, a))
        inputs.append(jnp.concatenate([ones, a]))
    Y_t = Y.T
    weights = [t[:, 1:] for t in params]
    net = {"hidden": states, "Y": Y_t, "weights": weights,
           "output": out.state(affine_forward(params[-1], a), Y_t),
           "max_input": [jnp.max(jnp.abs(a)) for a in inputs]}
    layers = []
    for layer, a in enumerate(inputs):
        if layer == L - 1:
            units = {"output": net["output"], "Y": Y_t,
                     "eye": jnp.eye(Y_t.shape[0], dtype=X.dtype).T}
        else:
            units = {"hidden": states[layer], "w": weights[layer + 1].T}
            if layer == L - 2:  # Y . dz_L for the rank-one change W_L[:, i] s of the logits
                units["Y_W"] = weights[-1].T @ Y_t
        layers.append((units, a))
    return net, layers


def _input_operands(a: np.ndarray, last: bool, eps: float, activation: str,
                    output: str) -> dict:
    """A layer's inputs ``a`` ``(1 + n_in, m)`` and, for each sign, what its kernel needs from
    the change ``d = +-eps a`` of ``z``: the activation rule's operand, or for the output
    layer, where only logit ``i`` moves, ``expm1(d)``. In numpy (``np.expm1``), on the host:
    cheaper than compiling these elementwise functions once more."""
    if last:
        use = _output_difference(output).series
        ops = (np.expm1(eps * a), np.expm1(-eps * a)) if use else (a, a)
    else:
        operand = _hidden_difference(activation).operand
        ops = (operand(eps * a, np.expm1), operand(-eps * a, np.expm1))
    return {"inputs": a, "ops": ops}


_prepare = jax.jit(_prepare_arrays, static_argnames=("activation", "output"))


def _blocks(arrays: dict, starts: tuple[int, ...], size: int) -> list[dict]:
    """Rows ``start:start+size`` of every ``(rows, ...)`` array in ``arrays`` (others as they
    are), for each start: each block its own array, sliced here rather than inside the
    kernel, where a dynamic slice keeps XLA from vectorizing the kernel's loops."""
    host = jax.tree.map(np.asarray, arrays)  # no copy on the CPU backend

    def block(start: int) -> dict:
        return jax.tree.map(lambda x: jnp.asarray(x[start:start + size] if x.ndim == 2 else x),
                            host)

    return [block(i) for i in starts]


def _plan(shapes: Sequence[tuple[int, int]], most: int) -> _Plan:
    """For each layer ``(n_rows, n_cols)``: the block ``(bi, bj)`` with ``bi * bj <= most``
    (but at least 1) and the starts of the blocks of rows and of columns that cover it; the
    last block of each axis is moved back to end at the edge (it overlaps its neighbour)."""
    plan = []
    for n_rows, n_cols in shapes:
        bj = _split(n_cols, most)
        bi = _split(n_rows, most // bj)
        plan.append(((bi, bj), tuple(min(i, n_rows - bi) for i in range(0, n_rows, bi)),
                     tuple(min(j, n_cols - bj) for j in range(0, n_cols, bj))))
    return tuple(plan)


#: the bounds of _bounds are multiplied by this (to cover their own rounding)
_SPARE = 1.01


def _bounds(sizes: tuple[int, ...], layer: int, eps: float, max_input: float,
            weights: list[np.ndarray], activation: str,
            output: str) -> tuple[int, int, int, int]:
    """Terms of the expm1, log1p and ``1/(1+x)`` series for the kernel of ``layer`` (0-based),
    the last two for the activation rule of the perturbed layer and for those above; from
    bounds on their arguments; 0 means the library function (or a division).

    ``|d| <= eps max|input|`` for the perturbed row of ``z_layer``; ``|g(z + d) - g(z)| <=
    Lip(g) |d|`` through each hidden layer and ``|dz_k| <= sum_u |W_ku| |da_u|`` through each
    product; the activation rules divide by ``1 + x`` with ``|x| <= expm1(scale |d|)``; the
    sigmoid output's log1p argument is ``prod_k (1 + v_k) - 1`` with ``|v_k| <=
    expm1(|dz_k|)``, so at most ``expm1(sum_k |dz_k|)``; the softmax's is at most
    ``expm1(max_k |dz_k|)``."""
    hidden, out = _hidden_difference(activation), _output_difference(output)
    if not out.series:
        return 0, 0, 0, 0
    L = len(sizes) - 1
    d_max = _SPARE * eps * max_input  # |change of z_layer|
    if layer == L - 1:  # only one logit moves; expm1(d) comes from the library
        return 0, _log1p_terms(math.expm1(d_max)), 0, 0
    if hidden.lipschitz is None:
        return 0, 0, 0, 0
    r_first = math.expm1(hidden.expm1_scale * d_max)  # |x| of the rule's 1 / (1 + x)
    r_max = 0.0
    s = hidden.lipschitz * d_max  # |change of a_layer|, one unit
    W = np.abs(weights[layer + 1])
    d_max, d_sum = s * float(np.max(W)), s * float(np.max(np.sum(W, axis=0)))
    e_max = 0.0  # |argument of expm1|
    for above in range(layer + 1, L - 1):
        e_max = max(e_max, hidden.expm1_scale * d_max)
        r_max = max(r_max, math.expm1(hidden.expm1_scale * d_max))
        a = hidden.lipschitz * d_max
        W = np.abs(weights[above + 1])
        d_max, d_sum = a * float(np.max(np.sum(W, axis=1))), a * float(np.sum(W))
    e_max = max(e_max, d_max)
    u = math.expm1(d_sum) if out.product else math.expm1(d_max)
    return (_expm1_terms(_SPARE * e_max), _log1p_terms(_SPARE * u),
            _recip_terms(_SPARE * r_first), _recip_terms(_SPARE * r_max))


def _layer_kernel(units: dict, ins: dict, net: dict, *, layer: int, eps: float,
                  activation: str, output: str, terms: tuple[int, int, int, int]) -> Array:
    """``sum_n [loss_n(+) - loss_n(-)]`` for the perturbations of ``Theta_{layer+1}[i, j]``
    for a block of ``bi`` units ``i`` and ``bj`` inputs ``j``: shape ``(bi, bj)``.

    ``units``, ``ins``: the block's pieces from :func:`_prepare` (sliced there, so that no
    dynamic slice keeps XLA from vectorizing the kernel's loops). The perturbations are
    carried through the layers above as ``(units, bi, bj, m)``, or one at a time beyond the
    next layer."""
    hidden, out = _hidden_difference(activation), _output_difference(output)
    em1 = partial(expm1_series, terms=terms[0])
    l1p = partial(log1p_series, terms=terms[1])
    recip, recip_above = (partial(recip_series, terms=t) for t in terms[2:])
    L = len(net["weights"])

    def unit_rows(x: Array) -> Array:  # (bi, m) as (bi, 1, m)
        return x[:, None, :] if x.ndim == 2 else x

    def broadcast(x: Array) -> Array:  # (units, m) as (units, 1, 1, m)
        return x[:, None, None, :] if x.ndim == 2 else x

    inputs = ins["inputs"][None]  # (1, bj, m)
    total, changes = 0, []
    for sign, operand in zip((1.0, -1.0), ins["ops"], strict=True):
        op = operand[None]
        d = (sign * eps) * inputs  # the change of z_layer[i] for input j, (1, bj, m)
        if layer == L - 1 and out.column is not None:  # only logit i moves
            state = tuple(unit_rows(x) for x in units["output"])
            delta = out.column(state, op, l1p) - unit_rows(units["Y"]) * d
        elif layer == L - 1:  # an output without a column rule: the whole change
            dz = units["eye"].T[:, :, None, None] * d[None]
            delta = out.rows(tuple(broadcast(x) for x in net["output"]), dz, em1, l1p) - \
                jnp.sum(broadcast(net["Y"]) * dz, axis=0)
        else:
            s = hidden.apply(tuple(unit_rows(x) for x in units["hidden"]), op, recip)
            if layer == L - 2:  # the rank-one change of the logits, fused into the loss
                dz = units["w"].T[:, :, None, None] * s
                delta = out.rows(tuple(broadcast(x) for x in net["output"]), dz, em1, l1p) - \
                    s * unit_rows(units["Y_W"])  # Y . dz = s (W_L^T Y)_i
            else:
                changes.append(s)
                continue
        total = total + sign * delta
    if changes:  # through the layers above one perturbation at a time (fits the caches)
        w = units["w"]  # (bi, n_{l+1})
        bi, bj, m = changes[0].shape
        w = jnp.broadcast_to(w[None, :, None, :], (2, bi, bj, w.shape[1])).reshape(-1, w.shape[1])
        sums = jax.lax.map(
            lambda ws: _through_above(net, layer, *ws, hidden, out, em1, l1p, recip_above),
            (w, jnp.stack(changes).reshape(-1, m))).reshape(2, bi, bj)
        return sums[0] - sums[1]
    return jnp.sum(total, axis=-1)


def _through_above(net: dict, layer: int, w: Array, s: Array, hidden: _HiddenDifference,
                   out: _OutputDifference, em1: Callable, l1p: Callable,
                   recip: Callable) -> Array:
    """``sum_n`` of the change of each example's loss when ``a_layer`` of unit ``i`` changes by
    ``s`` ``(m,)``, ``w = W_{layer+2}[:, i]``, carried through every layer above."""
    W, Y, L = net["weights"], net["Y"], len(net["weights"])
    dz = w[:, None] * s  # rank one, (n_{l+1}, m)
    for above in range(layer + 1, L - 1):
        da = hidden.apply(net["hidden"][above], hidden.operand(dz, em1), recip)
        dz = W[above + 1] @ da
    return jnp.sum(out.rows(net["output"], dz, em1, l1p) - jnp.sum(Y * dz, axis=0))


_layer_kernel_jit = jit_with_options(_layer_kernel, VECTOR_KERNELS, static_argnames=(
    "layer", "eps", "activation", "output", "terms"))


#: the perturbations of one compiled call are as many as keep its largest intermediate near this
#: many numbers (fastest on the benchmarks' 2-core CPU: larger blocks fall out of its caches)
_BLOCK_ELEMENTS = 2**20


def _split(n: int, most: int) -> int:
    """The block length that covers ``n`` in the fewest blocks of at most ``most`` (but at
    least 1), rounded up to an even number where ``n`` allows: XLA's CPU loops run about
    three times slower over an odd number of rows (measured, benchmarks/RESULTS.md)."""
    blocks = -(-n // max(1, min(n, most)))
    length = -(-n // blocks)
    length += length % 2
    if length > n:  # n odd and one block: two blocks of an even length instead
        length = n if n == 1 else -(-n // 2) + (-(-n // 2)) % 2
    return length


def _penalty_difference(theta: np.ndarray, lam: float, m: int, eps: float) -> np.ndarray:
    """Central difference of ``lam/(2m) * sum(Theta[:, 1:]**2)`` for every entry, from the
    perturbed squares: ``lam/(2m) ((w + eps)^2 - (w - eps)^2) / (2 eps)``, 0 for the bias
    column. (The penalty is quadratic, so this equals its derivative up to rounding.)"""
    d = lam / (2 * m) * ((theta + eps) ** 2 - (theta - eps) ** 2) / (2 * eps)
    d[:, 0] = 0
    return d


def incremental_gradient_arrays(params: Params, X: Array, Y: Array, lam: float, eps: float,
                                activation: str = "sigmoid", output: str = "sigmoid",
                                chunk_size: int | None = None, *,
                                prepared: tuple[dict, list] | None = None
                                ) -> tuple[np.ndarray, ...]:
    """The incremental central differences of :func:`jaxnn.losses.regularized_cost` for
    ``params``, ``X`` ``(m, n_0)`` and targets ``Y`` ``(m, K)`` already cast to float64 (inside
    x64); no checks. ``chunk_size``: perturbations per compiled call (None: as many as keep the
    largest intermediate near :data:`_BLOCK_ELEMENTS` numbers). ``prepared``: the unperturbed
    forward pass if already computed (:func:`_prepare_arrays`). Returns float64 numpy arrays."""
    sizes = layer_sizes(params)
    m = X.shape[0]
    lam, eps = float(lam), float(eps)
    plan = _plan([t.shape for t in params], chunk_size or _BLOCK_ELEMENTS // m)
    if prepared is None:
        prepared = _prepare(params, X, Y, activation=activation, output=output)
    net, layers = prepared
    max_input = [float(v) for v in net["max_input"]]
    weights = [np.asarray(w) for w in net["weights"]]
    grads = []
    for layer, (theta, ((bi, bj), i_starts, j_starts), (units, ins)) in enumerate(
            zip(params, plan, layers, strict=True)):
        terms = _bounds(sizes, layer, eps, max_input[layer], weights, activation, output)
        ins = _input_operands(np.asarray(ins), layer == len(params) - 1, eps, activation,
                              output)
        units, ins = _blocks(units, i_starts, bi), _blocks(ins, j_starts, bj)
        parts = [[_layer_kernel_jit(u, x, net, layer=layer, eps=eps, activation=activation,
                                    output=output, terms=terms) for x in ins] for u in units]
        data = np.empty(theta.shape)
        for i, row in zip(i_starts, parts, strict=True):
            for j, part in zip(j_starts, row, strict=True):
                data[i:i + bi, j:j + bj] = np.asarray(part)
        grads.append(data / (2 * eps * m)
                     + _penalty_difference(np.asarray(theta, np.float64), lam, m, eps))
    return tuple(grads)


def numerical_cost_gradient(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: ArrayLike = 0.0,
    *,
    eps: float = 1e-4,
    activation: str = "sigmoid",
    output: str = "sigmoid",
    chunk_size: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Central differences ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)`` of
    :func:`jaxnn.cost` for every parameter, in float64, computed incrementally (see the
    module's docstring): the numbers of :func:`numerical_gradient` of the cost to rounding
    (they agree to about 1e-11 relative; against the same differences evaluated in extended
    precision this is within about 1e-14, the plain one within about 1e-11), in a small
    fraction of its time: every parameter of the course's 400-25-10 network on 5000 examples
    in 0.26-0.34 s on two CPU cores, under 60 times one ``backprop`` call
    (benchmarks/RESULTS.md).

    Same arguments and checks as :func:`jaxnn.cost`; ``chunk_size``: at most this many
    perturbations per compiled call (default: as many as keep its largest intermediate near
    a million numbers). Runs under a scoped x64 switch whatever the inputs' dtype; returns
    float64 numpy arrays with the structure of ``params``."""
    _check_eps(eps)
    _check_chunk(chunk_size, allow_none=True)
    with x64():
        p, Xc, Y, lam = _float64_problem(params, X, y, lam, activation, output, True)
        return incremental_gradient_arrays(p, Xc, Y, float(lam), float(eps), activation, output,
                                           chunk_size)


#: float64 copies of every layer's inputs ``(1 + n_l, m)`` the incremental differences hold at
#: once: the inputs and their two operands (one per sign), each also as the kernel's blocks,
#: and the float64 ``X``: 5 as a floor (peak memory grows by 6.0 copies per example on
#: 400-25-10 and by 7.2 per added input pixel, benchmarks/RESULTS.md)
_INPUT_COPIES = 5
#: float64 ``(n_l, m)`` arrays per unit of each layer above the inputs: its state and deltas
_UNIT_COPIES = 2


def incremental_bytes(sizes: Sequence[int], m: int) -> int:
    """Estimated bytes (a floor) that :func:`numerical_cost_gradient` holds for a network of
    ``sizes`` on ``m`` examples, compilation aside: 5 float64 copies of every layer's inputs
    and 2 of every unit's activations. The course's 400-25-10 on 5000 examples: 84 MiB;
    784-25-10 on MNIST's 60,000 images: 1.8 GiB."""
    inputs = sum(1 + int(n) for n in sizes[:-1])
    return 8 * int(m) * (_INPUT_COPIES * inputs + _UNIT_COPIES * sum(int(n) for n in sizes[1:]))


def _float64_problem(params, X, y, lam, activation, output,  # noqa: ANN001, ANN202
                     incremental=False):
    """Checked arguments as float64 device arrays and a target matrix (inside x64); with
    ``incremental``, a problem whose incremental differences cannot fit is refused first."""
    params = tuple(np.asarray(t, np.float64) for t in as_params(params))
    if incremental and np.ndim(X) == 2:
        sizes, m = layer_sizes(params), np.shape(X)[0]
        check_memory(incremental_bytes(sizes, m),
                     f"the incremental numerical gradient of layer_sizes {sizes} on {m:,} "
                     "examples", hint="check fewer examples (the gradient check needs few)")
    X = np.asarray(X, np.float64) if np.ndim(X) else X
    p, Xc, yc, lam, _ = prepare_problem(params, X, y, lam, activation, output)
    p, Xc, Y = cast(tuple(map(jnp.asarray, p)), jnp.asarray(Xc), jnp.asarray(yc), jnp.float64)
    return p, Xc, Y, lam


@partial(jax.jit, static_argnames=("activation", "output", "prepare"))
def _references(params, X, Y, lam, activation, output, prepare=False):  # noqa: ANN001, ANN202
    """``(J, backprop's gradient, autodiff's gradient, the incremental differences' forward
    pass or None)`` in one compiled call (one compilation instead of three)."""
    J, g_b = backprop_arrays(params, X, Y, lam, activation, output)
    _, g_a = jax.value_and_grad(regularized_cost)(params, X, Y, lam, activation, output)
    return J, g_b, g_a, _prepare_arrays(params, X, Y, activation, output) if prepare else None


# --- the report ----------------------------------------------------------------------------------


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

    def passed(self, tol: float = 1e-9) -> bool:
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
        lines.append("relative difference = norm(a-b)/norm(a+b); below 1e-9 means the "
                     "backprop is correct.")
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
    eps: float = 1e-4,
    activation: str = "sigmoid",
    output: str = "sigmoid",
    method: str = "incremental",
    chunk_size: int | None = None,
) -> GradientCheck:
    """Compare the numerical gradient, :func:`jaxnn.backprop` and :func:`jaxnn.autodiff` in
    float64 (under a scoped x64 switch, whatever the inputs' dtype).

    ``method="incremental"`` (default) computes the numerical gradient with
    :func:`numerical_cost_gradient`; ``"plain"`` perturbs each parameter and re-evaluates the
    cost (:func:`numerical_gradient`, ``chunk_size`` directions at a time, default 256): the
    same numbers to rounding, far slower on large networks. Same arguments and checks as
    :func:`jaxnn.cost`; returns a :class:`GradientCheck`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    _check_eps(eps)
    _check_chunk(chunk_size, allow_none=True)
    with x64():
        incremental = method == "incremental"
        p, Xc, Y, lam = _float64_problem(params, X, y, lam, activation, output, incremental)
        J, g_b, g_a, prepared = _references(p, Xc, Y, lam, activation, output, incremental)
        if incremental:
            g_n = incremental_gradient_arrays(p, Xc, Y, float(lam), float(eps), activation,
                                              output, chunk_size, prepared=prepared)
        else:
            g_n = numerical_gradient(
                lambda q: regularized_cost(q, Xc, Y, lam, activation, output), p, eps,
                chunk_size=256 if chunk_size is None else chunk_size)
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
