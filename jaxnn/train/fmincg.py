"""The course's conjugate-gradient minimizer ``fmincg``, the whole run one compiled loop.

``fmincg`` (C. E. Rasmussen's ``minimize.m``, 2001-2002, as the course ships it) searches along
Polack-Ribiere conjugate directions; each *iteration* is one line search that

1. steps ``z1`` along the direction ``s`` (from the start: ``1 / (1 - d1)``, ``d1 = -s's``; after
   a successful line search: the last step scaled by the slope ratio ``d1_old / d1_new``, at
   most :data:`RATIO` times);
2. *interpolates* while the Wolfe-Powell conditions fail (not enough decrease,
   ``f2 > f1 + z1 RHO d1``, or a slope not yet flat enough, ``d2 > -SIG d1``): a quadratic fit
   when the cost went up, a cubic fit otherwise, kept at least :data:`INT` of the bracket away
   from its ends, bisecting when the fit is not finite;
3. accepts when both hold: enough decrease and ``SIG d1 < d2 <= -SIG d1`` (the strong Wolfe
   curvature condition, ``d1 < 0``);
4. otherwise (enough decrease, the slope still steeper than ``SIG d1``) *extrapolates* with a
   cubic fit through the last two points, at most :data:`EXT`
   times the current step while no upper bracket exists, bisecting towards the bracket when
   one does, and never within :data:`INT` of either end;

with at most :data:`MAX` evaluations after the first one of each line search. A line search
that fails (the conditions still fail after :data:`MAX` evaluations) returns to the point it
started from and the next one goes along steepest descent (of the gradient at the line search's
last trial point, as ``fmincg.m`` swaps it in); two failures in a row end the run
(``Status.STALLED``; ``Status.OVERFLOW`` when a cubic fit of theirs overflowed the dtype:
:func:`cubic_fit` multiplies slopes together, which float32 cannot hold above about 1.8e19).
After a success the new direction is Polack-Ribiere,
``s = ((g2'g2 - g1'g2) / g1'g1) s - g2``, reset to steepest descent ``-g2`` when it is not a
descent direction.

Here the run is a ``lax.while_loop`` over *evaluations*: each pass evaluates the objective once
and advances a branch-free state machine (start a line search / interpolate / extrapolate /
accept / fail), every branch a ``jnp.where`` selection. Under ``vmap`` the passes of all members
advance together, each member in its own phase, and no branch evaluates the objective twice.
The scalar formulas are ``fmincg.m``'s, operation by operation, so a run follows Octave's
iterate by iterate to the rounding of the objective, of the dot products and of XLA's fused
multiply-adds (XLA's CPU compiler contracts ``a * b + c``; the effect on a run is about 1/25 of
that of the objective's rounding). That rounding grows through the cubic fits: two correct
runs, Octave against Octave with the cost summed in another order, differ by 2e-13 (relative)
after the first iteration of the 400-25-10 network on 500 digits and by 4e-6 after 50; this
module against Octave differs by as much (see ``tests/test_fmincg.py``).

Where ``fmincg.m`` would compute a complex square root (a cubic interpolation with no real
minimum) Octave's ``min``/``max`` compare complex numbers by magnitude; :func:`interpolation_step`
reproduces what Octave then returns. Unlike ``fmincg.m``, an evaluation that returns a
non-finite cost or gradient ends the run (:data:`NONFINITE`) at the last accepted iterate.

``maxiter`` counts line searches, failed ones included (the course's positive ``length``,
``options.MaxIter``); the history holds the cost after each *successful* line search, as
``fmincg.m``'s ``fX`` (and its ``Iteration N | Cost`` lines) do.

Reference: C. E. Rasmussen, ``minimize.m`` (http://learning.eng.cam.ac.uk/carl/code/minimize/);
the Wolfe-Powell conditions: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
section 3.1; Polack-Ribiere: ibid., section 5.2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.train.status import Status, all_finite, select_first

Array = jax.Array
ValueAndGrad = Callable[..., tuple[Array, Array]]

__all__ = ["EXT", "INT", "MAX", "RATIO", "RHO", "SIG", "FmincgState", "cubic_fit",
           "extrapolation_step", "fmincg_init", "fmincg_run", "fmincg_segment", "fmincg_start",
           "interpolation_step"]

# the course's constants
RHO = 0.01  # sufficient decrease: f2 <= f1 + z1 RHO d1
SIG = 0.5  # curvature: |d2| <= SIG |d1|
INT = 0.1  # never re-evaluate within INT of either end of the bracket
EXT = 3.0  # extrapolate at most EXT times the current step
MAX = 20  # at most MAX evaluations per line search after its first
RATIO = 100.0  # the next initial step grows at most RATIO times

# why a run stopped (FmincgState.status): jaxnn.train.status.Status, the vocabulary of every
# compiled loop. fmincg has no convergence test of its own: Status.CONVERGED is never set here.


class FmincgState(NamedTuple):
    """State of the compiled ``fmincg`` loop; ``fmincg.m``'s names in brackets.

    Before the first evaluation (``n_evals == 0``, the state of :func:`fmincg_start`),
    ``value``, ``grad``, ``grad_sq``, ``direction``, ``slope`` and ``step`` are placeholders.
    Between two line searches (``between``), ``theta`` is the current iterate and ``value`` its
    cost. Inside a line search ``theta`` is the point evaluated last and ``theta0`` the iterate
    the line search started from. ``grad`` is the gradient that the next direction is built
    from: the gradient at ``theta`` except after a failed line search, where ``fmincg.m`` keeps
    the gradient at that line search's last trial point. Segments of a run always end between
    two line searches (or when the run stops), so there ``theta`` and ``value`` are the result.
    """

    theta: Array  # (n,) [X]
    theta0: Array  # (n,) [X0] where the current line search started
    value: Array  # [f1] cost at the iterate
    grad: Array  # (n,) [df1]
    grad_sq: Array  # [df1'*df1] grad's squared norm, kept from the pass that computed it
    direction: Array  # (n,) [s] the search direction
    slope: Array  # [d1] df1's: the directional derivative at the iterate (< 0)
    step: Array  # [z1] the step along s: next initial step, or the total of this line search
    f3: Array  # [f3, d3, z3] the bracket's other point: cost, slope, and position relative to
    d3: Array  # the last trial point
    z3: Array
    limit: Array  # [limit] upper end of the bracket (as a total step), -1 while there is none
    evals_left: Array  # int32 [M] evaluations left in this line search
    ls_failed: Array  # bool [ls_failed] the previous line search failed
    overflowed: Array  # bool: a cubic fit overflowed the dtype since the last success
    between: Array  # bool: between two line searches (the next pass starts one)
    it: Array  # int32 [i] line searches begun (successful or not)
    n_success: Array  # int32 successful line searches (the length of fmincg.m's fX)
    n_evals: Array  # int32 value-and-gradient evaluations, the initial one included
    status: Array  # int32 Status.RUNNING, STALLED, NONFINITE, or OVERFLOW (a stall by overflow)


def fmincg_start(theta0: ArrayLike) -> FmincgState:
    """The state of a run from ``theta0`` ``(n,)`` before its first evaluation, which the first
    pass of :func:`fmincg_segment` makes (so a run compiles one objective, inside its loop).

    No evaluation and no computation: the fields that pass sets hold placeholders until then
    (see :class:`FmincgState`). The dtype of ``theta0`` (float32 or float64) is the
    dtype of the whole run. Traceable; on a device array outside ``jit`` it compiles nothing."""
    theta0 = jnp.asarray(theta0)
    dtype = theta0.dtype
    # numpy scalars: constants under jit, and no device computation (no compilation) outside
    zero, i0 = np.zeros((), dtype), np.zeros((), np.int32)
    return FmincgState(
        theta=theta0, theta0=theta0, value=zero, grad=theta0, grad_sq=zero, direction=theta0,
        slope=zero, step=zero, f3=zero, d3=zero, z3=zero, limit=np.asarray(-1, dtype),
        evals_left=i0, ls_failed=np.asarray(False), overflowed=np.asarray(False),
        between=np.asarray(True), it=i0, n_success=i0, n_evals=i0,
        status=np.asarray(Status.RUNNING, np.int32),
    )


def fmincg_init(value_and_grad: ValueAndGrad, theta0: ArrayLike, *, args: tuple = ()
                ) -> FmincgState:
    """The state at ``theta0`` ``(n,)``: one evaluation, the first direction steepest descent.

    ``value_and_grad(theta, *args) -> (J, g)``: a scalar and ``(n,)``. The dtype of ``theta0``
    (float32 or float64) is the dtype of the whole run. The first step is ``1 / (1 - d1)`` with
    ``d1 = -g'g``. Status NONFINITE (and no iteration will run) when ``J`` or ``g`` is not
    finite. Traceable. (The first pass of :func:`fmincg_segment` from :func:`fmincg_start`
    makes the same state.)"""
    return _pass(value_and_grad, args, fmincg_start(theta0))[0]


def cubic_fit(f2: Array, d2: Array, f3: Array, d3: Array, z3: Array
              ) -> tuple[Array, Array, Array]:
    """``fmincg.m``'s cubic through the last trial point (2) and point 3 (costs ``f``, slopes
    ``d``; ``z3`` is point 3's position relative to point 2): ``(A, B, B^2 - A d2 z3^2)``. The
    products multiply slopes together, so they overflow the dtype when the slopes pass the
    square root of its largest number (about 1.8e19 in float32)."""
    A = 6 * (f2 - f3) / z3 + 3 * (d2 + d3)
    B = 3 * (f3 - f2) - z3 * (d3 + 2 * d2)
    return A, B, B * B - A * d2 * z3 * z3


def interpolation_step(f1: Array, f2: Array, d2: Array, f3: Array, d3: Array, z3: Array
                       ) -> Array:
    """The move ``z2`` from the last trial point (2) into the bracket towards point 3.

    A quadratic fit (from ``f3``, ``d3`` and ``f2``) when the cost went up (``f2 > f1``), else a
    cubic fit of both points' costs and slopes (``f``, ``d``; ``z3`` is point 3's position
    relative to point 2); half the bracket when the fit is not finite; then kept within
    ``[(1 - INT) z3, INT z3]``. Where the cubic's square root is imaginary, Octave's ``min`` and
    ``max`` compare by magnitude: ``fmincg.m`` then moves ``(1 - INT) z3`` when the complex
    root is shorter than ``INT |z3|``, else ``INT z3`` (both ends as the real comparison orders
    them). Elementwise, branch-free."""
    quadratic = z3 - (0.5 * d3 * z3 * z3) / (d3 * z3 + f2 - f3)
    A, B, disc = cubic_fit(f2, d2, f3, d3, z3)
    cubic = (jnp.sqrt(jnp.maximum(disc, 0)) - B) / A
    up = f2 > f1
    z2 = jnp.where(up, quadratic, cubic)
    imaginary = ~up & (disc < 0)
    # Octave's complex root (-B + i sqrt(-disc)) / A: not finite (A == 0) -> bisect
    z2 = jnp.where(jnp.isfinite(z2) & ~(imaginary & (A == 0)), z2, z3 / 2)
    lo, hi = (1 - INT) * z3, INT * z3
    clipped = jnp.maximum(jnp.minimum(z2, hi), lo)
    modulus = jnp.sqrt(B * B - disc) / jnp.abs(A)  # |(-B + i sqrt(-disc)) / A|
    by_magnitude = jnp.where(modulus < jnp.abs(hi), lo, jnp.maximum(hi, lo))
    return jnp.where(imaginary & (A != 0) & jnp.isfinite(modulus), by_magnitude, clipped)


def extrapolation_step(f2: Array, d2: Array, f3: Array, d3: Array, z3: Array, z1: Array,
                       limit: Array) -> Array:
    """The move ``z2`` beyond the last trial point (2), whose slope ``d2`` is still steep.

    The cubic fit's minimizer from both points' costs and slopes (``z3``: point 3 relative to
    point 2), then: when it is not a real, finite, forward move, ``EXT - 1`` times the step
    ``z1`` (no upper bracket yet: ``limit < -0.5``) or half way to ``limit``; never past
    ``limit`` (half way instead) nor past ``EXT z1`` (capped there); at least ``INT |z3|``
    forward and, with a bracket, at most ``(1 - INT)`` of the way to it. Elementwise,
    branch-free."""
    _, B, disc = cubic_fit(f2, d2, f3, d3, z3)
    z2 = -d2 * z3 * z3 / (B + jnp.sqrt(disc))  # NaN where fmincg.m's root is complex
    bounded = limit > -0.5
    bisect = (limit - z1) / 2
    bad = ~jnp.isfinite(z2) | (disc < 0) | (z2 < 0)
    return select_first(
        [bad, bounded & (z2 + z1 > limit), ~bounded & (z2 + z1 > z1 * EXT), z2 < -z3 * INT,
         bounded & (z2 < (limit - z1) * (1.0 - INT))],
        [jnp.where(bounded, bisect, z1 * (EXT - 1)), bisect, z1 * (EXT - 1.0), -z3 * INT,
         (limit - z1) * (1.0 - INT)],
        z2,
    )


def _pass(value_and_grad: ValueAndGrad, args: tuple, c: FmincgState
          ) -> tuple[FmincgState, Array, Array]:
    """One evaluation and the transition it decides. Returns the new state, whether a line
    search succeeded in this pass, and the accepted cost."""
    dtype = c.theta.dtype
    # the first pass of a run (from fmincg_start) evaluates the start: steepest descent from
    # there, the first step 1 / (1 - d1) (as a failed line search's retry, without the failure)
    fresh = c.n_evals == 0
    # a pass between two line searches starts the next one: the first trial point, point 3
    # at the iterate (its cost and slope), no bracket, MAX evaluations after this one
    start = c.between & ~fresh
    theta0 = jnp.where(start, c.theta, c.theta0)
    x = jnp.where(start, c.theta + c.step * c.direction, c.theta)
    f3 = jnp.where(start, c.value, c.f3)
    d3 = jnp.where(start, c.slope, c.d3)
    z3 = jnp.where(start, -c.step, c.z3)
    limit = jnp.where(start, -1, c.limit).astype(dtype)
    M = jnp.where(start, MAX, c.evals_left)
    it = c.it + start.astype(jnp.int32)

    f2, g2 = value_and_grad(x, *args)
    f2, g2 = jnp.asarray(f2, dtype), jnp.asarray(g2, dtype)
    finite = all_finite(f2, g2)
    f1, g1, s, d1, z1 = c.value, c.grad, c.direction, c.slope, c.step
    d2 = g2 @ s
    gg = g2 @ g2

    # what fmincg.m does after an evaluation
    wolfe_fails = (f2 > f1 + z1 * RHO * d1) | (d2 > -SIG * d1)
    interpolate = wolfe_fails & (M > 0) & ~fresh
    success = ~wolfe_fails & (d2 > SIG * d1) & ~fresh
    extrapolate = ~wolfe_fails & ~success & (M > 0) & ~fresh
    fail = ~(interpolate | success | extrapolate | fresh)

    # interpolate or extrapolate: the next trial point
    z2 = jnp.where(interpolate, interpolation_step(f1, f2, d2, f3, d3, z3),
                   extrapolation_step(f2, d2, f3, d3, z3, z1, limit))
    move = interpolate | extrapolate
    # a cubic fit that this move used and that overflowed (fmincg.m then bisects, or extends
    # the step EXT - 1 times)
    overflow = ((interpolate & ~(f2 > f1)) | extrapolate) & ~jnp.isfinite(
        cubic_fit(f2, d2, f3, d3, z3)[2])
    overflowed = ~success & (c.overflowed | overflow)
    moved_theta = x + z2 * s
    moved_limit = jnp.where(interpolate, z1, limit)
    moved_f3 = jnp.where(interpolate, f3, f2)
    moved_d3 = jnp.where(interpolate, d3, d2)
    moved_z3 = jnp.where(interpolate, z3 - z2, -z2)

    # success: Polack-Ribiere direction (steepest descent if it does not descend), the next
    # initial step by the slope ratio, at most RATIO times this line search's step
    pr = (gg - g1 @ g2) / c.grad_sq * s - g2
    d_pr = g2 @ pr
    uphill = d_pr > 0
    s_ok = jnp.where(uphill, -g2, pr)
    d_ok = jnp.where(uphill, -gg, d_pr)  # fmincg.m: s = -g2; d2 = -s's
    z_ok = z1 * jnp.minimum(RATIO, d1 / (d_ok - jnp.finfo(dtype).tiny))

    # failure: back to theta0; stop if the previous one failed too, else steepest descent
    # from the last trial point's gradient (fmincg.m's swap) with a fresh first step
    stalled = fail & c.ls_failed
    retry = (fail & ~c.ls_failed) | fresh
    s_fail = -g2
    d_fail = -gg
    z_fail = 1 / (1 - d_fail)

    def pick(on_move, on_success, on_retry, otherwise):
        return jnp.where(move, on_move, jnp.where(success, on_success,
                                                  jnp.where(retry, on_retry, otherwise)))

    new_grad = (finite & (success | retry)) | fresh
    # two failed line searches whose cubic fits overflowed: the dtype is too narrow for the
    # slopes (or the lam or weights too large)
    status = jnp.where(~finite, Status.NONFINITE,
                       jnp.where(stalled, jnp.where(overflowed, Status.OVERFLOW,
                                                    Status.STALLED), Status.RUNNING))
    new = FmincgState(
        theta=jnp.where(finite, pick(moved_theta, x, theta0, theta0), theta0),
        theta0=theta0,
        value=jnp.where((finite & success) | fresh, f2, f1),
        grad=jnp.where(new_grad, g2, g1),
        grad_sq=jnp.where(new_grad, gg, c.grad_sq),
        direction=jnp.where(finite | fresh, pick(s, s_ok, s_fail, s), s),
        slope=jnp.where(finite | fresh, pick(d1, d_ok, d_fail, d1), d1),
        step=jnp.where(finite | fresh, pick(z1 + z2, z_ok, z_fail, z1), z1),
        f3=jnp.where(move, moved_f3, f3),
        d3=jnp.where(move, moved_d3, d3),
        z3=jnp.where(move, moved_z3, z3),
        limit=jnp.where(move, moved_limit, limit),
        evals_left=jnp.where(move, M - 1, M).astype(jnp.int32),
        ls_failed=jnp.where(success, False, jnp.where(fail, True, c.ls_failed)),
        overflowed=overflowed,
        between=~move | ~finite,
        it=it,
        n_success=c.n_success + (finite & success).astype(jnp.int32),
        n_evals=c.n_evals + 1,
        status=status.astype(jnp.int32),
    )
    return new, finite & success, f2


def fmincg_segment(value_and_grad: ValueAndGrad, state: FmincgState, stop: ArrayLike, *,
                   length: int, args: tuple = ()) -> tuple[FmincgState, Array]:
    """Line searches from ``state`` until ``stop`` have begun in all (at most ``length`` more)
    and the last has ended, or the run stops (two failed line searches in a row: Status.STALLED,
    or Status.OVERFLOW when a cubic fit of theirs overflowed the dtype; a non-finite evaluation:
    Status.NONFINITE).

    ``value_and_grad(theta, *args) -> (J, g)`` as for :func:`fmincg_init`; ``state`` from
    :func:`fmincg_start` (the first pass then evaluates the start), :func:`fmincg_init` or an
    earlier segment. Returns the new state (between two line searches unless the run
    stopped) and ``(length,)`` the cost after each successful line search of this segment,
    NaN-padded. One ``lax.while_loop`` over evaluations, one evaluation per pass. Traceable;
    ``stop`` may be traced; ``length`` is static. Cutting a run into segments does not change
    its numbers."""
    start_it, start_success = state.it, state.n_success
    stop = jnp.minimum(jnp.asarray(stop, jnp.int32), start_it + length)

    def cond(carry: tuple[FmincgState, Array]) -> Array:
        c = carry[0]  # a state from fmincg_start is evaluated whatever stop is
        return (c.status == Status.RUNNING) & (~c.between | (c.it < stop) | (c.n_evals == 0))

    def body(carry: tuple[FmincgState, Array]) -> tuple[FmincgState, Array]:
        c, history = carry
        new, accepted, value = _pass(value_and_grad, args, c)
        k = c.n_success - start_success
        return new, jnp.where(accepted & (jnp.arange(length) == k), value, history)

    history = jnp.full((length,), jnp.nan, state.value.dtype)
    return jax.lax.while_loop(cond, body, (state, history))


def fmincg_run(value_and_grad: ValueAndGrad, theta0: ArrayLike, maxiter: int = 100, *,
               args: tuple = ()) -> tuple[Array, Array, Array, Array]:
    """Minimize ``value_and_grad`` from ``theta0`` with at most ``maxiter`` line searches.

    ``value_and_grad(theta, *args) -> (J, g)`` on a flat ``theta`` ``(n,)`` (float32 or
    float64: the dtype of ``theta0`` is the run's). Returns ``(theta, history, n_iter,
    n_evals)``: the last iterate; ``(maxiter,)`` the cost after each successful line search
    (``fmincg.m``'s ``fX``), NaN-padded; the line searches begun (``fmincg.m``'s ``i``); and the
    evaluations, the initial one included. Pure: ``jit`` it with ``value_and_grad`` and
    ``maxiter`` static, ``vmap`` it over ``theta0`` and ``args``. For the reason the run
    stopped, use :func:`fmincg_start` and :func:`fmincg_segment`."""
    state, history = fmincg_segment(value_and_grad, fmincg_start(theta0), maxiter,
                                    length=maxiter, args=args)
    return state.theta, history, state.it, state.n_evals
