"""scipy's L-BFGS-B without bounds, the whole run one compiled loop that evaluates once per pass.

``fit(method="L-BFGS-B")`` (the default) runs this module. It makes the iterations of
``scipy.optimize.minimize(method="L-BFGS-B")`` (L-BFGS-B 3.0; Byrd, Lu, Nocedal and Zhu, with
Morales and Nocedal's 2011 remark) on a problem without bounds. An *iteration* is:

1. the direction ``d = -H g``: ``H`` the limited-memory inverse Hessian of the last ``maxcor``
   pairs ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k`` over ``(s'y / y'y) I`` of the newest pair
   (steepest descent ``d = -g`` with no pair yet). L-BFGS-B computes it through the compact
   representation, its Cauchy point and subspace minimization, which without bounds give the
   same ``-H g``; here the two-loop recursion of :mod:`jaxnn.train.lbfgs` computes it;
2. a line search along ``d``: MINPACK-2's ``dcsrch`` (Moré and Thuente, :func:`dcsrch_step`,
   :func:`dcstep`) with ``ftol = 1e-3`` (sufficient decrease), ``gtol = 0.9`` (curvature),
   ``xtol = 0.1``, steps in ``[0, 1e10]``, the first trial ``1 / ||d||`` in the first iteration
   and ``1`` after, at most ``maxls`` evaluations; it ends at the last trial evaluated, when
   ``dcsrch`` converges or warns;
3. the tests, in scipy's order: ``maxiter`` iterations, more than ``maxfun`` evaluations,
   ``max |g| <= gtol`` (L-BFGS-B's ``pgtol``), ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1)
   <= ftol`` (``factr * epsmch``) stop the run; else the new pair is stored unless
   ``s'y <= epsmch (-g_k'd) stp`` (the update is skipped).

A line search that fails (``maxls`` evaluations without an end) goes back to the iterate; with
pairs stored L-BFGS-B forgets them and starts the iteration again along ``-g``, without any it
stops ("ABNORMAL"). So does a direction that does not descend. Unlike scipy, a cost or gradient
that is not finite ends the run at the last iterate, and so does a slope ``g'd`` that overflows
the dtype (a gradient above about 1e19 in float32, where scipy's float64 scalars would go on).
In float32, too, a gradient whose ``g'g`` underflows to 0 (below about 1e-19) is no descent
direction: with ``gtol = 0`` such a run ends "ABNORMAL" where scipy would go on.

The loop is a state machine over evaluations, like :mod:`jaxnn.train.lbfgs`: each pass of its
``lax.while_loop`` evaluates the objective once at the line search's trial and lets ``dcsrch``
choose the next trial; the pass that ends a line search also runs the tests and begins the
next search (under a ``lax.cond``). The pairs are a ring that each pass writes in place, outside
the ``cond`` (a new pair over the oldest, or the oldest over itself): inside it, XLA copied both
memories into the branch and out again at every iteration. The first pass evaluates the
start, so a run compiles one program. On the host scipy's L-BFGS-B costs about 0.5 ms of its own
per evaluation (its C code called from Python, its wrapper objects, the transfers), a third of
an evaluation of the course's network; here each evaluation adds an ``n``-vector update, a dot
product and the ring's two rows.

How close it stays to scipy: the scalar arithmetic of ``dcsrch`` and ``dcstep`` is scipy's,
in scipy's order of operations (XLA may fuse a product and a sum into one rounding, so a trial
step can differ from scipy's in its last bit); the direction is another formula for the same
``-H g``, which rounds differently. In float64, on the course's network, the iterates
agree with scipy's to 1e-13 (relative) over the first 30 iterations and 1e-11 at 50, with the
same evaluation counts (``tests/test_lbfgsb.py``; ``benchmarks/RESULTS.md``), and then drift
apart as any two runs that round differently do.
In float32 the iterates are float32 (scipy's are float64, whatever the objective's dtype).

References: R. H. Byrd, P. Lu, J. Nocedal, C. Zhu, "A limited memory algorithm for bound
constrained optimization", SIAM J. Sci. Comput. 16 (1995) 1190-1208; J. J. Moré, D. J. Thuente,
"Line search algorithms with guaranteed sufficient decrease", ACM TOMS 20 (1994) 286-307.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnn.spec import NetSpec
from jaxnn.train.lbfgs import passes_until, two_loop_direction
from jaxnn.train.status import all_finite, select_first

__all__ = ["FTOL", "GTOL", "MAXCOR", "MAXFUN", "MAXLS", "Dcsrch", "LbfgsbCarry", "Limits",
           "Stop", "dcsrch_start", "dcsrch_step", "dcstep", "lbfgsb_segment", "lbfgsb_start"]

Array = jax.Array

# scipy's defaults for minimize(method="L-BFGS-B")
MAXCOR = 10  # pairs kept
FTOL = 2.2204460492503131e-09  # relative reduction of f (factr * epsmch, factr = 1e7)
GTOL = 1e-5  # max |g| (pgtol)
MAXLS = 20  # evaluations per line search
MAXFUN = 15000  # evaluations (tested after each iteration)
# L-BFGS-B's line search (lnsrlb) and dcsrch's constants
LS_FTOL, LS_GTOL, LS_XTOL = 1e-3, 0.9, 0.1
STPMAX = 1e10
XTRAPL, XTRAPU = 1.1, 4.0
EPSMCH = 2.220446049250313e-16  # float64's (L-BFGS-B's, whatever the evaluation dtype)


class Stop(IntEnum):
    """Why the loop stopped (scipy's reasons; ``RUNNING`` also after ``maxiter``)."""

    RUNNING = 0
    GTOL = 1  # max |g| <= gtol
    FTOL = 2  # the relative reduction of f <= ftol
    MAXFUN = 3  # more than maxfun evaluations
    ABNORMAL = 4  # a line search failed with no pair to forget, or no descent along -g
    NONFINITE = 5  # the cost or its gradient is not finite
    OVERFLOW = 6  # the slope g'd overflows the dtype: no line search can start (not scipy's)


# scipy's messages for the same stops
MESSAGES = {
    Stop.GTOL: "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
    Stop.FTOL: "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
    Stop.MAXFUN: "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
}
MAXITER_MESSAGE = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"


class Limits(NamedTuple):
    """The run's tolerances and limits, traced (changing them compiles nothing)."""

    maxiter: Array  # int32
    maxfun: Array  # int32
    maxls: Array  # int32
    ftol: Array
    gtol: Array


# --- the line search: MINPACK-2's dcsrch and dcstep ----------------------------------------------


class Dcsrch(NamedTuple):
    """``dcsrch``'s state between two evaluations: ``stp`` the trial to evaluate next,
    ``(stx, fx, gx)`` the best step so far with its value and slope, ``(sty, fy, gy)`` the
    interval's other end, ``[stmin, stmax]`` where the next step may fall; ``evals`` the
    trials evaluated so far."""

    stp: Array
    brackt: Array  # bool: a minimizer is bracketed
    stage2: Array  # bool: stage 2 (a step with sufficient decrease and upward slope seen)
    finit: Array
    ginit: Array
    gtest: Array
    width: Array
    width1: Array
    stx: Array
    fx: Array
    gx: Array
    sty: Array
    fy: Array
    gy: Array
    stmin: Array
    stmax: Array
    evals: Array  # int32


def dcsrch_start(f0: Array, g0: Array, stp: Array) -> Dcsrch:
    """A search from the value ``f0`` and slope ``g0 < 0`` at step 0 whose first trial is
    ``stp``."""
    zero = jnp.zeros_like(f0)
    width = jnp.asarray(STPMAX, f0.dtype)
    return Dcsrch(stp=stp, brackt=jnp.zeros((), bool), stage2=jnp.zeros((), bool), finit=f0,
                  ginit=g0, gtest=LS_FTOL * g0, width=width, width1=width / 0.5, stx=zero,
                  fx=f0, gx=g0, sty=zero, fy=f0, gy=g0, stmin=zero, stmax=stp + XTRAPU * stp,
                  evals=jnp.zeros((), jnp.int32))


def dcsrch_step(s: Dcsrch, f: Array, g: Array) -> tuple[Array, Dcsrch]:
    """The value ``f`` and slope ``g`` at the trial ``s.stp``: ``(ended, state)``. ``ended``:
    the search converged (strong Wolfe conditions) or warns that it cannot progress, and ends
    at ``s.stp``; else ``state.stp`` is the next trial. Traceable: scalar arithmetic, both
    branches of each decision computed and one selected."""
    stp, gtest = s.stp, s.gtest
    ftest = s.finit + stp * gtest
    stage2 = s.stage2 | ((f <= ftest) & (g >= 0.0))
    warn = ((s.brackt & ((stp <= s.stmin) | (stp >= s.stmax)))  # rounding prevents progress
            | (s.brackt & (s.stmax - s.stmin <= LS_XTOL * s.stmax))  # xtol test satisfied
            | ((stp == STPMAX) & (f <= ftest) & (g <= gtest))  # stp = stpmax
            | ((stp == 0.0) & ((f > ftest) | (g >= gtest))))  # stp = stpmin
    ended = warn | ((f <= ftest) & (jnp.abs(g) <= LS_GTOL * (-s.ginit)))
    # in stage 1, while the value is above the sufficient-decrease line and not above the best
    # so far, dcstep works on the modified function psi(t) = f(t) - f(0) - ftol t f'(0)
    psi = ~stage2 & (f <= s.fx) & (f > ftest)
    shift = jnp.where(psi, gtest, 0.0)

    def moved(v, t):  # psi's value at step t from f's (f's where not psi)
        return jnp.where(psi, v - t * gtest, v)

    stx, fx, gx, sty, fy, gy, stp_next, brackt = dcstep(
        s.stx, moved(s.fx, s.stx), s.gx - shift, s.sty, moved(s.fy, s.sty), s.gy - shift,
        stp, moved(f, stp), g - shift, s.brackt, s.stmin, s.stmax)
    fx, fy = jnp.where(psi, fx + stx * gtest, fx), jnp.where(psi, fy + sty * gtest, fy)
    gx, gy = gx + shift, gy + shift
    # bracketed: bisect when the interval does not shrink enough
    bisect = brackt & (jnp.abs(sty - stx) >= 0.66 * s.width1)
    stp_next = jnp.where(bisect, stx + 0.5 * (sty - stx), stp_next)
    width1 = jnp.where(brackt, s.width, s.width1)
    width = jnp.where(brackt, jnp.abs(sty - stx), s.width)
    stmin = jnp.where(brackt, jnp.minimum(stx, sty), stp_next + XTRAPL * (stp_next - stx))
    stmax = jnp.where(brackt, jnp.maximum(stx, sty), stp_next + XTRAPU * (stp_next - stx))
    stp_next = jnp.minimum(jnp.maximum(stp_next, 0.0), STPMAX)
    stuck = brackt & ((stp_next <= stmin) | (stp_next >= stmax)
                      | (stmax - stmin <= LS_XTOL * stmax))
    stp_next = jnp.where(stuck, stx, stp_next)  # no progress possible: the best step so far
    # an ended search is replaced by the next one: only its trial (the end) is kept
    return ended, Dcsrch(stp=jnp.where(ended, stp, stp_next), brackt=brackt, stage2=stage2,
                         finit=s.finit, ginit=s.ginit, gtest=gtest, width=width,
                         width1=width1, stx=stx, fx=fx, gx=gx, sty=sty, fy=fy, gy=gy,
                         stmin=stmin, stmax=stmax, evals=s.evals + 1)


def dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2's ``dcstep``: the safeguarded next step and the updated interval.

    ``(stx, fx, dx)``: the best step so far, its value and slope; ``(sty, fy, dy)``: the
    interval's other end; ``(stp, fp, dp)``: the step just evaluated; ``brackt``: whether a
    minimizer is bracketed. Returns ``(stx, fx, dx, sty, fy, dy, stp, brackt)`` updated, ``stp``
    the next trial.

    Four cases choose the step. Each fits a cubic through the trial and one end ``o`` of the
    interval (``stx``; ``sty`` in case 4), and cases 1-3 also a quadratic or a secant. The cubic
    is written once for all four: the cases differ only in which end, the sign of ``gamma`` and
    the grouping of ``p / q``, so this computes each case's own operations, in its order, with
    one division, one square root and two quotients of the line search's scalars where
    computing every case would take four of each (the loop's compile time grows with them)."""
    sgnd = dp * (dx / jnp.abs(dx))
    case1 = fp > fx  # a higher value: bracketed
    case2 = ~case1 & (sgnd < 0.0)  # lower, slopes of opposite signs: bracketed
    case3 = ~case1 & ~case2 & (jnp.abs(dp) < jnp.abs(dx))  # same signs, |slope| decreases
    case4 = ~case1 & ~case2 & ~case3 & brackt  # same signs, |slope| does not decrease
    # the cubic through (stp, fp, dp) and (sto, fo, do)
    sto, fo, do = (jnp.where(case4, b, a) for a, b in ((stx, sty), (fx, fy), (dx, dy)))
    theta = 3.0 * (fo - fp) / (stp - sto) + do + dp  # case 4: 3 (fp - fy) / (sty - stp), exactly
    s = jnp.maximum(jnp.maximum(jnp.abs(theta), jnp.abs(do)), jnp.abs(dp))
    radicand = (theta / s) ** 2 - (do / s) * (dp / s)
    gamma = s * jnp.sqrt(jnp.where(case3, jnp.maximum(radicand, 0.0), radicand))  # NaN if < 0
    gamma = jnp.where(jnp.where(case1, stp < stx, stp > sto), -gamma, gamma)
    # case 1 steps from stx toward stp; the others from stp toward sto
    pa = jnp.where(case1, gamma - dx, gamma - dp)
    p = pa + theta
    q = jnp.where(case3, (gamma + (dx - dp)) + gamma, (pa + gamma) + jnp.where(case1, dp, do))
    base, toward = jnp.where(case1, stx, stp), jnp.where(case1, stp, sto)
    ratio = p / q
    stpc = base + ratio * (toward - base)
    # case 3's cubic step only where the cubic's minimum is beyond stp, else an end
    stpc = jnp.where(case3 & ~((ratio < 0.0) & (gamma != 0.0)),
                     jnp.where(stp > stx, stpmax, stpmin), stpc)
    # the quadratic (case 1) and secant (cases 2, 3) steps
    stpq1 = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
    stpq = stp + (dp / (dp - dx)) * (stx - stp)
    stpf1 = jnp.where(jnp.abs(stpc - stx) < jnp.abs(stpq1 - stx), stpc,
                      stpc + (stpq1 - stpc) / 2.0)
    far = jnp.where(jnp.abs(stpc - stp) > jnp.abs(stpq - stp), stpc, stpq)
    near = jnp.where(jnp.abs(stpc - stp) < jnp.abs(stpq - stp), stpc, stpq)
    toward_y = stp + 0.66 * (sty - stp)
    stpf3 = jnp.where(brackt, jnp.where(stp > stx, jnp.minimum(toward_y, near),
                                        jnp.maximum(toward_y, near)),
                      jnp.maximum(stpmin, jnp.minimum(stpmax, far)))
    stpf5 = jnp.where(stp > stx, stpmax, stpmin)
    stpf = select_first([case1, case2, case3, case4], [stpf1, far, stpf3, stpc], stpf5)
    # the new interval
    to_y = case1 | (sgnd < 0.0)  # sty takes the trial (case 1) or the old stx
    sty, fy, dy = (jnp.where(case1, a, jnp.where(to_y, b, c)) for a, b, c in
                   ((stp, stx, sty), (fp, fx, fy), (dp, dx, dy)))
    stx, fx, dx = (jnp.where(case1, a, b) for a, b in ((stx, stp), (fx, fp), (dx, dp)))
    return stx, fx, dx, sty, fy, dy, stpf.astype(stp.dtype), brackt | case1 | case2


# --- the loop ------------------------------------------------------------------------------------


class LbfgsbCarry(NamedTuple):
    """State of the compiled L-BFGS-B loop. Before the first evaluation (``n_evals == 0``, the
    state of :func:`lbfgsb_start`) ``value``, ``grad`` and ``slope`` are placeholders and
    ``direction`` is zero. Segments end between two line searches (or when the run stops):
    there ``theta``, ``value`` and ``grad`` are the iterate, its cost and its gradient."""

    theta: Array  # (n,)
    value: Array
    grad: Array  # (n,)
    direction: Array  # (n,) the current line search's d
    slope: Array  # g . d
    S: Array  # (maxcor, n) the last steps s, a ring: row `head` is the oldest
    Yd: Array  # (maxcor, n) the gradient changes y
    rho: Array  # (maxcor,) 1 / s'y (0 for an empty or forgotten slot, whatever its rows hold)
    scale: Array  # y'y / s'y of the newest pair (1 without pairs): H0 = I / scale
    n_pairs: Array  # int32 pairs stored (at most maxcor)
    head: Array  # int32 the ring's oldest slot, where the next pair is written
    ls: Dcsrch
    it: Array  # int32 iterations done
    n_evals: Array  # int32 evaluations, the initial one included
    stop: Array  # int32 Stop


def lbfgsb_start(theta0: ArrayLike, maxcor: int = MAXCOR) -> LbfgsbCarry:
    """The carry of a run from ``theta0`` ``(n,)`` before its first evaluation, which the
    first pass of :func:`lbfgsb_segment` makes. No computation: it compiles nothing. The dtype
    of ``theta0`` (float32 or float64) is the whole run's."""
    theta0 = jnp.asarray(theta0)
    dtype, n = theta0.dtype, theta0.shape[0]
    zero, one, i0 = np.zeros((), dtype), np.ones((), dtype), np.zeros((), np.int32)
    false = np.asarray(False)
    ls = Dcsrch(stp=zero, brackt=false, stage2=false, finit=zero, ginit=zero, gtest=zero,
                width=zero, width1=zero, stx=zero, fx=zero, gx=zero, sty=zero, fy=zero, gy=zero,
                stmin=zero, stmax=zero, evals=i0)
    return LbfgsbCarry(theta=theta0, value=zero, grad=theta0, direction=np.zeros(n, dtype),
                       slope=zero, S=np.zeros((maxcor, n), dtype),
                       Yd=np.zeros((maxcor, n), dtype), rho=np.zeros(maxcor, dtype), scale=one,
                       n_pairs=i0, head=i0, ls=ls, it=i0, n_evals=i0,
                       stop=np.asarray(Stop.RUNNING, np.int32))


class _Pair(NamedTuple):
    """The iteration that a trial may end: ``accept`` the line search ended there, ``store``
    its pair enters the memory (unless the curvature ``dr = s'y`` is too small), ``y = g -
    g_k``."""

    accept: Array
    store: Array
    dr: Array
    y: Array


def _pair(c: LbfgsbCarry, fresh: Array, ended: Array, finite: Array, t: Array, g: Array,
          slope: Array) -> _Pair:
    """:class:`_Pair` of the trial ``t`` with gradient ``g`` and slope ``slope``."""
    accept = ~fresh & finite & ended
    dr = (slope - c.slope) * t  # s'y
    return _Pair(accept, accept & (dr > EPSMCH * (-c.slope * t)), dr, g - c.grad)


def _finish(c: LbfgsbCarry, fresh: Array, ended: Array, finite: Array, t: Array, f: Array,
            g: Array, pair: _Pair, S: Array, Yd: Array, limits: Limits
            ) -> tuple[LbfgsbCarry, Array]:
    """A line search ended (or failed, or met a non-finite value; the first pass: the start was
    evaluated): the tests, the next direction and search. ``S``, ``Yd`` and the carry's
    ``rho`` are the memory with ``pair`` written (:func:`_pass` writes it, in place); the carry
    returned holds neither ``S`` nor ``Yd`` (``None``). Returns the carry and whether an
    iteration was done."""
    accept, store, dr, y = pair
    failed = ~fresh & finite & ~ended  # maxls trials without an end
    new = accept | fresh  # the start is the run's first iterate, finite or not
    theta = jnp.where(new, c.theta + t * c.direction, c.theta)
    value, grad = jnp.where(new, f, c.value), jnp.where(new, g, c.grad)
    it = c.it + accept.astype(jnp.int32)
    gmax = jnp.max(jnp.abs(g))
    reduced = c.value - f <= limits.ftol * jnp.maximum(
        jnp.maximum(jnp.abs(c.value), jnp.abs(f)), 1.0)
    stop = select_first(
        [~finite, fresh & (gmax <= limits.gtol), accept & (it >= limits.maxiter),
         accept & (c.n_evals > limits.maxfun), accept & (gmax <= limits.gtol),
         accept & reduced],
        [Stop.NONFINITE, Stop.GTOL, Stop.RUNNING, Stop.MAXFUN, Stop.GTOL, Stop.FTOL],
        Stop.RUNNING).astype(jnp.int32)
    # a failed search forgets the pairs: a forgotten pair keeps its rows, rho = 0 is what
    # makes the recursion skip it
    forget = failed & (c.n_pairs > 0)
    rho = jnp.where(forget, 0.0, c.rho)
    head = (c.head + store.astype(jnp.int32)) % S.shape[0]
    scale = jnp.where(forget, 1.0, jnp.where(store, jnp.dot(y, y) / dr, c.scale))
    n_pairs = jnp.where(forget, 0, jnp.minimum(c.n_pairs + store, S.shape[0]))
    # the next direction; one that does not descend forgets the pairs for -g
    d = two_loop_direction(grad, S, Yd, rho, 1.0 / scale, head)
    gd = jnp.dot(grad, d)
    redo = (n_pairs > 0) & ~(gd < 0.0)
    d = jnp.where(redo, -grad, d)
    gd = jnp.where(redo, -jnp.dot(grad, grad), gd)
    rho = jnp.where(redo, 0.0, rho)
    scale = jnp.where(redo, 1.0, scale).astype(value.dtype)
    n_pairs = jnp.where(redo, 0, n_pairs).astype(jnp.int32)
    first = jnp.minimum(1.0 / jnp.sqrt(jnp.dot(d, d)), STPMAX)
    stp = jnp.where(it == 0, first, 1.0).astype(value.dtype)
    # where the run goes on (not stopped, not at maxiter): no search along a direction that
    # does not descend; none either when the slope (or d'd) overflows the dtype, which a
    # gradient above about 1e19 does in float32: the search would start from step 0 and
    # "converge" without moving
    going = (stop == Stop.RUNNING) & ~(accept & (it >= limits.maxiter))
    stop = select_first(
        [going & (~jnp.isfinite(gd) | ~(stp > 0.0)),
         going & ((failed & (c.n_pairs == 0)) | ~(gd < 0.0))],
        [Stop.OVERFLOW, Stop.ABNORMAL], stop).astype(jnp.int32)
    carry = LbfgsbCarry(theta=theta, value=value, grad=grad, direction=d, slope=gd, S=None,
                        Yd=None, rho=rho.astype(value.dtype), scale=scale, n_pairs=n_pairs,
                        head=head,
                        ls=dcsrch_start(value, gd, stp), it=it, n_evals=c.n_evals, stop=stop)
    return carry, accept


def _pass(c: LbfgsbCarry, X: Array, Y: Array, lam: ArrayLike, spec: NetSpec,
          limits: Limits) -> tuple[LbfgsbCarry, Array]:
    """One evaluation, at the line search's trial, and what it decides. Returns the new carry
    and whether it ended an iteration."""
    fresh = c.n_evals == 0  # the first pass evaluates the start (the direction is zero)
    t = c.ls.stp
    f, g = spec.value_and_grad(c.theta + t * c.direction, X, Y, lam)
    f, g = jnp.asarray(f, c.value.dtype), jnp.asarray(g, c.value.dtype)
    slope = jnp.dot(g, c.direction)
    ended, ls = dcsrch_step(c.ls, f, slope)
    finite = all_finite(f, g)
    # the pair over the ring's oldest slot, written here, in the loop's own buffers: under the
    # lax.cond below, XLA copied both memories into the branch and out of it at every
    # iteration (four copies of the memory; 75 weight-sized vectors held at once against 53)
    pair = _pair(c, fresh, ended, finite, t, g, slope)

    def push(rows: Array, row: Array) -> Array:
        return rows.at[c.head].set(jnp.where(pair.store, row, rows[c.head]))

    S, Yd = push(c.S, t * c.direction), push(c.Yd, pair.y)
    c = c._replace(rho=push(c.rho, 1.0 / pair.dr), ls=ls, n_evals=c.n_evals + 1)
    end = fresh | ~finite | ended | (ls.evals >= limits.maxls)
    rest = c._replace(S=None, Yd=None)  # the branches read the memory, and return none
    new, done = jax.lax.cond(
        end, lambda: _finish(rest, fresh, ended, finite, t, f, g, pair, S, Yd, limits),
        lambda: (rest, jnp.zeros((), bool)))
    return new._replace(S=S, Yd=Yd), done


def lbfgsb_segment(carry: LbfgsbCarry, X: Array, Y: Array, lam: ArrayLike, stop: ArrayLike,
                   limits: Limits, *, spec: NetSpec, length: int
                   ) -> tuple[LbfgsbCarry, Array]:
    """Iterations from ``carry`` until ``stop`` are done in all (at most ``length`` more) or
    the run stops (:class:`Stop`). Returns the new carry (between two line searches, unless the
    run stopped) and ``(length,)`` the cost after each iteration of this segment, NaN-padded.
    The memory size is the carry's (:func:`lbfgsb_start`). Traceable; ``stop`` and ``limits``
    may be traced. Cutting a run into segments does not change its numbers."""
    return passes_until(carry, stop, length, running=lambda c: c.stop == Stop.RUNNING,
                        between=lambda c: c.ls.evals == 0,
                        step=lambda c: _pass(c, X, Y, lam, spec, limits))
