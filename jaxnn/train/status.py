"""Why a compiled training loop stopped: one status code for every loop, with its message.

The compiled L-BFGS loops (``fit(method="lbfgs")`` and ``fit_many``) and the course's
``fmincg`` keep a status in their state, an int32 that ``lax.while_loop`` can carry; the host
turns it into the ``message`` of a result with :func:`message`.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """The state of a compiled optimizer run."""

    RUNNING = 0  # still iterating (or stopped by maxiter)
    CONVERGED = 1  # the method's convergence test passed
    STALLED = 2  # the line search found no lower cost
    NONFINITE = 3  # the cost or its gradient is not finite


def message(status: int, *, n_iter: int, maxiter: int, tol: float | None = None) -> str:
    """The message of a run that ended in ``status`` after ``n_iter`` of ``maxiter``
    iterations (``tol``: the gradient tolerance of the convergence test, if there is one)."""
    status = Status(int(status))
    if status is Status.RUNNING:
        return f"maximum number of iterations ({maxiter}) reached"
    if status is Status.CONVERGED:
        return f"converged: max |gradient| <= tol ({tol:g})" if tol is not None else \
            f"converged after {n_iter} iterations"
    if status is Status.STALLED:
        return f"stopped after {n_iter} iterations: the line search found no lower cost"
    if n_iter == 0:
        return ("stopped before the first iteration: the cost or its gradient is not finite at "
                "the initial parameters (are the weights or lam too large for the training "
                "dtype? try smaller initial weights or float64)")
    return (f"stopped after {n_iter} iterations: the cost or its gradient is not finite (the "
            "parameters are the last finite ones; try a smaller step or learning rate)")
