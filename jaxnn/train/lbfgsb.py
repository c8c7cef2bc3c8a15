"""scipy's L-BFGS-B without bounds, in numpy: the same iterations, a fraction of the overhead.

``fit(method="L-BFGS-B")`` (the default) runs :func:`run`; :func:`minimize` around it is a
drop-in for ``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B")`` without bounds.
scipy runs L-BFGS-B 3.0 (Byrd, Lu, Nocedal and Zhu; Morales and Nocedal's 2011 remark), since
scipy 1.15 in scipy's C translation. Without bounds an *iteration* of it is:

1. the direction ``d = -H g``: ``H`` the limited-memory inverse Hessian of the last ``maxcor``
   pairs ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k``, with ``H0 = (s'y / y'y) I`` of the
   newest pair (steepest descent ``d = -g`` with no pair yet), computed through the compact
   representation (:class:`Memory`);
2. a line search along ``d``: MINPACK-2's ``dcsrch`` (Moré and Thuente, :class:`Dcsrch`,
   :func:`dcstep`) with ``ftol = 1e-3`` (sufficient decrease), ``gtol = 0.9`` (curvature),
   ``xtol = 0.1``, steps in ``[0, 1e10]``, the first step ``1 / ||d||`` in the first iteration
   and ``1`` after, at most ``maxls`` evaluations; it ends at the last point evaluated, when
   ``dcsrch`` converges or warns;
3. the tests: ``max |g| <= gtol`` (L-BFGS-B's ``pgtol``) or ``(f_k - f_{k+1}) / max(|f_k|,
   |f_{k+1}|, 1) <= ftol`` (``factr * epsmch``) stop the run, after the ``maxiter`` and
   ``maxfun`` limits; then the new pair is stored unless ``s'y <= epsmch (-g_k'd) stp``.

A line search that fails (``maxls`` evaluations without an end, or ``d`` not a descent
direction) goes back to the iterate; with pairs stored L-BFGS-B forgets them and starts the
iteration over along ``-g``, without any it stops ("ABNORMAL").

Why: scipy's own work per evaluation (its C code called once per evaluation from a Python loop,
its ``ScalarFunction`` wrapper, the result objects) costs about 0.5 ms at ``n = 10,285``, a
third of an evaluation of the course's network; here it is one ``n``-vector update and two dot
products per evaluation and three matrix-vector products with the ``2m x n`` memory per
iteration. The scalar arithmetic of the line search is ``dcsrch``'s and ``dcstep``'s in Python
floats, operation by operation as scipy's C, so it rounds as scipy's does; the vector
arithmetic rounds differently (another order of the same sums). On the course's network, in
float32 or float64, the iterates of the two agree to 1e-13 (relative) for the first 40
iterations, with the same evaluation counts, and then drift apart as any two runs that round
differently do (``tests/test_train.py``; the figures in ``benchmarks/RESULTS.md``).

References: R. H. Byrd, P. Lu, J. Nocedal, C. Zhu, "A limited memory algorithm for bound
constrained optimization", SIAM J. Sci. Comput. 16 (1995) 1190-1208; R. H. Byrd, J. Nocedal,
R. B. Schnabel, "Representations of quasi-Newton matrices and their use in limited memory
methods", Math. Programming 63 (1994) 129-156, eq. (3.1); J. J. Moré, D. J. Thuente, "Line
search algorithms with guaranteed sufficient decrease", ACM TOMS 20 (1994) 286-307.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import scipy.linalg.lapack

if TYPE_CHECKING:
    import scipy.optimize

__all__ = ["FTOL", "GTOL", "MAXCOR", "MAXFUN", "MAXLS", "Dcsrch", "Memory", "Result", "dcstep",
           "minimize", "run"]

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


def _solve_upper(R: np.ndarray, b: np.ndarray, transposed: bool = False) -> np.ndarray:
    """``R^-1 b`` (``R^-T b``) for upper-triangular ``R`` (LAPACK's ``dtrtrs``: ``m x m``, a
    few microseconds)."""
    x, info = scipy.linalg.lapack.dtrtrs(R, b, lower=0, trans=int(transposed))
    if info != 0:  # a zero on the diagonal: s'y = 0, which the skip rule keeps out
        raise np.linalg.LinAlgError(f"dtrtrs: info {info}")
    return x


class Memory:
    """The last ``m`` pairs ``(s, y)`` in L-BFGS-B's compact representation (float64 numpy).

    ``W`` ``(2m, n)``: a ring of pairs, ``s`` in rows ``0..m-1`` and ``y`` in rows ``m..2m-1``,
    ``col`` of them valid, the oldest in slot ``head``; ``SY[i, j] = s_i'y_j`` and ``YY[i, j] =
    y_i'y_j`` by slot (the diagonal of ``SY`` is L-BFGS-B's ``dr``); ``scale = y'y / s'y`` of
    the newest pair (L-BFGS-B's ``theta``, 1 without pairs). Each product or update is two or
    three matrix-vector products with ``W`` and a few ``m x m`` operations."""

    def __init__(self, n: int, m: int = MAXCOR) -> None:
        self.m = m
        self.W = np.zeros((2 * m, n))
        self.SY = np.zeros((m, m))
        self.YY = np.zeros((m, m))
        self.forget()

    def forget(self) -> None:
        """No pairs: the next direction is steepest descent (L-BFGS-B's restart)."""
        self.col, self.head, self.scale = 0, 0, 1.0

    def store(self, s: np.ndarray, y: np.ndarray, sy: float) -> None:
        """The pair ``(s, y)`` with ``s'y = sy``, over the oldest when the ring is full."""
        m = self.m
        slot = (self.head + self.col) % m
        self.W[slot], self.W[m + slot] = s, y
        ws, wy = self.W @ s, self.W @ y  # [S's; Y's] and [S'y; Y'y] by slot
        self.SY[slot, :], self.SY[:, slot] = ws[m:], wy[:m]
        self.SY[slot, slot] = sy
        self.YY[slot, :] = self.YY[:, slot] = wy[m:]
        if self.col < m:
            self.col += 1
        else:
            self.head = (self.head + 1) % m
        self.scale = float(wy[m + slot]) / sy

    def inverse_hessian_product(self, g: np.ndarray) -> np.ndarray:
        """``H g`` (``g / scale`` without pairs) by the compact representation ``H = gamma I +
        [S gamma Y] M [S'; gamma Y']``, ``gamma = 1 / scale``, ``M = [[R^-T (D + gamma Y'Y)
        R^-1, -R^-T], [-R^-1, 0]]``, ``R`` the upper triangle of ``S'Y`` with the pairs in
        order and ``D`` its diagonal (Byrd, Nocedal and Schnabel 1994, eq. 3.1)."""
        gamma = 1.0 / self.scale
        if self.col == 0:
            return gamma * g
        m = self.m
        order = (self.head + np.arange(self.col)) % m  # slots, oldest first
        SY = self.SY[np.ix_(order, order)]
        R = np.triu(SY)
        ab = self.W @ g  # [S'g; Y'g] by slot
        a, b = ab[order], ab[m + order]
        u = _solve_upper(R, a)  # R^-1 S'g
        w = np.diag(SY) * u + gamma * (self.YY[np.ix_(order, order)] @ u) - gamma * b
        p = _solve_upper(R, w, transposed=True)
        coef = np.zeros(2 * m)
        coef[order], coef[m + order] = p, -gamma * u
        return gamma * g + coef @ self.W


class Dcsrch:
    """MINPACK-2's ``dcsrch`` with L-BFGS-B's constants, on Python floats.

    ``Dcsrch(f0, g0, stp)`` starts a search from the value ``f0`` and slope ``g0 < 0`` at step
    0 with the first trial ``stp``; ``step(f, g)`` takes the value and slope at the trial and
    returns ``(task, stp)``: ``"FG"`` and the next trial, or ``"CONV"`` / ``"WARN"`` and the
    trial just evaluated (the line search ends there)."""

    def __init__(self, f0: float, g0: float, stp: float, stpmax: float = STPMAX) -> None:
        self.stp, self.stpmin, self.stpmax = stp, 0.0, stpmax
        self.brackt, self.stage = False, 1
        self.finit, self.ginit, self.gtest = f0, g0, LS_FTOL * g0
        self.width = stpmax - 0.0
        self.width1 = self.width / 0.5
        self.stx, self.fx, self.gx = 0.0, f0, g0
        self.sty, self.fy, self.gy = 0.0, f0, g0
        self.stmin, self.stmax = 0.0, stp + XTRAPU * stp

    def step(self, f: float, g: float) -> tuple[str, float]:
        stp = self.stp
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0.0:
            self.stage = 2
        task = "FG"
        if self.brackt and (stp <= self.stmin or stp >= self.stmax):
            task = "WARN"  # rounding errors prevent progress
        if self.brackt and self.stmax - self.stmin <= LS_XTOL * self.stmax:
            task = "WARN"  # xtol test satisfied
        if stp == self.stpmax and f <= ftest and g <= self.gtest:
            task = "WARN"  # stp = stpmax
        if stp == self.stpmin and (f > ftest or g >= self.gtest):
            task = "WARN"  # stp = stpmin
        if f <= ftest and abs(g) <= LS_GTOL * (-self.ginit):
            task = "CONV"
        if task != "FG":
            return task, stp
        if self.stage == 1 and f <= self.fx and f > ftest:  # the modified function psi
            gt = self.gtest
            fxm, fym = self.fx - self.stx * gt, self.fy - self.sty * gt
            gxm, gym = self.gx - gt, self.gy - gt
            self.stx, fxm, gxm, self.sty, fym, gym, stp, self.brackt = dcstep(
                self.stx, fxm, gxm, self.sty, fym, gym, stp, f - stp * gt, g - gt,
                self.brackt, self.stmin, self.stmax)
            self.fx, self.fy = fxm + self.stx * gt, fym + self.sty * gt
            self.gx, self.gy = gxm + gt, gym + gt
        else:
            self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, self.brackt = dcstep(
                self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, f, g,
                self.brackt, self.stmin, self.stmax)
        if self.brackt:  # bisect when the interval does not shrink enough
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                stp = self.stx + 0.5 * (self.sty - self.stx)
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = stp + XTRAPL * (stp - self.stx)
            self.stmax = stp + XTRAPU * (stp - self.stx)
        stp = min(max(stp, self.stpmin), self.stpmax)
        if self.brackt and (stp <= self.stmin or stp >= self.stmax
                            or self.stmax - self.stmin <= LS_XTOL * self.stmax):
            stp = self.stx  # no progress possible: the best step so far
        self.stp = stp
        return "FG", stp


def _sqrt(v: float) -> float:
    return math.sqrt(v) if v >= 0 else math.nan  # C's sqrt of a negative: NaN


def dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2's ``dcstep`` on Python floats: the safeguarded next step and the updated
    interval.

    ``(stx, fx, dx)``: the best step so far, its value and slope; ``(sty, fy, dy)``: the
    interval's other end; ``(stp, fp, dp)``: the step just evaluated; ``brackt``: whether a
    minimizer is bracketed. Returns ``(stx, fx, dx, sty, fy, dy, stp, brackt)`` updated, ``stp``
    the next trial."""
    sgnd = dp * (dx / abs(dx))
    if fp > fx:  # 1: a higher value; bracketed
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * _sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + (p / q) * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:  # 2: a lower value, slopes of opposite signs; bracketed
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * _sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        stpc = stp + (p / q) * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):  # 3: same signs, the slope's magnitude decreases
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * _sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = max(stpmin, min(stpmax, stpf))
    elif brackt:  # 4: same signs, the slope does not decrease; bracketed: the cubic step
        theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
        s = max(abs(theta), abs(dy), abs(dp))
        gamma = s * _sqrt((theta / s) ** 2 - (dy / s) * (dp / s))
        if stp > sty:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dy
        stpf = stp + (p / q) * (sty - stp)
    else:
        stpf = stpmax if stp > stx else stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


# scipy's messages (status: task) for the same stops
MESSAGES = {
    "gtol": "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
    "ftol": "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
    "maxiter": "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
    "maxfun": "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
    "abnormal": "ABNORMAL: ",
    "nonfinite": "ABNORMAL: THE COST OR ITS GRADIENT IS NOT FINITE",
}
IGNORED = ("eps", "iprint", "finite_diff_rel_step", "disp")  # nothing to do with an exact gradient


class Result(NamedTuple):
    """What :func:`run` returns: the fields of scipy's ``OptimizeResult`` it fills."""

    x: np.ndarray
    fun: float
    jac: np.ndarray
    nit: int
    nfev: int
    status: int  # 0 converged, 1 a limit reached, 2 otherwise (scipy's codes)
    message: str

    @property
    def success(self) -> bool:
        return self.status == 0


def minimize(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
             tol: float | None = None, callback: Callable | None = None,
             **options) -> scipy.optimize.OptimizeResult:
    """``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", tol=tol,
    callback=callback, options={...})`` without bounds: the same iterations (see the module's
    docstring), the same options, result fields and messages.

    ``fun(x) -> (f, g)`` on float64 ``x`` ``(n,)``. ``tol`` sets ``ftol`` and ``gtol`` unless
    given. ``callback(intermediate_result)`` after every iteration, with ``.x`` and ``.fun``
    (scipy's convention; an exception it raises ends the run and propagates). The options
    (``maxiter``, ``maxcor``, ``ftol``, ``gtol``, ``maxls``, ``maxfun``) are :func:`run`'s;
    ``eps``, ``iprint``, ``finite_diff_rel_step`` are accepted and, with an exact gradient,
    change nothing, as in scipy. Unlike scipy, a cost or gradient that is not finite ends the
    run at the last iterate. Returns an ``OptimizeResult`` with ``x``, ``fun``, ``jac``,
    ``nit``, ``nfev``, ``njev``, ``status`` (0 converged, 1 a limit reached, 2 otherwise),
    ``success``, ``message``."""
    # Imported here, not at the top: scipy.optimize takes 0.25-0.35 s to import, and fit's
    # default path (the bridge calls `run`) needs none of it.
    from scipy.optimize import OptimizeResult

    def on_iteration(x: np.ndarray, f: float) -> None:
        callback(OptimizeResult(x=x, fun=f))

    r = run(fun, x0, tol=tol, on_iteration=None if callback is None else on_iteration,
            **options)
    return OptimizeResult(x=r.x, fun=r.fun, jac=r.jac, nit=r.nit, nfev=r.nfev, njev=r.nfev,
                          status=r.status, success=r.success, message=r.message)


def run(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
        tol: float | None = None, on_iteration: Callable[[np.ndarray, float], None] | None = None,
        maxiter: int = 15000, maxcor: int = MAXCOR, ftol: float | None = None,
        gtol: float | None = None, maxls: int = MAXLS, maxfun: int = MAXFUN,
        **ignored) -> Result:
    """:func:`minimize`'s iterations with a plain :class:`Result`; ``on_iteration(x, f)``
    after every iteration (an exception it raises ends the run and propagates)."""
    unknown = set(ignored) - set(IGNORED)
    if unknown:
        raise TypeError(f"unknown L-BFGS-B options {sorted(unknown)}")
    ftol = (FTOL if tol is None else tol) if ftol is None else ftol
    gtol = (GTOL if tol is None else tol) if gtol is None else gtol
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    nfev, nit = 1, 0
    mem = Memory(x.shape[0], maxcor)

    def result(stop: str) -> Result:
        status = 0 if stop in ("gtol", "ftol") else 1 if stop in ("maxiter", "maxfun") else 2
        return Result(x, float(f), g, nit, nfev, status, MESSAGES[stop])

    if not (math.isfinite(f) and np.all(np.isfinite(g))):
        return result("nonfinite")
    if np.max(np.abs(g)) <= gtol:
        return result("gtol")
    while True:
        d = -mem.inverse_hessian_product(g)
        gd = float(g @ d)
        if mem.col > 0 and not gd < 0:  # not a descent direction: forget the pairs
            mem.forget()
            d, gd = -g, -float(g @ g)
        if not gd < 0:  # not even -g descends (g = 0 with gtol = 0)
            return result("abnormal")
        stp = min(1.0 / math.sqrt(float(d @ d)), STPMAX) if nit == 0 else 1.0
        search, evals = Dcsrch(f, gd, stp), 0
        while True:  # the line search from x along d
            xt = x + stp * d
            ft, gt = fun(xt)
            nfev, evals = nfev + 1, evals + 1
            if not (math.isfinite(ft) and np.all(np.isfinite(gt))):
                return result("nonfinite")
            gdt = float(gt @ d)
            task, next_stp = search.step(ft, gdt)
            if task != "FG" or evals >= maxls:  # ended, or one trial too many (failed)
                break
            stp = next_stp
        if task == "FG":  # failed: back to x; start over along -g, or stop without pairs
            if mem.col == 0:
                return result("abnormal")
            mem.forget()
            continue
        s, y, fold = stp * d, gt - g, f
        x, f, g = xt, float(ft), gt
        nit += 1
        if on_iteration is not None:
            on_iteration(x, f)
        if nit >= maxiter:
            return result("maxiter")
        if nfev > maxfun:
            return result("maxfun")
        if np.max(np.abs(g)) <= gtol:
            return result("gtol")
        if fold - f <= ftol * max(abs(fold), abs(f), 1.0):
            return result("ftol")
        dr = (gdt - gd) * stp
        if dr > EPSMCH * (-gd * stp):  # else the update is skipped
            mem.store(s, y, dr)
