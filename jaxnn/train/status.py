"""Why a compiled training loop stopped: one status code for every loop, with its message.

The compiled L-BFGS loops (``fit(method="lbfgs")`` and ``fit_many``) and the course's
``fmincg`` keep a status in their state, an int32 that ``lax.while_loop`` can carry; the host
turns it into the ``message`` of a result with :func:`message`.
"""

from __future__ import annotations

from enum import IntEnum

import jax
import jax.numpy as jnp

from jaxnn.names import counted


class Status(IntEnum):
    """The state of a compiled optimizer run."""

    RUNNING = 0  # still iterating (or stopped by maxiter)
    CONVERGED = 1  # the method's convergence test passed
    STALLED = 2  # the line search found no lower cost
    NONFINITE = 3  # the cost or its gradient is not finite
    OVERFLOW = 4  # the line search's arithmetic overflows the dtype (a gradient far too large)


def all_finite(value: jax.Array, vector: jax.Array) -> jax.Array:
    """Whether a scalar ``value`` and every entry of ``vector`` are finite (not NaN, not
    infinite): what sends a compiled loop to :attr:`Status.NONFINITE`. Traceable.

    ``vector * 0`` is 0 where ``vector`` is finite and NaN where it is not, so one sum answers
    for the whole vector without overflowing: one reduction where ``all(isfinite(vector))``
    compiles into four kernels (XLA:CPU's compile time grows with the kernels)."""
    return jnp.isfinite(value + jnp.sum(vector * 0))


def select_first(conditions: list, choices: list, default: object) -> jax.Array:
    """``jnp.select(conditions, choices, default)``: the choice of the first true condition,
    else ``default``, as a chain of ``jnp.where``. Traceable. The same values where the choices
    and the default share one dtype or are Python scalars (every use in jaxnn): ``jnp.select``
    promotes them all together, the chain two at a time.

    ``jnp.select`` finds the first true condition by an argmax over the stacked conditions, a
    reduction in the compiled program; the chained selects fuse into the kernels that use their
    result (in the L-BFGS-B loop: three reductions and two kernels fewer; the compiled loops'
    compile time grows with their kernels)."""
    out = default
    for condition, choice in zip(reversed(conditions), reversed(choices), strict=True):
        out = jnp.where(condition, choice, out)
    return jnp.asarray(out)


def gradient_status(value: jax.Array, g: jax.Array, tol: float,
                    stalled: jax.Array | bool = False) -> jax.Array:
    """The status of the L-BFGS loops at a new iterate with cost ``value`` and gradient ``g``
    (int32): NONFINITE if either is not finite, else CONVERGED if ``max|g| <= tol``, else
    STALLED if ``stalled`` (the line search left the iterate where it was), else RUNNING.
    Traceable."""
    return select_first([~all_finite(value, g), jnp.max(jnp.abs(g)) <= tol, stalled],
                        [Status.NONFINITE, Status.CONVERGED, Status.STALLED],
                        Status.RUNNING).astype(jnp.int32)


def message(status: int, *, n_iter: int, maxiter: int, tol: float | None = None,
            at_start: bool = False, dtype: str = "the dtype") -> str:
    """The message of a run that ended in ``status`` after ``n_iter`` of ``maxiter``
    iterations (``tol``: the gradient tolerance of the convergence test, if there is one;
    ``at_start``: for NONFINITE, the cost at the initial parameters was not finite already;
    ``dtype``: the run's, named by OVERFLOW)."""
    status = Status(int(status))
    if status is Status.OVERFLOW:
        wider = "" if dtype == "float64" else ", or dtype='float64'"
        return (f"stopped after {counted(n_iter, 'iteration')}: the gradient is too large for "
                f"{dtype}: the line search's arithmetic on it overflows (try smaller initial "
                f"weights or lam{wider})")
    if status is Status.RUNNING:
        return maxiter_message(maxiter)
    if status is Status.CONVERGED:
        return f"converged: max |gradient| <= tol ({tol:g})" if tol is not None else \
            f"converged after {counted(n_iter, 'iteration')}"
    if status is Status.STALLED:
        return f"stopped after {counted(n_iter, 'iteration')}: the line search found no lower cost"
    if at_start:
        return ("stopped before the first iteration: the cost or its gradient is not finite at "
                "the initial parameters (are the weights or lam too large for the training "
                "dtype? try smaller initial weights or float64)")
    return (f"stopped after {counted(n_iter, 'iteration')}: the cost or its gradient is not "
            "finite (the parameters are the last finite ones; try a smaller step or learning rate)")


def maxiter_message(maxiter: int) -> str:
    """The message of a run that made its ``maxiter`` iterations (scipy's words)."""
    return f"maximum number of iterations ({maxiter}) reached"


def callback_message(n_iter: int) -> str:
    """The message of a run whose callback asked it to stop after ``n_iter`` iterations."""
    return f"stopped by callback after {counted(n_iter, 'iteration')}"


def interrupted_when(n_iter: int) -> str:
    """When a run was interrupted: ``"after 3 iterations"``, ``"before the first iteration"``."""
    return f"after {counted(n_iter, 'iteration')}" if n_iter else "before the first iteration"


def interrupted_message(n_iter: int, params: str | None = None) -> str:
    """The message of a run that a ``KeyboardInterrupt`` stopped after ``n_iter`` iterations
    and which ``params`` it kept, when the caller knows; before the first iteration
    (``n_iter`` 0) a run keeps the initial parameters, whatever the caller says."""
    params = params if n_iter else "the initial ones"
    kept = f"; params are {params}" if params else ""
    return f"interrupted (KeyboardInterrupt) {interrupted_when(n_iter)}{kept}"


def epochs_message(n_epochs: int, maxiter: int, n_batches: int, batch_size: int, *,
                   diverged: bool, at_start: bool = False, failed: int | None = None,
                   final_finite: bool = True) -> str:
    """The message of a mini-batch run (adam, sgd) that kept the parameters after
    ``n_epochs`` epochs: finished, or diverged (``failed``: the epoch that turned non-finite,
    when known; ``at_start``: the cost at the initial parameters was not finite;
    ``final_finite``: False when a finished run's last parameters have a non-finite cost)."""
    if at_start:
        return message(Status.NONFINITE, n_iter=0, maxiter=maxiter, at_start=True)
    if not diverged:
        batches = f"{n_batches} batch" if n_batches == 1 else f"{n_batches} batches"
        done = f"finished {counted(n_epochs, 'epoch')} of {batches} of {batch_size}"
        return done if final_finite else (f"{done}, but the cost at the last parameters is not "
                                          "finite (try a smaller learning rate)")
    kept = f"those after epoch {n_epochs}" if n_epochs else "the initial ones"
    where = f" in epoch {failed}" if failed else ""
    return (f"stopped: the cost became non-finite{where}; params are {kept}, the last with a "
            "finite cost (try a smaller learning rate)")
