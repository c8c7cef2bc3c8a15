"""L-BFGS with the zoom line search (optax's algorithm), the whole run one compiled loop that
evaluates the objective once per pass.

``fit(method="lbfgs")`` runs optax's L-BFGS: ``optax.lbfgs`` (``scale_by_lbfgs`` with the
scaled identity as its first inverse Hessian, then ``scale(-1)``) followed by
``optax.scale_by_zoom_linesearch`` (strong Wolfe conditions; Nocedal and Wright, *Numerical
Optimization*, 2nd ed., algorithms 3.5 and 3.6, with Hager and Zhang's approximate decrease
test). This module is that algorithm, formula by formula, written again as a state machine:

* optax's line search step is a ``lax.cond`` between "search an interval" and "zoom into it",
  and *each* branch evaluates the objective, so XLA compiles the objective twice inside the
  loop, and its L-BFGS memory is a ring buffer read and written with dynamic indices. Here the
  next trial step is chosen first (both phases' formulas are scalar arithmetic), the objective
  is evaluated once, and the phase's bookkeeping follows; the memory holds the pairs oldest
  first and shifts them (static slices). The run compiles in a little over half the time
  (0.33-0.51 s against 0.63-0.79 s on a 2-core AMD EPYC, ``benchmarks/RESULTS.md``) and makes
  the same iterates to rounding (``tests/test_lbfgs.py`` runs both side by side).
* Like :mod:`jaxnn.train.fmincg`, the loop is a ``lax.while_loop`` over *evaluations*, and its
  first pass evaluates the start, so a run compiles one program holding one copy of the
  objective. The work that ends an iteration (store the pair, the next direction by the two-loop
  recursion, a fresh line search) runs under a ``lax.cond``, only in the pass that ends it.

An iteration: from ``theta`` with gradient ``g``, the direction is ``d = -H g``, ``H`` the
L-BFGS inverse Hessian of the last ``memory_size`` pairs ``(s, y)`` over ``gamma I``,
``gamma = s'y / y'y`` of the newest pair (``min(1, 1/||g||)`` before the first). The line search
tries ``t = 1``, doubles ``t`` until it brackets a step (a trial with too little decrease, a
higher cost than the previous trial, or an upward slope), then zooms into the bracket by cubic,
quadratic or bisection steps, until a trial has sufficient decrease and ``|f'(t)| <= c2
|f'(0)|``. After ``max_linesearch_steps`` trials (or, zooming, a bracket shorter than ``1e-5``)
it takes optax's "safe" step: a trial with sufficient decrease if there was one (the last such
while searching, the lowest while zooming), else the last trial. The run stops after
``maxiter`` iterations, when ``max|g| <= tol``, when a line search leaves ``theta`` where it
was (stalled), on a non-finite cost or gradient (keeping the last finite iterate), or when the
gradient's squared norm or slope overflows the dtype (above about 1e19 in float32: the line
search's arithmetic cannot work with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.defaults import ACTIVATION, GRAD, LBFGS_TOL, MAXITER, OUTPUT
from jaxnn.spec import NetSpec
from jaxnn.train.status import Status, gradient_status

__all__ = ["CURV_RTOL", "MAX_LINESEARCH_STEPS", "MEMORY_SIZE", "SLOPE_RTOL", "LbfgsCarry",
           "ZoomState", "lbfgs_run", "lbfgs_segment", "lbfgs_start",
           "passes_until", "two_loop_direction"]

Array = jax.Array

MEMORY_SIZE = 10  # pairs (s, y) kept: optax.lbfgs's default
MAX_LINESEARCH_STEPS = 20  # trials per line search
# optax.scale_by_zoom_linesearch's defaults, which fit(method="lbfgs") has always used
SLOPE_RTOL = 1e-4  # sufficient decrease: f(t) <= f(0) + SLOPE_RTOL t f'(0)
CURV_RTOL = 0.9  # curvature: |f'(t)| <= CURV_RTOL |f'(0)|
APPROX_DEC_RTOL = 1e-6  # Hager and Zhang's approximate decrease, near a minimum
INCREASE_FACTOR = 2.0  # while no bracket is known, the next trial is this times the last
INTERVAL_THRESHOLD = 1e-5  # a bracket this short (with a safe step known) ends the search


class ZoomState(NamedTuple):
    """The line search along the current direction: optax's ``ZoomLinesearchState`` less what
    the carry holds already (the start's cost and slope are :class:`LbfgsCarry`'s ``value``
    and ``slope``). ``low`` and ``high`` are the bracket's ends, not ordered by size: ``low``
    the end the zoom keeps, ``high`` the end it replaces (optax's terms)."""

    count: Array  # int32 trials so far
    stepsize: Array  # the last trial step, its cost and slope
    value: Array
    slope: Array
    interval_found: Array  # bool: zooming into [low, high]
    low: Array
    value_low: Array
    slope_low: Array
    high: Array
    value_high: Array
    slope_high: Array
    cubic_ref: Array  # the third point of the cubic fit
    value_cubic_ref: Array
    safe_stepsize: Array  # a trial with sufficient decrease (0: none yet; see _searched, _zoomed)
    safe_value: Array
    safe_grad: Array  # (n,)


class LbfgsCarry(NamedTuple):
    """State of the compiled L-BFGS loop. Before the first evaluation (``n_evals == 0``, the
    state of :func:`lbfgs_start`) ``value``, ``grad``, ``slope`` and ``ls`` are placeholders
    and ``direction`` is zero. Segments end between two line searches (or when the run stops):
    there ``theta``, ``value`` and ``grad`` are the iterate, its cost and its gradient."""

    theta: Array  # (n,)
    value: Array
    grad: Array  # (n,)
    direction: Array  # (n,) -H g, the current line search's
    slope: Array  # g . direction
    S: Array  # (memory_size, n) the last steps s, oldest first (zero rows: empty)
    Yd: Array  # (memory_size, n) the gradient changes y
    rho: Array  # (memory_size,) 1 / s'y (0 for an empty slot, or when s'y = 0)
    ls: ZoomState
    it: Array  # int32 iterations done
    n_evals: Array  # int32 evaluations, the initial one included
    status: Array  # int32 Status


# --- the line search's formulas ----------------------------------------------------------------


def _violation(excess: Array) -> Array:
    """How far a condition ``excess <= 0`` is missed: 0 when met, infinite for NaN."""
    error = jnp.maximum(excess, 0.0)
    return jnp.where(jnp.isnan(error), jnp.inf, error)


def _decrease_error(t: Array, f: Array, slope: Array, f0: Array, slope0: Array) -> Array:
    """How far the trial misses sufficient decrease (Armijo, or Hager and Zhang's approximate
    test, whichever is met more nearly)."""
    armijo = f - f0 - SLOPE_RTOL * t * slope0
    approx = jnp.maximum(slope - (2 * SLOPE_RTOL - 1.0) * slope0,
                         f - f0 - APPROX_DEC_RTOL * jnp.abs(f0))
    return _violation(jnp.minimum(approx, armijo))


def _curvature_error(slope: Array, slope0: Array) -> Array:
    """How far the trial misses the strong Wolfe curvature condition."""
    return _violation(jnp.abs(slope) - CURV_RTOL * jnp.abs(slope0))


def _cubicmin(a, fa, fpa, b, fb, c, fc):
    """The critical point of the cubic through ``(a, fa)``, ``(b, fb)``, ``(c, fc)`` with slope
    ``fpa`` at ``a`` (NaN when it has none: the caller then falls back)."""
    C = fpa
    db = b - a
    dc = c - a
    denom = (db * dc) ** 2 * (db - dc)
    u, v = fb - fa - C * db, fc - fa - C * dc
    A = (dc**2 * u + -(db**2) * v) / denom
    B = (-(dc**3) * u + db**3 * v) / denom
    radical = B * B - 3.0 * A * C
    return a + (-B + jnp.sqrt(radical)) / (3.0 * A)


def _quadmin(a, fa, fpa, b, fb):
    """The critical point of the quadratic through ``(a, fa)``, ``(b, fb)`` with slope ``fpa``
    at ``a``."""
    db = b - a
    B = (fb - fa - fpa * db) / (db**2)
    return a - fpa / (2.0 * B)


def _zoom_step(ls: ZoomState) -> Array:
    """The next trial inside the bracket: the cubic's minimizer if it lies well inside (20% of
    the bracket from either end), else the quadratic's (10%), else the midpoint."""
    low, high = ls.low, ls.high
    delta = jnp.abs(high - low)
    left, right = jnp.minimum(high, low), jnp.maximum(high, low)
    cubic = _cubicmin(low, ls.value_low, ls.slope_low, high, ls.value_high, ls.cubic_ref,
                      ls.value_cubic_ref)
    use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
    quad = _quadmin(low, ls.value_low, ls.slope_low, high, ls.value_high)
    use_quad = ~use_cubic & (quad > left + 0.1 * delta) & (quad < right - 0.1 * delta)
    middle = jnp.where(use_cubic, cubic, ls.cubic_ref)
    middle = jnp.where(use_quad, quad, middle)
    return jnp.where(~use_cubic & ~use_quad, (low + high) / 2.0, middle)


def _trial_step(ls: ZoomState) -> Array:
    """The step the line search tries next: 1 first, then twice the last until a bracket is
    found, then :func:`_zoom_step`."""
    search = jnp.where(ls.count == 0, 1.0, INCREASE_FACTOR * ls.stepsize)
    return jnp.where(ls.interval_found, _zoom_step(ls), search).astype(ls.stepsize.dtype)


def _searched(ls: ZoomState, t, f, g, slope, dec, error, max_ls: int):
    """After trial ``t`` while searching for a bracket: the new state, done, failed."""
    safe = dec <= 0.0
    high_to_new = (dec > 0.0) | ((f >= ls.value) & (ls.count > 0))
    low_to_new = (slope >= 0.0) & ~high_to_new
    # the bracket is [last trial, this one], or [this one, last trial] when this one is low
    low = jnp.where(low_to_new, t, ls.stepsize)
    value_low = jnp.where(low_to_new, f, ls.value)
    done = error <= 0.0
    state = ls._replace(
        interval_found=high_to_new | low_to_new | done,
        low=low, value_low=value_low, slope_low=jnp.where(low_to_new, slope, ls.slope),
        high=jnp.where(low_to_new, ls.stepsize, t), value_high=jnp.where(low_to_new, ls.value, f),
        slope_high=jnp.where(low_to_new, ls.slope, slope),
        cubic_ref=low, value_cubic_ref=value_low,
        safe_stepsize=jnp.where(safe, t, ls.safe_stepsize),
        safe_value=jnp.where(safe, f, ls.safe_value),
        safe_grad=jnp.where(safe, g, ls.safe_grad))
    return state, done, (ls.count + 1 >= max_ls) & ~done


def _zoomed(ls: ZoomState, t, f, g, slope, dec, error, max_ls: int):
    """After trial ``t`` inside the bracket: the new state, done, failed."""
    better = (dec <= 0.0) & (f < ls.safe_value)
    safe_stepsize = jnp.where(better, t, ls.safe_stepsize)
    done = error <= 0.0
    high_to_middle = (dec > 0.0) | (f >= ls.value_low)
    high_to_low = (slope * (ls.high - ls.low) >= 0.0) & ~high_to_middle
    low_to_middle = ~high_to_middle

    def high(low_end, middle, high_end):  # the new high end: the low one, this trial, or as is
        return jnp.where(high_to_low, low_end, jnp.where(high_to_middle, middle, high_end))

    moved = high_to_middle | high_to_low
    too_short = jnp.abs(ls.high - ls.low) <= INTERVAL_THRESHOLD
    failed = ((ls.count + 1 >= max_ls) | (too_short & (safe_stepsize > 0.0))) & ~done
    state = ls._replace(
        low=jnp.where(low_to_middle, t, ls.low),
        value_low=jnp.where(low_to_middle, f, ls.value_low),
        slope_low=jnp.where(low_to_middle, slope, ls.slope_low),
        high=high(ls.low, t, ls.high), value_high=high(ls.value_low, f, ls.value_high),
        slope_high=high(ls.slope_low, slope, ls.slope_high),
        cubic_ref=jnp.where(moved, ls.high, ls.low),
        value_cubic_ref=jnp.where(moved, ls.value_high, ls.value_low),
        safe_stepsize=safe_stepsize, safe_value=jnp.where(better, f, ls.safe_value),
        safe_grad=jnp.where(better, g, ls.safe_grad))
    return state, done, failed


def _fresh_search(value: Array, grad: Array, slope: Array) -> ZoomState:
    """A line search that has tried nothing yet from a point with cost ``value``, gradient
    ``grad`` and slope ``slope`` along the new direction."""
    zero = jnp.zeros_like(value)
    return ZoomState(
        count=jnp.zeros((), jnp.int32), stepsize=zero, value=value, slope=slope,
        interval_found=jnp.zeros((), bool), low=zero, value_low=value, slope_low=slope,
        high=zero, value_high=value, slope_high=slope, cubic_ref=zero, value_cubic_ref=value,
        safe_stepsize=zero, safe_value=value, safe_grad=grad)


# --- the quasi-Newton direction ----------------------------------------------------------------


def two_loop_direction(g: Array, S: Array, Yd: Array, rho: Array, gamma: Array,
                       oldest: ArrayLike = 0) -> Array:
    """``-H g`` by the two-loop recursion over the pairs, over ``gamma I``. The rows of ``S``,
    ``Yd`` and ``rho`` are a ring whose oldest pair is row ``oldest`` (0: oldest first, newest
    last); a slot with ``rho = 0`` (empty, or forgotten) is skipped, whatever its rows hold.
    The rows are read where they lie, one at a time (no reordered copy of the memory).

    A skipped slot adds ``-0.0 * 0`` (its coefficient zeroed where it is computed, its row
    where the row is read), which leaves every entry as it was, signed zeros too: XLA:CPU
    fuses those selects into the scalar and into the row's copy, where a select over the
    updated vector was a kernel of its own at every step (twice the memory's size)."""
    order = (oldest + jnp.arange(S.shape[0])) % S.shape[0]  # oldest first

    def newest_first(q, i):
        skip = rho[i] == 0
        alpha = jnp.where(skip, 0.0, rho[i] * jnp.dot(S[i], q))
        return q + -alpha * jnp.where(skip, 0.0, Yd[i]), alpha

    q, alphas = jax.lax.scan(newest_first, g, order, reverse=True)

    def oldest_first(r, step):
        i, alpha = step
        skip = rho[i] == 0
        beta = rho[i] * jnp.dot(Yd[i], r)
        return r + jnp.where(skip, -0.0, alpha - beta) * jnp.where(skip, 0.0, S[i]), None

    r, _ = jax.lax.scan(oldest_first, gamma * q, (order, alphas))
    return -1.0 * r


def _finish(c: LbfgsCarry, fresh: Array, t: Array, f: Array, g: Array, tol: float
            ) -> tuple[LbfgsCarry, Array]:
    """The line search ended at step ``t`` with cost ``f`` and gradient ``g`` (the first pass:
    the start's evaluation): the iteration is done unless the cost or gradient is not finite;
    store its pair and begin the next line search. Returns the carry and whether an iteration
    was done."""
    theta = c.theta + t * c.direction
    # all(theta == c.theta) as a count of the entries that moved: XLA:CPU reduces a boolean
    # vector in three kernels, a float one in one
    same = jnp.sum((theta != c.theta).astype(theta.dtype)) == 0
    status = gradient_status(f, g, tol, stalled=~fresh & same)
    ok = status != Status.NONFINITE
    done = ok & ~fresh
    s, y = theta - c.theta, g - c.grad
    sy, yy = jnp.dot(y, s), jnp.sum(jnp.square(y))

    def push(rows: Array, row: Array) -> Array:  # the newest last, the oldest dropped
        return jnp.where(done, jnp.concatenate([rows[1:], row[None]]), rows)

    S, Yd = push(c.S, s), push(c.Yd, y)
    rho = push(c.rho, jnp.where(sy == 0.0, 0.0, 1.0 / sy).astype(sy.dtype))
    gg = jnp.sum(jnp.square(g))
    gamma = jnp.where(fresh, jnp.minimum(1.0, 1.0 / jnp.sqrt(gg)),
                      jnp.where(yy > 0.0, sy / yy, 1.0)).astype(g.dtype)
    keep = ok | fresh  # the start is the run's first iterate, finite or not
    theta, f, g = (jnp.where(keep, a, b) for a, b in ((theta, c.theta), (f, c.value), (g, c.grad)))
    d = two_loop_direction(g, S, Yd, rho, gamma)
    slope = jnp.dot(g, d)
    # a gradient whose squared norm or slope overflows the dtype (above about 1e19 in float32):
    # the line search's arithmetic cannot work with it
    status = jnp.where((status == Status.RUNNING) & jnp.isinf(gg + slope), Status.OVERFLOW,
                       status)
    new = LbfgsCarry(theta=theta, value=f, grad=g, direction=d, slope=slope, S=S, Yd=Yd,
                     rho=rho, ls=_fresh_search(f, g, slope), it=c.it + done.astype(jnp.int32),
                     n_evals=c.n_evals, status=status)
    return new, done


def _pass(c: LbfgsCarry, X: Array, Y: Array, lam: ArrayLike, spec: NetSpec, tol: float,
          max_ls: int) -> tuple[LbfgsCarry, Array]:
    """One evaluation and what it decides. Returns the new carry and whether it ended an
    iteration."""
    fresh = c.n_evals == 0  # the first pass evaluates the start (the direction is zero)
    ls = c.ls
    t = jnp.where(fresh, 0.0, _trial_step(ls)).astype(c.value.dtype)
    f, g = spec.value_and_grad(c.theta + t * c.direction, X, Y, lam)
    f, g = jnp.asarray(f, c.value.dtype), jnp.asarray(g, c.value.dtype)
    slope = jnp.dot(g, c.direction)
    dec = _decrease_error(t, f, slope, c.value, c.slope)
    error = jnp.maximum(dec, _curvature_error(slope, c.slope))
    searched = _searched(ls, t, f, g, slope, dec, error, max_ls)
    zoomed = _zoomed(ls, t, f, g, slope, dec, error, max_ls)
    ls, done, failed = jax.tree.map(lambda a, b: jnp.where(ls.interval_found, a, b),
                                    zoomed, searched)
    ls = ls._replace(count=ls.count + 1, stepsize=t, value=f, slope=slope)
    # a failed search takes its safe step, a trial with sufficient decrease (or, when the last
    # trial left the function's domain, the start again); the first pass has no search
    safe = failed & ~fresh & ((ls.safe_stepsize > 0.0) | jnp.isinf(dec))
    t, f, g = (jnp.where(safe, a, b) for a, b in
               ((ls.safe_stepsize, t), (ls.safe_value, f), (ls.safe_grad, g)))
    ended = done | failed | fresh
    c = c._replace(ls=ls, n_evals=c.n_evals + 1)
    return jax.lax.cond(ended, lambda: _finish(c, fresh, t, f, g, tol),
                        lambda: (c, jnp.zeros((), bool)))


# --- the loop ----------------------------------------------------------------------------------


def lbfgs_start(theta0: ArrayLike, memory_size: int = MEMORY_SIZE) -> LbfgsCarry:
    """The carry of a run from ``theta0`` ``(n,)`` before its first evaluation, which the
    first pass of :func:`lbfgs_segment` makes (so a run compiles one objective, inside its
    loop). No computation: on a device array outside ``jit`` it compiles nothing. The dtype of
    ``theta0`` (float32 or float64) is the whole run's."""
    theta0 = jnp.asarray(theta0)
    dtype, n = theta0.dtype, theta0.shape[0]
    zero, i0 = np.zeros((), dtype), np.zeros((), np.int32)
    zeros = np.zeros((memory_size, n), dtype)
    ls = ZoomState(count=i0, stepsize=zero, value=zero, slope=zero,
                   interval_found=np.asarray(False), low=zero, value_low=zero, slope_low=zero,
                   high=zero, value_high=zero, slope_high=zero, cubic_ref=zero,
                   value_cubic_ref=zero, safe_stepsize=zero, safe_value=zero, safe_grad=theta0)
    return LbfgsCarry(theta=theta0, value=zero, grad=theta0, direction=np.zeros(n, dtype),
                      slope=zero, S=zeros, Yd=zeros, rho=np.zeros(memory_size, dtype), ls=ls,
                      it=i0, n_evals=i0, status=np.asarray(Status.RUNNING, np.int32))


def lbfgs_segment(carry: LbfgsCarry, X: Array, Y: Array, lam: ArrayLike, stop: ArrayLike, *,
                  spec: NetSpec, length: int, tol: float = LBFGS_TOL,
                  max_linesearch_steps: int = MAX_LINESEARCH_STEPS
                  ) -> tuple[LbfgsCarry, Array]:
    """Iterations from ``carry`` until ``stop`` are done in all (at most ``length`` more), the
    largest gradient component is ``<= tol``, a line search leaves the iterate where it was, or
    the cost or gradient turns non-finite. Returns the new carry (between two line searches,
    unless the run stopped) and ``(length,)`` the cost after each iteration of this segment,
    NaN-padded. The memory size is the carry's (:func:`lbfgs_start`). Traceable; ``stop`` may
    be traced. Cutting a run into segments does not change its numbers."""
    return passes_until(
        carry, stop, length, running=lambda c: c.status == Status.RUNNING,
        between=lambda c: c.ls.count == 0,
        step=lambda c: _pass(c, X, Y, lam, spec, tol, max_linesearch_steps))


def passes_until(carry, stop: ArrayLike, length: int, *, running: Callable, between: Callable,
                 step: Callable) -> tuple[Any, Array]:
    """The segment loop of an L-BFGS state machine over evaluations (this module's and
    :mod:`jaxnn.train.lbfgsb`'s): ``step(carry) -> (carry, an iteration ended)`` pass after pass
    while ``running(carry)``, until ``stop`` iterations are done in all (at most ``length``
    more) and the carry is ``between`` two line searches. ``carry`` has ``theta``, ``value``,
    ``it`` and ``n_evals``; one with ``n_evals == 0`` is evaluated whatever ``stop`` is.
    Returns the carry and ``(length,)`` the cost after each iteration, NaN-padded."""
    start = carry.it
    stop = jnp.minimum(jnp.asarray(stop, jnp.int32), start + length)

    def cond(state: tuple[Any, Array]) -> Array:
        c = state[0]
        return running(c) & (~between(c) | (c.it < stop) | (c.n_evals == 0))

    def body(state: tuple[Any, Array]) -> tuple[Any, Array]:
        c, history = state
        new, done = step(c)
        # one select over the segment's slots (an indexed write compiles into two kernels)
        return new, jnp.where(done & (jnp.arange(length) == c.it - start), new.value, history)

    history = jnp.full((length,), jnp.nan, carry.theta.dtype)
    return jax.lax.while_loop(cond, body, (carry, history))


def lbfgs_run(
    theta0: Array,
    X: Array,
    Y: Array,
    lam: ArrayLike,
    *,
    sizes: tuple[int, ...],
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    grad: str = GRAD,
    maxiter: int = MAXITER,
    tol: float = LBFGS_TOL,
    memory_size: int = MEMORY_SIZE,
    max_linesearch_steps: int = MAX_LINESEARCH_STEPS,
) -> tuple[Array, Array, Array, Array]:
    """optax's L-BFGS (zoom line search) from ``theta0``, the whole run one
    ``lax.while_loop``.

    ``theta0`` ``(n,)`` Octave order for ``sizes``; ``X`` ``(m, n_0)``; ``Y`` ``(m, K)``
    targets; ``lam`` scalar. Stops after ``maxiter`` iterations or when ``max|g| <= tol`` (or
    the line search stalls, or the cost turns non-finite, or the gradient overflows the line
    search's arithmetic). Returns ``(theta, history, n_iter, n_evals)``: ``history``
    ``(maxiter,)`` is the cost after each iteration, **NaN-padded** after the last one;
    ``n_evals`` counts value-and-gradient evaluations (line-search trials plus the initial one).
    Pure: ``jit`` it, or ``vmap`` it over ``(theta0, lam)`` with ``jax.vmap(partial(lbfgs_run,
    sizes=..., ...), in_axes=(0, None, None, 0))``."""
    spec = NetSpec(tuple(sizes), activation, output, grad)
    carry, history = lbfgs_segment(lbfgs_start(theta0, memory_size), X, Y, lam, maxiter,
                                   spec=spec, length=maxiter, tol=tol,
                                   max_linesearch_steps=max_linesearch_steps)
    return carry.theta, history, carry.it, carry.n_evals
