"""Compiled mini-batch training loops: optax's adam and sgd over shuffled mini-batches.

The loop is a ``lax.while_loop`` over a carry that holds the whole optimizer state, run from
the carry's epoch up to a *dynamic* stop epoch, recording the cost of each epoch in a buffer of
static ``length``: one compiled program serves a whole run (:func:`minibatch_run`: ``length =
epochs``) or any number of segments of any run of the same problem (what :func:`jaxnn.fit`
does, with ``length`` the segment size, so that a ``KeyboardInterrupt`` or a callback between
segments keeps the parameters reached so far, and ``epochs`` does not trigger a new
compilation). Cutting a run into segments does not change its numbers. (The full-batch loops,
L-BFGS and ``fmincg``, are :mod:`jaxnn.train.lbfgs` and :mod:`jaxnn.train.fmincg`.)
"""

from __future__ import annotations

import functools
import importlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxnn.checks import check_learning_rate
from jaxnn.defaults import ACTIVATION, GRAD, OUTPUT
from jaxnn.spec import NetSpec
from jaxnn.train.status import all_finite


class _FirstUse:
    """A module imported when one of its names is first used: ``fit``'s default never uses
    optax (0.05-0.1 s and 160 modules to import), and its annotations still resolve
    (``typing.get_type_hints``)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> object:
        return getattr(importlib.import_module(self._name), attr)


optax = _FirstUse("optax")

Array = jax.Array


def minibatch_optimizer(method: object, learning_rate: object) -> optax.GradientTransformation:
    """The optimizer a mini-batch run takes steps with: optax's ``adam`` or ``sgd`` with
    ``learning_rate`` (checked; None: the method's default), or the optax
    ``GradientTransformation`` passed as ``method``, which holds its own learning rate (then
    ``learning_rate`` must be None). ``fit`` and ``fit_stream`` ask here, and ``fit_many``,
    which takes adam and sgd by name only."""
    if not isinstance(method, str):
        if learning_rate is not None:
            raise ValueError("learning_rate is part of an optax optimizer passed as method; "
                             "drop learning_rate, or pass method='adam' or 'sgd' with it")
        return method
    return _adam_or_sgd(method, check_learning_rate(learning_rate, method))


@functools.lru_cache(maxsize=64)
def _adam_or_sgd(method: str, learning_rate) -> optax.GradientTransformation:
    """One object per (method, learning rate), so a compiled loop that takes it as static is
    reused."""
    return optax.adam(learning_rate) if method == "adam" else optax.sgd(learning_rate)


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
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    grad: str = GRAD,
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
