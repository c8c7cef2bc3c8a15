"""The scipy bridge of :func:`jaxnn.fit`: a host optimizer driving one jit-compiled
value-and-gradient call per evaluation (:class:`jaxnn.train.objective.ScipyObjective`).

:func:`fit_scipy` runs a prepared problem with scipy's ``"TNC"``, ``"CG"`` or ``"BFGS"``
(``scipy.optimize.minimize(jac=True)``), calls the user's callback after every
iteration, and keeps the last completed iterate when a callback or a ``KeyboardInterrupt``
stops the run.
"""

from __future__ import annotations

import contextlib

import numpy as np

from jaxnn.memory import check_memory
from jaxnn.train.objective import ScipyObjective
from jaxnn.train.problem import Problem, callback_stops
from jaxnn.train.status import Status, callback_message, interrupted_message, maxiter_message
from jaxnn.train.status import message as status_message
from jaxnn.user_warnings import warn


class _Stop(Exception):
    """Raised inside scipy's callback to end a run (callback asked, or TNC's maxiter)."""


class _Diverged(Exception):
    """Raised inside scipy's callback when scipy accepted a non-finite iterate."""


def blas_single_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread while a host optimizer runs (threadpoolctl, a core dependency).

    The optimizers call BLAS on vectors of length n (``ddot``, ``daxpy``, ``dgemv``); OpenBLAS
    spreads even those over its threads, which then spin beside XLA's: without the limit the
    default ``fit`` of the course's network is often 2-4x slower on two cores; on a busy
    machine an iteration can lose tens of ms. jaxnn's own arithmetic runs in XLA, unaffected."""
    from threadpoolctl import threadpool_limits  # 40 ms to import: only where it is used

    return threadpool_limits(limits=1, user_api="blas")


#: above this many parameters BFGS's dense matrix work (two n x n products per iteration)
#: takes seconds per iteration or more, and fit says so
BFGS_WARN_PARAMS = 2000


def check_bfgs_memory(n: int) -> None:
    """scipy's BFGS keeps a dense ``n x n`` inverse Hessian and updates it with two ``n x n``
    matrix products per iteration (six ``n x n`` float64 arrays at the peak, measured with
    tracemalloc): refuse it where that memory cannot be had. Pure arithmetic: the command
    asks before it draws its progress bar."""
    check_memory(6 * n * n * 8, f"fit(method='BFGS') with {n:,} parameters: its dense "
                 f"{n:,} x {n:,} inverse Hessian and the products that update it",
                 hint="use method='L-BFGS-B', which keeps 10 pairs of vectors instead",
                 device="host")


def check_bfgs(n: int) -> None:
    """BFGS on ``n`` parameters: refused where its memory cannot be had
    (:func:`check_bfgs_memory`), a warning where its ``n x n`` products are slow. The warning
    points at the user's line, however deep in jaxnn the call came from."""
    check_bfgs_memory(n)
    if n > BFGS_WARN_PARAMS:
        warn(f"method='BFGS' multiplies {n:,} x {n:,} matrices in every iteration (about "
             f"{4 * n**3:.0e} operations), which is slow for {n:,} parameters; "
             "method='L-BFGS-B' (the default) does the same job in O(n) memory and time")


def fit_scipy(prob: Problem, method: str, maxiter: int, tol, options, callback) -> dict:
    """Run scipy's ``method`` on ``prob`` from ``prob.theta0``; the fields of a FitResult
    (without ``seconds``, ``method``, ``grad``) as a dict."""
    if method == "BFGS":
        check_bfgs(prob.theta0.size)
    obj = ScipyObjective(prob.X, prob.Y, prob.lam, prob.spec, prob.replicated)
    history: list[float] = []
    last = {"x": prob.theta0.astype(np.float64)}

    def on_iteration(xk: np.ndarray, fk: float) -> None:
        if not (np.isfinite(fk) and np.all(np.isfinite(xk))):  # an iterate scipy accepted
            raise _Diverged()
        history.append(fk)
        last["x"] = xk.copy()
        if callback is not None and callback_stops(callback, len(history), fk,
                                                   prob.unravel(xk)):
            raise _Stop(callback_message(len(history)))
        if method == "TNC" and len(history) >= maxiter:
            raise _Stop(maxiter_message(maxiter))

    if method == "TNC":  # TNC passes only xk; its last evaluation is usually at xk
        def scipy_callback(xk):
            on_iteration(xk, obj.cost_at(xk))
        opts = {}
    else:
        def scipy_callback(intermediate_result):
            on_iteration(intermediate_result.x, float(intermediate_result.fun))
        opts = {"maxiter": maxiter}
    opts.update(options or {})
    interrupted = diverged = False
    try:
        with blas_single_thread():
            # imported here: 0.25-0.35 s that the default method does not need
            import scipy.optimize

            res = scipy.optimize.minimize(obj, last["x"], jac=True, method=method, tol=tol,
                                          callback=scipy_callback, options=opts)
        x, J, converged, message = res.x, float(res.fun), bool(res.success), str(res.message)
        diverged = not (np.isfinite(J) and np.all(np.isfinite(x)))
    except _Diverged:
        diverged = True
    except (_Stop, KeyboardInterrupt) as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        x, converged = last["x"], False
        # no iteration finished: the cost at theta0 if it was evaluated (no new work after ^C)
        J = history[-1] if history else obj.cost_at(x, evaluate=not interrupted)
        message = str(e) if not interrupted else interrupted_message(
            len(history), "the last completed iterate")
    if diverged:  # back to the last finite iterate (the start if none finished)
        x, converged = last["x"], False
        J = history[-1] if history else obj.cost_at(x)
        message = status_message(Status.NONFINITE, n_iter=len(history), maxiter=maxiter,
                                 at_start=not np.isfinite(J))
    return dict(params=prob.unravel(x), cost=J, history=np.asarray(history, np.float64),
                n_iter=len(history), n_evals=obj.n_evals, converged=converged, message=message,
                interrupted=interrupted, diverged=diverged)
