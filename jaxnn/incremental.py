"""The incremental central differences of the network's cost: :func:`numerical_cost_gradient`.

The same numbers as perturbing each parameter and re-evaluating the cost
(:func:`jaxnn.gradcheck.numerical_gradient` of :func:`jaxnn.cost`), to rounding, in a small
fraction of its time. Perturbing ``Theta_l[i, j]`` leaves every layer below ``l`` unchanged and
moves row ``i`` of ``z_l`` by ``eps`` times input ``j`` (1 for the bias), so the next layer's
pre-activations change by a rank-one term; only the layers above are recomputed, and only the
*change* of each example's loss is computed and summed, with the exact differences of
:mod:`jaxnn.differences`. For the course's 400-25-10 network a perturbed evaluation is a pass
over 5000 x 10 numbers instead of 5000 x 400. No derivative is used: it stays an independent
check of :func:`jaxnn.backprop`. Also here: :func:`incremental_bytes`, the memory it needs (a
problem that cannot fit is refused first), and :func:`float64_problem`, the checked float64
problem that every numerical gradient of the cost starts from.

Layout: every array holds one *column* per example, as in :mod:`jaxnn.backprop`: activations
``(units, m)``. The perturbations of one layer are evaluated in blocks of ``bi`` units ``i`` by
``bj`` inputs ``j`` (:func:`_plan`), one compiled call per block (:func:`_layer_kernel`): the
change of ``a_l`` as ``(bi, bj, m)``, fused with the change of the loss where the next layer is
the output (the course's network: one loop over the block, nothing stored but the per-example
changes); through deeper networks one perturbation at a time, ``(units, m)`` arrays and one
matrix product per layer, a size that stays in the caches. The pieces of each block are sliced
on the host (:func:`_blocks`), not in the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.activations import get_activation
from jaxnn.backprop import affine_forward
from jaxnn.checks import Params, as_params, check_chunk_size, check_eps
from jaxnn.compiling import VECTOR_KERNELS, jit_with_options
from jaxnn.defaults import ACTIVATION, GRADCHECK_EPS, OUTPUT
from jaxnn.differences import (
    HiddenDifference,
    OutputDifference,
    expm1_series,
    expm1_terms,
    hidden_difference,
    log1p_series,
    log1p_terms,
    output_difference,
    recip_series,
    recip_terms,
)
from jaxnn.losses import cast, prepare_problem, regularized_cost
from jaxnn.memory import check_memory
from jaxnn.model import layer_sizes
from jaxnn.precision import x64

Array = jax.Array


# --- the unperturbed pass, the operands and the blocks -------------------------------------------


_Plan = tuple[tuple[tuple[int, int], tuple[int, ...], tuple[int, ...]], ...]


def prepare_arrays(params: Params, X: Array, Y: Array, activation: str,
                   output: str) -> tuple[dict, list]:
    """The unperturbed forward pass as the incremental differences need it (``net``), and for
    each layer ``(units, inputs)``: the arrays whose rows go with the units ``i`` of the layer,
    and its inputs ``(1 + n_in, m)`` (see :func:`_blocks` and :func:`_input_operands`)."""
    hidden, out, g = (hidden_difference(activation), output_difference(output),
                      get_activation(activation).fn)
    m, L = X.shape[0], len(params)
    ones = jnp.ones((1, m), X.dtype)
    # the forward pass written as backprop's (affine_forward), so that XLA computes it once
    # where both are compiled together (jaxnn.gradcheck.check_gradients)
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
    cheaper than compiling these elementwise functions once more. An ``expm1`` that overflows
    (``d`` past 709) gives the entries that :func:`incremental_gradient_arrays` computes again
    by plain differences."""
    with np.errstate(over="ignore", invalid="ignore"):
        if last:
            use = output_difference(output).series
            ops = (np.expm1(eps * a), np.expm1(-eps * a)) if use else (a, a)
        else:
            operand = hidden_difference(activation).operand
            ops = (operand(eps * a, np.expm1), operand(-eps * a, np.expm1))
    return {"inputs": a, "ops": ops}


_prepare = jax.jit(prepare_arrays, static_argnames=("activation", "output"))


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


# --- the series' bounds and the kernel -----------------------------------------------------------


#: the bounds of _bounds are multiplied by this (to cover their own rounding)
_SPARE = 1.01


def _expm1(x: float) -> float:
    """``math.expm1`` for a bound: infinite past float64's range (and for NaN), where
    ``math.expm1`` raises ``OverflowError``; an infinite bound means the library function."""
    return math.expm1(x) if x < 700.0 else math.inf


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
    hidden, out = hidden_difference(activation), output_difference(output)
    if not out.series:
        return 0, 0, 0, 0
    L = len(sizes) - 1
    d_max = _SPARE * eps * max_input  # |change of z_layer|
    if layer == L - 1:  # only one logit moves; expm1(d) comes from the library
        return 0, log1p_terms(_expm1(d_max)), 0, 0
    if hidden.lipschitz is None:
        return 0, 0, 0, 0
    r_first = _expm1(hidden.expm1_scale * d_max)  # |x| of the rule's 1 / (1 + x)
    r_max = 0.0
    s = hidden.lipschitz * d_max  # |change of a_layer|, one unit
    W = np.abs(weights[layer + 1])
    d_max, d_sum = s * float(np.max(W)), s * float(np.max(np.sum(W, axis=0)))
    e_max = 0.0  # |argument of expm1|
    for above in range(layer + 1, L - 1):
        e_max = max(e_max, hidden.expm1_scale * d_max)
        r_max = max(r_max, _expm1(hidden.expm1_scale * d_max))
        a = hidden.lipschitz * d_max
        W = np.abs(weights[above + 1])
        d_max, d_sum = a * float(np.max(np.sum(W, axis=1))), a * float(np.sum(W))
    e_max = max(e_max, d_max)
    u = _expm1(d_sum) if out.product else _expm1(d_max)
    return (expm1_terms(_SPARE * e_max), log1p_terms(_SPARE * u),
            recip_terms(_SPARE * r_first), recip_terms(_SPARE * r_max))


def _layer_kernel(units: dict, ins: dict, net: dict, *, layer: int, eps: float,
                  activation: str, output: str, terms: tuple[int, int, int, int]) -> Array:
    """``sum_n [loss_n(+) - loss_n(-)]`` for the perturbations of ``Theta_{layer+1}[i, j]``
    for a block of ``bi`` units ``i`` and ``bj`` inputs ``j``: shape ``(bi, bj)``.

    ``units``, ``ins``: the block's pieces of :func:`prepare_arrays`' arrays, sliced by
    :func:`_blocks` (so that no dynamic slice keeps XLA from vectorizing the kernel's loops).
    The perturbations are carried through the layers above as ``(units, bi, bj, m)``, or one at
    a time beyond the next layer."""
    hidden, out = hidden_difference(activation), output_difference(output)
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


def _through_above(net: dict, layer: int, w: Array, s: Array, hidden: HiddenDifference,
                   out: OutputDifference, em1: Callable, l1p: Callable,
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


# --- the gradient, and the plain differences where the rules overflow ----------------------------


def _penalty_difference(theta: np.ndarray, lam: float, m: int, eps: float) -> np.ndarray:
    """Central difference of ``lam/(2m) * sum(Theta[:, 1:]**2)`` for every entry, from the
    perturbed squares: ``lam/(2m) ((w + eps)^2 - (w - eps)^2) / (2 eps)``, 0 for the bias
    column. (The penalty is quadratic, so this equals its derivative up to rounding.)"""
    d = lam / (2 * m) * ((theta + eps) ** 2 - (theta - eps) ** 2) / (2 * eps)
    d[:, 0] = 0
    return d


def incremental_gradient_arrays(params: Params, X: Array, Y: Array, lam: float, eps: float,
                                activation: str = ACTIVATION, output: str = OUTPUT,
                                chunk_size: int | None = None, *,
                                prepared: tuple[dict, list] | None = None
                                ) -> tuple[np.ndarray, ...]:
    """The incremental central differences of :func:`jaxnn.losses.regularized_cost` for
    ``params``, ``X`` ``(m, n_0)`` and targets ``Y`` ``(m, K)`` already cast to float64 (inside
    x64); no checks. ``chunk_size``: perturbations per compiled call (None: as many as keep the
    largest intermediate near :data:`_BLOCK_ELEMENTS` numbers). ``prepared``: the unperturbed
    forward pass if already computed (:func:`prepare_arrays`). Returns float64 numpy arrays."""
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
        grad = data / (2 * eps * m) + _penalty_difference(np.asarray(theta, np.float64), lam,
                                                             m, eps)
        bad = np.argwhere(~np.isfinite(grad))
        if bad.size:
            # a change of z past float64's exponent range (huge X or eps: expm1 overflows
            # where sigmoid has saturated) leaves the exact rules nothing finite to work
            # with; those entries are the plain differences of the cost instead
            grad[tuple(bad.T)] = _plain_entries(params, X, Y, lam, eps, activation, output,
                                                layer, bad)
        grads.append(grad)
    return tuple(grads)


def _plain_entries(params: Params, X: Array, Y: Array, lam: float, eps: float,
                   activation: str, output: str, layer: int, entries: np.ndarray
                   ) -> np.ndarray:
    """``(J(Theta + eps E_ij) - J(Theta - eps E_ij)) / (2 eps)`` for the ``(i, j)`` rows of
    ``entries`` of layer ``layer``: the plain central differences of the cost, a few at a time
    (each holds a perturbed copy of the layer)."""
    c = max(1, min(64, 2**20 // params[layer].size))
    out = []
    for s in range(0, len(entries), c):
        rows, cols = (jnp.asarray(a) for a in entries[s:s + c].T)
        out.append(np.asarray(_plain_chunk(params, X, Y, lam, eps, rows, cols, layer=layer,
                                           activation=activation, output=output)))
    return np.concatenate(out)


@partial(jax.jit, static_argnames=("layer", "activation", "output"))
def _plain_chunk(params, X, Y, lam, eps, rows, cols, *, layer, activation, output):  # noqa: ANN001, ANN202
    def cost(i, j, step):  # noqa: ANN001, ANN202
        moved = (*params[:layer], params[layer].at[i, j].add(step), *params[layer + 1:])
        return regularized_cost(moved, X, Y, lam, activation, output)

    up = jax.vmap(lambda i, j: cost(i, j, eps))(rows, cols)
    down = jax.vmap(lambda i, j: cost(i, j, -eps))(rows, cols)
    return (up - down) / (2 * eps)


def numerical_cost_gradient(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: ArrayLike = 0.0,
    *,
    eps: float = GRADCHECK_EPS,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Central differences ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)`` of
    :func:`jaxnn.cost` for every parameter, in float64, computed incrementally (see the module's
    docstring): the numbers of :func:`jaxnn.gradcheck.numerical_gradient` of the cost to
    rounding (they agree to about 1e-11 relative; against the same differences evaluated in
    extended precision this is within about 1e-14, the plain one within about 1e-11), in a small
    fraction of its time: every parameter of the course's 400-25-10 network on 5000 examples in
    0.26-0.34 s on two CPU cores, under 60 times one ``backprop`` call (benchmarks/RESULTS.md).

    Same arguments and checks as :func:`jaxnn.cost`; ``chunk_size``: at most this many
    perturbations per compiled call (default: as many as keep its largest intermediate near
    a million numbers). Runs under a scoped x64 switch whatever the inputs' dtype; returns
    float64 numpy arrays with the structure of ``params``."""
    eps, chunk_size = check_eps(eps), check_chunk_size(chunk_size, allow_none=True)
    with x64():
        p, Xc, Y, lam = float64_problem(params, X, y, lam, activation, output, True)
        return incremental_gradient_arrays(p, Xc, Y, float(lam), eps, activation, output,
                                           chunk_size)


# --- memory, and the float64 problem -------------------------------------------------------------


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


def float64_problem(params, X, y, lam, activation, output,  # noqa: ANN001, ANN202
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
