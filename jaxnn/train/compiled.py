"""The host side of :func:`jaxnn.fit`'s compiled methods: their loops run segment by segment.

A compiled loop (:mod:`jaxnn.train.lbfgsb`, :mod:`jaxnn.train.lbfgs`, :mod:`jaxnn.train.fmincg`,
:mod:`jaxnn.train.loops`) runs from its carry up to a dynamic stop iteration;
:func:`run_segments` calls it ``segment`` iterations at a time, so that between two segments the
callback runs and a ``KeyboardInterrupt`` keeps the parameters of the last finished segment.
One compiled program serves every segment of every run of the same problem.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import jaxnn.train.fmincg as fmincg
import jaxnn.train.lbfgs as lbfgs
import jaxnn.train.lbfgsb as lbfgsb
import jaxnn.train.loops as loops
from jaxnn.compiling import LOOPS, jit_with_options
from jaxnn.defaults import LBFGS_TOL
from jaxnn.memory import check_memory
from jaxnn.model import seed_keys
from jaxnn.spec import NetSpec
from jaxnn.train.objective import ScipyObjective
from jaxnn.train.problem import Problem, callback_stops
from jaxnn.train.status import (
    Status,
    callback_message,
    epochs_message,
    interrupted_message,
    message,
)

LBFGS_SEGMENT = 25  # default iterations per compiled segment: L-BFGS-B, lbfgs, fmincg
MINIBATCH_SEGMENT_STEPS = 100  # default optimizer steps per compiled segment (whole epochs)
SEGMENT_KEPT = "those of the last finished compiled segment"  # what an interrupted run keeps

Callback = Callable[[int, float, tuple[np.ndarray, ...]], Any]

_lbfgsb_segment = jit_with_options(lbfgsb.lbfgsb_segment, LOOPS,
                                   static_argnames=("spec", "length"))
_lbfgs_segment = jit_with_options(lbfgs.lbfgs_segment, LOOPS, static_argnames=(
    "spec", "tol", "max_linesearch_steps", "length"))
_fmincg_segment = jit_with_options(fmincg.fmincg_segment, LOOPS,
                                   static_argnames=("value_and_grad", "length"))
_minibatch_init = jax.jit(loops.minibatch_init, static_argnames=("optimizer",))
_minibatch_segment = jax.jit(loops.minibatch_segment, static_argnames=(
    "spec", "optimizer", "batch_size", "length"))


def run_segments(step: Callable, carry, total: int, seg: int, progress: Callable,
                 callback: Callback | None, prob: Problem):
    """Call ``step(carry, stop) -> (carry, costs)`` segment by segment up to ``total``
    iterations, ``seg`` at a time.

    ``progress(carry) -> (iterations done, costs recorded, finished)`` on the host (a loop
    records one cost per iteration, except ``fmincg``, whose failed line searches record none).
    A carry replaces the previous one only once it is computed, so a ``KeyboardInterrupt``
    keeps the last finished segment. Returns ``(carry, iterations, history, interrupted, stop
    message)``."""
    it, recorded, history, interrupted, stopped = 0, 0, [], False, None
    latest = float("nan")  # the latest history entry
    try:
        while True:
            new, costs = step(carry, min(it + seg, total))
            (done, n_costs, finished), costs = progress(new), np.asarray(costs)
            history.append(costs[: n_costs - recorded])
            latest = float(history[-1][-1]) if n_costs > recorded else latest
            carry, it, recorded = new, done, n_costs
            if callback is not None and it > 0 and callback_stops(
                    callback, it, latest, prob.unravel(np.asarray(carry.theta))):
                stopped = callback_message(it)
                break
            if finished or it >= total:
                break
    except KeyboardInterrupt:
        interrupted = True
    history = np.concatenate(history).astype(np.float64) if history else np.zeros(0)
    return carry, it, history, interrupted, stopped


def _interrupted_at_start(prob: Problem) -> dict:
    """What ``fit`` returns for a ``KeyboardInterrupt`` before the loop's first state existed
    (while the loop compiled, or, for ``lbfgs`` and ``fmincg``, whose first pass makes the
    first evaluation, before their first segment finished): the initial parameters, no cost
    evaluated (NaN), no iteration."""
    return dict(params=prob.unravel(prob.theta0), cost=float("nan"), history=np.zeros(0),
                n_iter=0, n_evals=0, converged=False, interrupted=True,
                message=interrupted_message(0))


def _check_pairs(prob: Problem, pairs: int, name: str, default: int) -> None:
    """An L-BFGS memory of ``pairs`` pairs of vectors that cannot fit is a ``ValueError``."""
    n = prob.theta0.size
    check_memory(2 * pairs * n * prob.dtype.itemsize,
                 f"{name}={pairs:,}: the L-BFGS memory of {pairs:,} pairs of {n:,}-vectors",
                 hint=f"use fewer pairs (the default is {default})")


def fit_lbfgsb(prob: Problem, maxiter: int, tol, options, callback, segment) -> dict:
    """scipy's L-BFGS-B (:mod:`jaxnn.train.lbfgsb`), ``fit``'s default: ``maxiter`` iterations;
    the history holds the cost after each. ``options`` are scipy's (``maxcor``, ``ftol``,
    ``gtol``, ``maxls``, ``maxfun``; ``eps``, ``iprint`` and ``finite_diff_rel_step`` change
    nothing with an exact gradient, as in scipy); ``tol`` sets ``ftol`` and ``gtol`` unless
    given."""
    options = dict(options or {})
    ftol = options.get("ftol", lbfgsb.FTOL if tol is None else tol)
    gtol = options.get("gtol", lbfgsb.GTOL if tol is None else tol)
    int32 = np.iinfo(np.int32).max
    limits = lbfgsb.Limits(
        maxiter=np.int32(min(maxiter, int32)),
        maxfun=np.int32(min(options.get("maxfun", lbfgsb.MAXFUN), int32)),
        maxls=np.int32(min(options.get("maxls", lbfgsb.MAXLS), int32)),
        ftol=np.asarray(ftol, prob.dtype), gtol=np.asarray(gtol, prob.dtype))
    limits = jax.device_put(limits, prob.replicated)  # once, not at every segment's call
    maxcor = options.get("maxcor", lbfgsb.MAXCOR)
    _check_pairs(prob, maxcor, "options['maxcor']", lbfgsb.MAXCOR)
    theta0 = prob.put(prob.theta0)
    carry = jax.device_put(lbfgsb.lbfgsb_start(theta0, maxcor), theta0.sharding)
    seg = min(segment or LBFGS_SEGMENT, maxiter)  # a segment holds a cost per iteration
    length = max(seg, LBFGS_SEGMENT)

    def progress(c):
        it, stop = jax.device_get((c.it, c.stop))
        return int(it), int(it), int(stop) != lbfgsb.Stop.RUNNING

    def outcome(c, it: int) -> tuple[str, bool, bool]:
        stop = lbfgsb.Stop(int(c.stop))
        if stop is lbfgsb.Stop.NONFINITE:
            text = message(Status.NONFINITE, n_iter=it, maxiter=maxiter,
                           at_start=not np.isfinite(float(c.value)))
        elif stop is lbfgsb.Stop.ABNORMAL:  # the stall of the other loops, in scipy's name
            text = (message(Status.STALLED, n_iter=it, maxiter=maxiter)
                    + " (L-BFGS-B's ABNORMAL stop)")
        elif stop is lbfgsb.Stop.OVERFLOW:
            text = message(Status.OVERFLOW, n_iter=it, maxiter=maxiter, dtype=prob.dtype.name)
        else:
            text = lbfgsb.MESSAGES.get(stop, lbfgsb.MAXITER_MESSAGE)
        return text, stop in (lbfgsb.Stop.GTOL, lbfgsb.Stop.FTOL), stop is lbfgsb.Stop.NONFINITE

    carry, it, history, interrupted, stopped = run_segments(
        lambda c, stop: _lbfgsb_segment(c, prob.X, prob.Y, prob.lam, stop, limits,
                                        spec=prob.spec, length=length),
        carry, maxiter, seg, progress, callback, prob)
    return _full_batch_result(prob, carry, it, history, interrupted, stopped, outcome)


def fit_lbfgs(prob: Problem, maxiter: int, tol, options, callback, segment) -> dict:
    """optax's L-BFGS (:mod:`jaxnn.train.lbfgs`): ``maxiter`` iterations; the history holds
    the cost after each."""
    options = dict(options or {})
    memory_size = options.pop("memory_size", lbfgs.MEMORY_SIZE)
    _check_pairs(prob, memory_size, "options['memory_size']", lbfgs.MEMORY_SIZE)
    kw = dict(spec=prob.spec, tol=LBFGS_TOL if tol is None else float(tol), **options)
    theta0 = prob.put(prob.theta0)
    # the loop's first pass evaluates it; placed as the loop returns its state (see fmincg)
    carry = jax.device_put(lbfgs.lbfgs_start(theta0, memory_size), theta0.sharding)
    seg = min(segment or LBFGS_SEGMENT, maxiter)  # a segment holds a cost per iteration
    length = max(seg, LBFGS_SEGMENT)  # one compiled program for every segment <= the default

    def progress(c):
        it, status = jax.device_get((c.it, c.status))
        return int(it), int(it), int(status) != Status.RUNNING

    carry, it, history, interrupted, stopped = run_segments(
        lambda c, stop: _lbfgs_segment(c, prob.X, prob.Y, prob.lam, stop, length=length, **kw),
        carry, maxiter, seg, progress, callback, prob)
    return _full_batch_result(prob, carry, it, history, interrupted, stopped,
                              _status_outcome(prob, maxiter, kw["tol"]))


@functools.lru_cache(maxsize=64)
def _value_and_grad(spec: NetSpec) -> Callable:
    """``spec.value_and_grad``, one object per (equal) spec: the compiled fmincg loop takes it
    as a static argument, and bound methods of two equal specs compare unequal (their
    ``__self__`` by identity), which would compile the loop again on every call."""
    return spec.value_and_grad


def fit_fmincg(prob: Problem, maxiter: int, callback, segment) -> dict:
    """The course's ``fmincg`` (:mod:`jaxnn.train.fmincg`): ``maxiter`` line searches; the
    history holds the cost after each successful one, as ``fmincg.m``'s ``fX``."""
    vg, args = _value_and_grad(prob.spec), (prob.X, prob.Y, prob.lam)
    theta0 = prob.put(prob.theta0)
    # the loop's first pass evaluates it; placed as the loop returns its state (on the mesh
    # when data-parallel), so that the second segment reuses the first one's program
    carry = jax.device_put(fmincg.fmincg_start(theta0), theta0.sharding)
    seg = min(segment or LBFGS_SEGMENT, maxiter)  # a segment holds a cost per iteration
    length = max(seg, LBFGS_SEGMENT)

    def progress(c):
        it, n_success, status = jax.device_get((c.it, c.n_success, c.status))
        return int(it), int(n_success), int(status) != Status.RUNNING

    carry, it, history, interrupted, stopped = run_segments(
        lambda c, stop: _fmincg_segment(vg, c, stop, length=length, args=args),
        carry, maxiter, seg, progress, callback, prob)
    return _full_batch_result(prob, carry, it, history, interrupted, stopped,
                              _status_outcome(prob, maxiter))


Outcome = Callable[[Any, int], tuple[str, bool, bool]]


def _status_outcome(prob: Problem, maxiter: int, tol: float | None = None) -> Outcome:
    """How a loop with a :class:`Status` (``lbfgs``, ``fmincg``) ended: ``(carry, iterations)
    -> (message, converged, diverged)``; ``tol`` for the loops with a convergence test."""
    def outcome(carry, it: int) -> tuple[str, bool, bool]:
        status = int(carry.status)
        text = message(status, n_iter=it, maxiter=maxiter, tol=tol, dtype=prob.dtype.name,
                       at_start=not np.isfinite(float(carry.value)))
        return text, status == Status.CONVERGED, status == Status.NONFINITE
    return outcome


def _full_batch_result(prob: Problem, carry, it: int, history: np.ndarray, interrupted: bool,
                       stopped: str | None, outcome: Outcome) -> dict:
    """The result of a full-batch loop (``L-BFGS-B``, ``lbfgs``, ``fmincg``) from its last
    carry, :func:`run_segments`'s outcome and how the loop ended."""
    if interrupted and int(carry.n_evals) == 0:  # before the first segment finished
        return _interrupted_at_start(prob)
    text, converged, diverged = outcome(carry, it)
    text = stopped if stopped and not diverged else text
    if interrupted:
        text = interrupted_message(it, SEGMENT_KEPT)
    return dict(params=prob.unravel(np.asarray(carry.theta)), cost=float(carry.value),
                history=history, n_iter=it, n_evals=int(carry.n_evals), converged=converged,
                message=text, interrupted=interrupted, diverged=diverged)


def fit_minibatch(prob: Problem, optimizer, epochs: int, batch_size, seed: int, callback,
                   segment) -> dict:
    """adam, sgd or another optax optimizer (:mod:`jaxnn.train.loops`): ``epochs`` passes of
    shuffled mini-batches of ``batch_size`` (None: the full batch), the permutations drawn from
    ``seed``; the history holds the mean batch cost of each epoch."""
    m = prob.X.shape[0]
    b, nb = loops.n_batches(m, batch_size)
    key = seed_keys(int(seed))
    if prob.replicated is not None:
        key = jax.device_put(key, prob.replicated)
    seg = min(segment or max(1, MINIBATCH_SEGMENT_STEPS // nb), epochs)
    kw = dict(spec=prob.spec, optimizer=optimizer, batch_size=b,
              length=max(seg, MINIBATCH_SEGMENT_STEPS))
    try:
        carry = _minibatch_init(prob.put(prob.theta0), optimizer)
    except KeyboardInterrupt:
        return _interrupted_at_start(prob)

    def progress(c):
        it, finite = jax.device_get((c.epoch, c.finite))
        return int(it), int(it), not bool(finite)

    carry, it, history, interrupted, stopped = run_segments(
        lambda c, stop: _minibatch_segment(c, prob.X, prob.Y, prob.lam, key, stop, **kw),
        carry, epochs, seg, progress, callback, prob)
    theta, diverged = np.asarray(carry.theta), not bool(carry.finite)
    failed = it + 1 if diverged else None  # the epoch that turned non-finite
    rewound = bool(carry.rewound)  # the last counted epoch's parameters were dropped too
    it = max(it - 1, 0) if rewound else it
    objective = ScipyObjective(prob.X, prob.Y, prob.lam, prob.spec, prob.replicated)
    cost = float(objective.packed(theta)[0])
    # parameters whose full-batch cost is not finite (the last epoch's step, or batches that
    # missed it): one epoch back, else the start
    if not np.isfinite(cost) and it > 0 and not rewound:
        theta, it, diverged = np.asarray(carry.previous), it - 1, True
        cost = float(objective.packed(theta)[0])
    if not np.isfinite(cost) and it > 0:
        theta, it, diverged = np.asarray(prob.theta0), 0, True
        cost = float(objective.packed(theta)[0])
    history = history[:it]
    at_start = not np.isfinite(cost)
    diverged = diverged or at_start
    text = epochs_message(it, epochs, nb, b, diverged=diverged, at_start=at_start,
                          failed=failed)
    if interrupted:
        text = interrupted_message(it, SEGMENT_KEPT)
    elif stopped and not diverged:
        text = stopped
    return dict(params=prob.unravel(theta), cost=cost, history=history, n_iter=it,
                n_evals=it * nb, converged=False, message=text, interrupted=interrupted,
                diverged=diverged)
