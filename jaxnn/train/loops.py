"""Compiled optax training loops: L-BFGS with its zoom line search, and mini-batch adam/sgd.

Each loop is a ``lax.while_loop`` over a carry that holds the whole optimizer state, run from
the carry's iteration up to a *dynamic* stop iteration, recording the cost of each iteration in
a buffer of static ``length``: one compiled program serves a whole run (:func:`lbfgs_run`,
:func:`minibatch_run`: ``length = maxiter``) or any number of segments of any run of the same
problem (what :func:`jaxnn.fit` does, with ``length`` the segment size, so that a
``KeyboardInterrupt`` or a callback between segments keeps the parameters reached so far, and
``maxiter`` does not trigger a new compilation). Cutting a run into segments does not change its
numbers.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxnn.spec import NetSpec
from jaxnn.train.status import Status, all_finite

Array = jax.Array


@functools.lru_cache(maxsize=64)
def minibatch_optimizer(method: str, learning_rate) -> optax.GradientTransformation:
    """optax's ``adam`` or ``sgd`` with ``learning_rate`` (a float or a schedule). One object
    per (method, learning rate), so a compiled loop that takes it as static is reused."""
    return optax.adam(learning_rate) if method == "adam" else optax.sgd(learning_rate)


def lbfgs_optimizer(memory_size: int = 10, max_linesearch_steps: int = 20
                    ) -> optax.GradientTransformationExtraArgs:
    """optax's L-BFGS with its zoom line search (strong Wolfe conditions)."""
    return optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"
        ),
    )


class LbfgsCarry(NamedTuple):
    """State of the compiled L-BFGS loop."""

    theta: Array  # (n,)
    value: Array  # cost at theta
    grad: Array  # (n,) gradient at theta
    opt_state: optax.OptState
    it: Array  # iterations done
    n_evals: Array  # value-and-gradient evaluations so far
    status: Array  # RUNNING, CONVERGED, STALLED or NONFINITE


def lbfgs_init(theta0: Array, X: Array, Y: Array, lam: ArrayLike, *, spec: NetSpec,
               tol: float = 1e-5, memory_size: int = 10,
               max_linesearch_steps: int = 20) -> LbfgsCarry:
    """The loop's carry at ``theta0``: one value-and-gradient evaluation. Traceable.

    Every leaf is strongly typed, as :func:`lbfgs_segment` returns it: optax's ``init`` makes
    weakly typed scalars, and a carry that differs from the segment's own output only in weak
    types would compile the segment a second time."""
    cost = spec.differentiable_cost()
    opt = lbfgs_optimizer(memory_size, max_linesearch_steps)
    value, g = jax.value_and_grad(cost)(theta0, X, Y, lam)
    carry = LbfgsCarry(
        theta=theta0, value=value, grad=g, opt_state=opt.init(theta0),
        it=jnp.asarray(0, jnp.int32), n_evals=jnp.asarray(1, jnp.int32),
        status=_status(value, g, tol, jnp.asarray(False)),
    )
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, leaf.dtype), carry)


def _status(value: Array, g: Array, tol: float, stalled: Array) -> Array:
    return jnp.select(
        [~all_finite(value, g), jnp.max(jnp.abs(g)) <= tol, stalled],
        [Status.NONFINITE, Status.CONVERGED, Status.STALLED], Status.RUNNING,
    ).astype(jnp.int32)


def lbfgs_segment(carry: LbfgsCarry, X: Array, Y: Array, lam: ArrayLike, stop: ArrayLike, *,
                  spec: NetSpec, length: int, tol: float = 1e-5, memory_size: int = 10,
                  max_linesearch_steps: int = 20) -> tuple[LbfgsCarry, Array]:
    """L-BFGS iterations from ``carry`` until ``stop`` iterations are done in all (at most
    ``length`` more), the largest gradient component is ``<= tol``, the line search makes no
    progress, or the cost turns non-finite. Returns the new carry and ``(length,)`` costs after
    each iteration of this segment, NaN-padded. Traceable; ``stop`` may be traced."""
    cost = spec.differentiable_cost()
    opt = lbfgs_optimizer(memory_size, max_linesearch_steps)
    start = carry.it
    stop = jnp.minimum(stop, start + length)

    def cond(state: tuple[LbfgsCarry, Array]) -> Array:
        c, _ = state
        return (c.it < stop) & (c.status == Status.RUNNING)

    def body(state: tuple[LbfgsCarry, Array]) -> tuple[LbfgsCarry, Array]:
        c, history = state
        updates, opt_state = opt.update(c.grad, c.opt_state, c.theta, value=c.value,
                                        grad=c.grad, value_fn=lambda t: cost(t, X, Y, lam))
        theta = optax.apply_updates(c.theta, updates)
        value = optax.tree.get(opt_state, "value")  # the line search's value and gradient
        g = optax.tree.get(opt_state, "grad")  # at the accepted point
        steps = optax.tree.get(opt_state, "num_linesearch_steps")
        stalled = jnp.all(theta == c.theta)
        status = _status(value, g, tol, stalled)
        ok = status != Status.NONFINITE  # else keep the last finite iterate; no iteration done
        new = LbfgsCarry(
            theta=jnp.where(ok, theta, c.theta), value=jnp.where(ok, value, c.value),
            grad=jnp.where(ok, g, c.grad), opt_state=opt_state, it=c.it + ok.astype(jnp.int32),
            n_evals=c.n_evals + steps.astype(jnp.int32), status=status,
        )
        # one select over the segment's slots (an indexed write compiles into two kernels)
        return new, jnp.where(ok & (jnp.arange(length) == c.it - start), value, history)

    history = jnp.full((length,), jnp.nan, carry.value.dtype)
    return jax.lax.while_loop(cond, body, (carry, history))


def lbfgs_run(
    theta0: Array,
    X: Array,
    Y: Array,
    lam: ArrayLike,
    *,
    sizes: tuple[int, ...],
    activation: str = "sigmoid",
    output: str = "sigmoid",
    grad: str = "backprop",
    maxiter: int = 400,
    tol: float = 1e-5,
    memory_size: int = 10,
    max_linesearch_steps: int = 20,
) -> tuple[Array, Array, Array, Array]:
    """optax L-BFGS (zoom line search) from ``theta0``, the whole loop one ``lax.while_loop``.

    ``theta0`` ``(n,)`` Octave order for ``sizes``; ``X`` ``(m, n_0)``; ``Y`` ``(m, K)``
    targets; ``lam`` scalar. Stops after ``maxiter`` iterations or when ``max|g| <= tol`` (or
    the line search stalls, or the cost turns non-finite). Returns ``(theta, history, n_iter,
    n_evals)``: ``history`` ``(maxiter,)`` is the cost after each iteration, **NaN-padded**
    after the last one; ``n_evals`` counts value-and-gradient evaluations (line-search steps
    plus the initial one). Pure: ``jit`` it, or ``vmap`` it over ``(theta0, lam)`` with
    ``jax.vmap(partial(lbfgs_run, sizes=..., ...), in_axes=(0, None, None, 0))`` (under
    ``vmap`` the line search's ``lax.cond`` runs both branches)."""
    kw = dict(spec=NetSpec(tuple(sizes), activation, output, grad), tol=tol,
              memory_size=memory_size, max_linesearch_steps=max_linesearch_steps)
    carry = lbfgs_init(theta0, X, Y, lam, **kw)
    carry, history = lbfgs_segment(carry, X, Y, lam, maxiter, length=maxiter, **kw)
    return carry.theta, history, carry.it, carry.n_evals


# --- mini-batch first-order methods --------------------------------------------------------------


class MinibatchCarry(NamedTuple):
    """State of the compiled mini-batch loop."""

    theta: Array
    opt_state: optax.OptState
    epoch: Array
    finite: Array  # False once an epoch turned non-finite: the loop stops
    previous: Array  # theta at the start of the previous epoch
    rewound: Array  # the failing epoch's first cost (at theta) was already non-finite, so
    # theta was set back to ``previous``: the last epoch counted in ``epoch`` is not kept


def minibatch_init(theta0: Array, optimizer: optax.GradientTransformation) -> MinibatchCarry:
    return MinibatchCarry(theta=theta0, opt_state=optimizer.init(theta0),
                          epoch=jnp.asarray(0, jnp.int32), finite=jnp.asarray(True),
                          previous=theta0, rewound=jnp.asarray(False))


def n_batches(m: int, batch_size: int | None) -> tuple[int, int]:
    """``(batch size, batches per epoch)``: full batch when ``batch_size`` is None or >= m."""
    b = m if batch_size is None else min(int(batch_size), m)
    return b, m // b


def minibatch_segment(carry: MinibatchCarry, X: Array, Y: Array, lam: ArrayLike, key: Array,
                      stop: ArrayLike, *, spec: NetSpec,
                      optimizer: optax.GradientTransformation, batch_size: int | None,
                      length: int) -> tuple[MinibatchCarry, Array]:
    """Epochs from ``carry`` until ``stop`` epochs are done in all (at most ``length`` more) or
    a cost is non-finite; returns the new carry and ``(length,)`` mean mini-batch costs of this
    segment's epochs, NaN-padded.

    Each epoch draws a permutation from ``fold_in(key, epoch)`` and takes ``m // b`` batches of
    exactly ``b`` examples (the ``m mod b`` left over sit out that epoch, different ones each
    epoch); a full batch (``b == m``) uses ``X`` as is. Each batch's cost is the unbiased
    estimate of the full cost: mean data loss over the batch plus the full ``lam/(2m)`` penalty
    (``lam`` scaled by ``b/m``). Traceable; ``stop`` may be traced."""
    m = X.shape[0]
    b, nb = n_batches(m, batch_size)
    lam_b = lam * (b / m)
    start = carry.epoch
    stop = jnp.minimum(stop, start + length)
    vg = spec.value_and_grad

    def step(state, batch):
        theta, opt_state = state
        Xb, Yb = batch if batch is not None else (X, Y)
        J, g = vg(theta, Xb, Yb, lam_b)
        updates, opt_state = optimizer.update(g, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), J

    def body(state: tuple[MinibatchCarry, Array]) -> tuple[MinibatchCarry, Array]:
        c, history = state
        if b == m:
            (theta, opt_state), cost = step((c.theta, c.opt_state), None)
            first = cost
        else:
            perm = jax.random.permutation(jax.random.fold_in(key, c.epoch), m)
            idx = perm[: nb * b].reshape(nb, b)
            (theta, opt_state), Js = jax.lax.scan(
                lambda s, ix: step(s, (X[ix], Y[ix])), (c.theta, c.opt_state), idx)
            cost, first = jnp.mean(Js), Js[0]
        finite = all_finite(cost, theta)
        # a non-finite epoch is not counted, and its parameters are dropped: the carry keeps
        # those at its start, or those one epoch earlier if the cost there was non-finite too
        rewound = ~finite & ~jnp.isfinite(first)
        new = MinibatchCarry(
            theta=jnp.where(finite, theta, jnp.where(rewound, c.previous, c.theta)),
            opt_state=jax.tree.map(lambda a, b: jnp.where(finite, a, b), opt_state, c.opt_state),
            epoch=c.epoch + finite.astype(jnp.int32), finite=finite,
            previous=jnp.where(finite, c.theta, c.previous), rewound=rewound)
        return new, history.at[c.epoch - start].set(
            jnp.where(finite, cost.astype(history.dtype), jnp.nan))

    history = jnp.full((length,), jnp.nan, carry.theta.dtype)
    return jax.lax.while_loop(lambda s: (s[0].epoch < stop) & s[0].finite, body,
                              (carry, history))


def minibatch_run(
    theta0: Array,
    X: Array,
    Y: Array,
    lam: ArrayLike,
    key: Array,
    *,
    sizes: tuple[int, ...],
    activation: str = "sigmoid",
    output: str = "sigmoid",
    grad: str = "backprop",
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int | None = None,
) -> tuple[Array, Array]:
    """``epochs`` passes of ``optimizer`` (e.g. ``optax.adam(1e-3)``) over shuffled mini-batches.

    ``theta0`` ``(n,)``; ``X`` ``(m, n_0)``; ``Y`` ``(m, K)``; ``lam`` scalar; ``key`` a JAX PRNG
    key (each epoch's shuffle is ``fold_in(key, epoch)``); ``batch_size`` None for full batch.
    Returns ``(theta, history)`` with ``history`` ``(epochs,)`` the mean mini-batch cost of each
    epoch (the cost before each step, averaged; NaN-padded if a cost turned non-finite). Pure:
    ``vmap`` it over ``(theta0, lam, key)`` with ``in_axes=(0, None, None, 0, 0)``."""
    carry = minibatch_init(theta0, optimizer)
    spec = NetSpec(tuple(sizes), activation, output, grad)
    carry, history = minibatch_segment(carry, X, Y, lam, key, epochs, spec=spec,
                                       optimizer=optimizer, batch_size=batch_size, length=epochs)
    # an epoch whose parameters were dropped (see MinibatchCarry.rewound) leaves the history
    last = jnp.maximum(carry.epoch - 1, 0)
    history = history.at[last].set(jnp.where(carry.rewound, jnp.nan, history[last]))
    return carry.theta, history
