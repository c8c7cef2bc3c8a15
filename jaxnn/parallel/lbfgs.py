"""L-BFGS for a batch of networks under ``vmap``: one compiled ``while_loop``, one gradient
evaluation per network per pass, a line search without branches.

Used by :func:`jaxnn.parallel.fit_many`; the comment below compares it with ``fit``'s L-BFGS.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnn.defaults import ACTIVATION, GRAD, LBFGS_TOL, MANY_MAXITER, OUTPUT
from jaxnn.spec import NetSpec
from jaxnn.train.lbfgs import CURV_RTOL, MAX_LINESEARCH_STEPS, MEMORY_SIZE, SLOPE_RTOL
from jaxnn.train.status import Status, all_finite, gradient_status

__all__ = ["LbfgsState", "lbfgs_many_run"]

Array = jax.Array


# --- an L-BFGS written for vmap -----------------------------------------------------------------
#
# optax's L-BFGS, as optax writes it, takes its steps with a zoom line search whose
# ``lax.cond`` between "search an interval" and "zoom into it" evaluates the network in *both*
# branches once the predicate is batched, and whose inner ``while_loop`` runs until the slowest
# member's search ends: under ``vmap`` it costs 2-4 gradient evaluations per iteration instead
# of about one. This loop was written for ``fit_many`` against that. ``fit(method="lbfgs")``
# now runs optax's algorithm rewritten with one evaluation per pass (:mod:`jaxnn.train.lbfgs`),
# which vmaps at that cost too; ``fit_many`` keeps this loop, whose results the sweeps are built
# on, and which evaluates the members in groups (``chunk_size``). The two differ in their line
# search: strong Wolfe conditions with a zoom there, weak ones with the simpler bracket here.
#
# The loop below is L-BFGS (two-loop recursion, ``memory_size`` pairs, ``H0 = (s'y / y'y) I``)
# whose line search is a *state machine without branches*: every pass of the one
# ``while_loop`` evaluates each network once, at its current trial step ``t`` along the
# direction ``d``, and then
#
# * accepts ``t`` if it satisfies the weak Wolfe conditions, sufficient decrease
#   ``f(t) <= f(0) + c1 t f'(0)`` and curvature ``f'(t) >= c2 f'(0)`` (``c1 = SLOPE_RTOL
#   = 1e-4``, ``c2 = CURV_RTOL = 0.9``, fit's): an iteration is done, the pair ``(s, y)``
#   (``s'y > 0`` by the curvature condition) enters the memory, the next trial is ``t = 1``
#   along the new direction;
# * if the decrease fails, makes ``t`` the upper end of the bracket and tries a smaller step
#   (the minimizer of the quadratic through ``f(0), f'(0), f(t)``, kept within
#   ``[0.1 t, 0.5 t]``, while no lower end is known; bisection after);
# * if only the curvature fails (the step was too short), makes ``t`` the lower end and tries
#   ``2 t`` (or bisects a known bracket);
# * after ``max_linesearch_steps`` trials it accepts the best lower end (sufficient decrease
#   only), or stops the network as stalled when there is none;
# * a slope that overflows the dtype (at the start or after a step) stops the network at once
#   (Status.OVERFLOW).
#
# No network waits for another's line search, and no evaluation is thrown away.



class LbfgsState(NamedTuple):
    """State of :func:`lbfgs_many_run` for one network; with a leading axis ``B`` for a batch.

    ``history`` ``(maxiter,)`` holds the cost after each iteration, NaN where none ran.
    ``S``, ``Yd`` ``(memory_size, n)`` hold the last steps ``s`` and gradient changes ``y``,
    oldest first (a new pair shifts them up: static slices, no gather or scatter, which XLA's
    CPU backend runs element by element), ``rho = 1 / s'y`` (0 for an empty slot). The line
    search's bracket is ``[t_lo, t_hi]`` with the cost and gradient at ``t_lo``."""

    theta: Array
    value: Array
    grad: Array
    direction: Array
    slope: Array  # grad . direction at theta (< 0)
    step: Array  # next trial step along direction
    t_lo: Array
    f_lo: Array
    g_lo: Array
    t_hi: Array
    S: Array
    Yd: Array
    rho: Array
    it: Array
    n_evals: Array
    ls_steps: Array  # trials since the last accepted step
    status: Array
    history: Array


def _dot(a: Array, b: Array) -> Array:
    """``a . b`` for vectors as a fused multiply-and-sum: under ``vmap`` ``jnp.vdot`` becomes a
    batched matrix product, which XLA's CPU backend runs as many tiny products (slow)."""
    return jnp.sum(a * b)


def _first_step(g: Array) -> Array:
    """With no curvature pairs, the first trial step is ``min(1, 1/||g||)`` along ``-g``."""
    norm = jnp.sqrt(_dot(g, g))
    return jnp.minimum(1.0, 1.0 / jnp.where(norm > 0, norm, 1.0)).astype(g.dtype)


def _two_loop(g: Array, S: Array, Yd: Array, rho: Array) -> Array:
    """``-H g`` by the L-BFGS two-loop recursion over the stored pairs (oldest first, newest
    last); empty slots have ``rho = 0`` and drop out."""

    def newest_first(q, pair):
        s, y, r = pair
        a = r * _dot(s, q)
        return q - a * y, a

    q, alphas = jax.lax.scan(newest_first, g, (S, Yd, rho), reverse=True)
    sy = jnp.where(rho[-1] > 0, 1 / jnp.where(rho[-1] > 0, rho[-1], 1), 0)
    yy = _dot(Yd[-1], Yd[-1])
    gamma = jnp.where(sy > 0, sy / jnp.where(yy > 0, yy, 1), 1)

    def oldest_first(r, pair):
        s, y, rh, a = pair
        return r + s * (a - rh * _dot(y, r)), None

    r, _ = jax.lax.scan(oldest_first, gamma * q, (S, Yd, rho, alphas))
    return -r


def _lbfgs_start(theta: Array, value: Array, g: Array, *, maxiter: int, tol: float,
                 memory_size: int) -> LbfgsState:
    n, dt = theta.shape[0], theta.dtype
    zero = jnp.zeros((), dt)
    slope = -_dot(g, g)
    return LbfgsState(
        theta=theta, value=value, grad=g, direction=-g, slope=slope,
        step=_first_step(g), t_lo=zero, f_lo=value, g_lo=g, t_hi=jnp.full((), jnp.inf, dt),
        S=jnp.zeros((memory_size, n), dt), Yd=jnp.zeros((memory_size, n), dt),
        rho=jnp.zeros((memory_size,), dt), it=jnp.asarray(0, jnp.int32),
        n_evals=jnp.asarray(1, jnp.int32), ls_steps=jnp.asarray(0, jnp.int32),
        status=_overflow_status(gradient_status(value, g, tol), slope),
        history=jnp.full((maxiter,), jnp.nan, dt))


def _overflow_status(status: Array, slope: Array) -> Array:
    """``status``, or OVERFLOW where the run would go on along a slope that overflowed the
    dtype (a gradient above about 1e19 in float32): no line search can work with it."""
    return jnp.where((status == Status.RUNNING) & jnp.isinf(slope), Status.OVERFLOW, status)


def _lbfgs_advance(c: LbfgsState, f: Array, g: Array, active: Array, *, tol: float,
                   max_linesearch_steps: int) -> LbfgsState:
    """One pass for one network: ``(f, g)`` were evaluated at ``theta + step * direction``.
    An inactive network (stopped) comes back unchanged. Each memory buffer is read and
    written once: the pass is bound by memory traffic as much as by arithmetic."""
    dt = c.theta.dtype
    t = c.step
    finite = all_finite(f, g)
    decrease = finite & (f <= c.value + SLOPE_RTOL * t * c.slope)
    curvature = _dot(g, c.direction) >= CURV_RTOL * c.slope
    # the bracket after this trial, and the next trial inside it
    lower = active & decrease & ~curvature
    t_lo = jnp.where(lower, t, c.t_lo)
    f_lo = jnp.where(lower, f, c.f_lo)
    g_lo = jnp.where(lower, g, c.g_lo)
    t_hi = jnp.where(decrease, c.t_hi, t)
    excess = f - c.value - c.slope * t
    t_quad = -c.slope * t * t / (2 * jnp.where(excess > 0, excess, 1))
    shrink = jnp.where(finite & (excess > 0), jnp.clip(t_quad, 0.1 * t, 0.5 * t), 0.1 * t)
    t_next = jnp.where(jnp.isinf(t_hi), 2 * t_lo,
                       jnp.where(t_lo > 0, 0.5 * (t_lo + t_hi), shrink))
    ls_steps = c.ls_steps + 1
    # accept this trial (both Wolfe conditions), or the lower end when out of trials
    out_of_trials = ls_steps >= max_linesearch_steps
    accept_now = decrease & curvature
    accepted = active & (accept_now | (out_of_trials & (t_lo > 0)))
    t_acc = jnp.where(accept_now, t, t_lo)
    f_acc = jnp.where(accept_now, f, f_lo)
    g_acc = jnp.where(accept_now, g, g_lo)
    # the iteration: store the pair (s'y > 0 unless rounding spoils it), new direction
    s, yv = t_acc * c.direction, g_acc - c.grad
    sy, yy = _dot(s, yv), _dot(yv, yv)
    write = accepted & (sy > jnp.finfo(dt).eps * yy)
    S = jnp.where(write, jnp.concatenate([c.S[1:], s[None]]), c.S)
    Yd = jnp.where(write, jnp.concatenate([c.Yd[1:], yv[None]]), c.Yd)
    rho = jnp.where(write, jnp.concatenate([c.rho[1:], (1 / jnp.where(write, sy, 1))[None]]),
                    c.rho)
    d = _two_loop(g_acc, S, Yd, rho)
    slope = _dot(g_acc, d)
    reset = ~(slope < 0)  # not a descent direction (rounding): restart from -g, empty memory
    d = jnp.where(reset, -g_acc, d)
    slope = jnp.where(reset, -_dot(g_acc, g_acc), slope)
    rho = jnp.where(accepted & reset, 0, rho)  # rho = 0 empties a slot; S, Yd need no clearing
    step_new = jnp.where(jnp.all(rho == 0), _first_step(g_acc), jnp.ones((), dt))
    status = jnp.where(accepted, _overflow_status(gradient_status(f_acc, g_acc, tol), slope),
                       jnp.where(active & out_of_trials, Status.STALLED, c.status))

    def pick(a, b, when=accepted):
        return jnp.where(when, a, b)

    inf = jnp.full((), jnp.inf, dt)
    return LbfgsState(
        theta=pick(c.theta + t_acc * c.direction, c.theta), value=pick(f_acc, c.value),
        grad=pick(g_acc, c.grad), direction=pick(d, c.direction), slope=pick(slope, c.slope),
        step=pick(step_new, pick(t_next, c.step, active)).astype(dt),
        t_lo=pick(jnp.zeros((), dt), t_lo), f_lo=f_lo, g_lo=g_lo,
        t_hi=pick(inf, pick(t_hi, c.t_hi, active)), S=S, Yd=Yd, rho=rho,
        it=c.it + accepted.astype(jnp.int32), n_evals=c.n_evals + active.astype(jnp.int32),
        ls_steps=pick(0, pick(ls_steps, c.ls_steps, active)).astype(jnp.int32),
        status=status.astype(jnp.int32),
        history=jnp.where(accepted & (jnp.arange(c.history.shape[0]) == c.it), f_acc,
                          c.history))


def lbfgs_many_run(
    theta0: Array,
    X: Array,
    Y: Array,
    lams: Array,
    *,
    spec: NetSpec | None = None,
    sizes: tuple[int, ...] | None = None,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    grad: str = GRAD,
    maxiter: int = MANY_MAXITER,
    tol: float = LBFGS_TOL,
    memory_size: int = MEMORY_SIZE,
    max_linesearch_steps: int = MAX_LINESEARCH_STEPS,
    chunk_size: int | None = None,
) -> LbfgsState:
    """L-BFGS for ``B`` networks at once, one compiled ``while_loop``; pure and jittable.

    The network is ``spec`` (a :class:`jaxnn.spec.NetSpec`), or ``sizes``, ``activation``,
    ``output`` and ``grad`` as in :func:`jaxnn.train.value_and_grad_flat`.
    ``theta0`` ``(B, n)`` (Octave order for ``spec.sizes``), ``X`` ``(m, n_0)``, ``Y``
    ``(m, K)``, ``lams`` ``(B,)``. Each pass evaluates every running network once at its trial
    point (``spec.value_and_grad``; in groups of ``chunk_size`` networks, which keeps
    the hidden activations of a group in cache on CPU; None: all at once) and accepts its step
    or moves it within the line search's bracket (see the comment above :class:`LbfgsState`).
    A network stops after ``maxiter`` iterations, when ``max|g| <= tol``, when its line search
    finds no lower cost in ``max_linesearch_steps`` trials (stalled), on a non-finite cost, or
    when its slope overflows the dtype;
    it is then held fixed while the others go on. With ``B = 1`` this is the single-network
    loop: member ``i`` of a batch computes what ``B = 1`` computes for it, to rounding.
    Returns the final :class:`LbfgsState`, batched (``history`` ``(B, maxiter)``, NaN-padded)."""
    if spec is None:
        spec = NetSpec(tuple(sizes), activation, output, grad)
    B = theta0.shape[0]
    vg = spec.value_and_grad

    def evaluate(thetas, lams):
        one = lambda a: vg(a[0], X, Y, a[1])  # noqa: E731
        if chunk_size is None or chunk_size >= B:
            return jax.vmap(one)((thetas, lams))
        return jax.lax.map(one, (thetas, lams), batch_size=chunk_size)

    f0, g0 = evaluate(theta0, lams)
    state = jax.vmap(partial(_lbfgs_start, maxiter=maxiter, tol=tol,
                             memory_size=memory_size))(theta0, f0, g0)
    advance = jax.vmap(partial(_lbfgs_advance, tol=tol,
                               max_linesearch_steps=max_linesearch_steps))

    def running(c: LbfgsState) -> Array:
        return (c.status == Status.RUNNING) & (c.it < maxiter)

    def body(c: LbfgsState) -> LbfgsState:
        f, g = evaluate(c.theta + c.step[:, None] * c.direction, lams)
        return advance(c, f, g, running(c))

    return jax.lax.while_loop(lambda c: jnp.any(running(c)), body, state)
