"""Training: :func:`fit` with scipy's optimizers, optax L-BFGS in one compiled loop, adam or sgd.

``fit(params, X, y, lam)`` unrolls ``params`` into the Octave-order vector ``theta`` once,
puts ``X`` and the one-hot targets on the device once, and then

* ``"L-BFGS-B"``, ``"TNC"``, ``"CG"``, ``"BFGS"``: ``scipy.optimize.minimize(jac=True)`` calls a
  jit-compiled value-and-gradient function once per evaluation; ``theta`` goes to the device and
  ``[J, g]`` comes back in one array (:mod:`jaxnn._train_scipy`,
  :class:`jaxnn._train_objective.ScipyObjective`);
* ``"lbfgs"``: optax's L-BFGS with its zoom line search, the loop compiled as one
  ``lax.while_loop`` (:func:`lbfgs_run`);
* ``"adam"``, ``"sgd"`` (or any optax ``GradientTransformation`` passed as ``method``): shuffled
  mini-batches, the epochs compiled (:func:`minibatch_run`).

The compiled loops run in segments of ``segment`` iterations: between two segments ``fit``
calls the callback and a ``KeyboardInterrupt`` returns the parameters of the last finished
segment. Splitting into segments does not change the numbers. The building blocks
:func:`value_and_grad_flat`, :func:`lbfgs_run` and :func:`minibatch_run` are pure functions
that ``jit`` and ``vmap`` accept.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import optax
from jax.typing import ArrayLike, DTypeLike

from jaxnn import _train_optax as loops
from jaxnn._train_objective import ScipyObjective, check_grad, value_and_grad_flat
from jaxnn._train_optax import lbfgs_run, minibatch_run
from jaxnn._train_scipy import fit_scipy
from jaxnn._train_setup import (
    METHODS,
    SCIPY_METHODS,
    Problem,
    check_dtype,
    check_method,
    check_options,
    make_problem,
    positive_int,
)
from jaxnn.precision import x64, x64_enabled

__all__ = [
    "METHODS",
    "FitResult",
    "fit",
    "lbfgs_run",
    "minibatch_run",
    "value_and_grad_flat",
]

LBFGS_SEGMENT = 25  # default iterations per compiled segment
MINIBATCH_SEGMENT_STEPS = 100  # default optimizer steps per compiled segment (whole epochs)

Callback = Callable[[int, float, tuple[np.ndarray, ...]], Any]


@dataclass(frozen=True, repr=False, eq=False)  # eq: params are arrays
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: the trained ``(Theta1, ..., ThetaL)``, numpy arrays in the training dtype.
        cost: the regularized cost at ``params`` (full batch; NaN only if interrupted before
            the first evaluation finished).
        history: float64 ``(n_iter,)``, the cost after each iteration (for adam/sgd: each
            epoch's mean mini-batch cost).
        n_iter: iterations done (epochs for adam/sgd).
        n_evals: value-and-gradient evaluations (one per mini-batch step for adam/sgd).
        converged: the method's own convergence test passed (never for adam/sgd).
        message: why training stopped.
        seconds: wall time of the whole call, compilation included.
        method: the method used; grad: ``"backprop"`` or ``"autodiff"``.
        interrupted: a ``KeyboardInterrupt`` stopped it; ``params`` are the last iterate (or
            the last finished segment) reached.
    """

    params: tuple[np.ndarray, ...]
    cost: float
    history: np.ndarray
    n_iter: int
    n_evals: int
    converged: bool
    message: str
    seconds: float
    method: str
    grad: str
    interrupted: bool = False

    def __repr__(self) -> str:
        shapes = ", ".join(str(t.shape) for t in self.params)
        return (f"FitResult(method={self.method!r}, grad={self.grad!r}, cost={self.cost:.6g}, "
                f"n_iter={self.n_iter}, n_evals={self.n_evals}, converged={self.converged}, "
                f"interrupted={self.interrupted}, seconds={self.seconds:.3g}, "
                f"message={self.message!r}, params shapes [{shapes}])")


def fit(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: float = 1.0,
    *,
    method: str | optax.GradientTransformation = "L-BFGS-B",
    maxiter: int = 400,
    grad: str = "backprop",
    activation: str = "sigmoid",
    output: str = "sigmoid",
    dtype: DTypeLike | None = None,
    tol: float | None = None,
    learning_rate: float | optax.Schedule | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    callback: Callback | None = None,
    segment: int | None = None,
    options: dict[str, Any] | None = None,
    devices: int | Sequence[jax.Device] | None = None,
) -> FitResult:
    """Train the network ``params`` on ``X`` ``(m, n_0)`` and labels ``y`` to minimize the
    regularized cost with penalty ``lam``.

    Args:
        params: initial ``(Theta1, ..., ThetaL)``, e.g. from :func:`jaxnn.init_params`.
        X: ``(m, n_0)`` inputs. y: integer labels ``(m,)`` in ``0..K-1`` or targets ``(m, K)``.
        lam: the L2 penalty ``lam/(2m) sum W^2`` (bias weights excluded).
        method: ``"L-BFGS-B"``, ``"TNC"``, ``"CG"``, ``"BFGS"`` (scipy; BFGS keeps a dense
            ``n x n`` matrix, for small networks only), ``"lbfgs"`` (optax, compiled loop),
            ``"adam"``, ``"sgd"`` (optax, mini-batches), or any optax ``GradientTransformation``
            (used like adam/sgd).
        maxiter: iterations; for adam/sgd epochs (passes through the data).
        grad: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``).
        activation, output: as in :func:`jaxnn.cost`.
        dtype: ``None`` follows the inputs (float32 unless JAX's x64 mode is on and they are
            float64); ``"float32"``; or ``"float64"``, for which ``fit`` turns x64 on for the
            duration of the call only (see :func:`jaxnn.x64`). The returned numpy arrays keep
            the dtype and stay valid outside x64. (scipy always iterates in float64 on the
            host; each evaluation runs in the training dtype.)
        tol: scipy methods: ``minimize``'s ``tol`` (None: scipy's defaults); ``"lbfgs"``: stop
            when ``max|gradient| <= tol`` (default 1e-5). Not used by adam/sgd.
        learning_rate: adam/sgd only: a float or an optax schedule (default 1e-3 for adam,
            0.1 for sgd).
        batch_size: adam/sgd only; None for full batch. Each epoch reshuffles (from ``seed``)
            and takes ``m // batch_size`` batches of exactly ``batch_size`` examples.
        seed: adam/sgd shuffling seed. Same seed, same inputs: same parameters, bit for bit.
        callback: ``callback(iteration, cost, params)``: iterations done so far, the latest
            ``history`` entry, and the current ``(Theta1, ..., ThetaL)`` as numpy arrays.
            Return True to stop (the message says so). scipy methods call it after every
            iteration; the compiled methods after every segment (``segment=1``: every
            iteration, at the price of a dispatch each).
        segment: compiled methods only: iterations (epochs) per compiled segment. Default 25
            for lbfgs and about 100 optimizer steps for adam/sgd. Any segment up to the default
            reuses the same compiled program.
        options: scipy methods: extra ``minimize`` options (TNC has no iteration cap of its
            own: ``fit`` stops it after ``maxiter`` iterations; ``maxfun`` caps evaluations);
            ``"lbfgs"``: ``memory_size`` (10), ``max_linesearch_steps`` (20).
        devices: data parallelism: a device count (the first N of ``jax.devices()``) or a list
            of devices. ``X`` and ``Y`` are sharded over the example axis with a ``Mesh`` axis
            named ``"batch"``; ``theta`` is replicated; every compiled function runs SPMD. ``m``
            must be divisible by the number of devices.

    Returns:
        A :class:`FitResult`. ``KeyboardInterrupt`` during training returns the parameters
        reached so far with ``interrupted=True`` rather than raising.
    """
    t0 = time.perf_counter()
    name, optimizer = check_method(method, learning_rate)
    maxiter = positive_int(maxiter, "maxiter")
    check_grad(grad)
    want64 = check_dtype(dtype)
    check_options(name, tol, learning_rate, batch_size, segment, options, callback)
    scope = x64() if want64 and not x64_enabled() else contextlib.nullcontext()
    with scope:
        prob = make_problem(params, X, y, lam, activation, output, grad, want64, devices)
        if name in SCIPY_METHODS:
            out = fit_scipy(prob, name, maxiter, tol, options, callback)
        elif name == "lbfgs":
            out = _fit_lbfgs(prob, maxiter, tol, options, callback, segment)
        else:
            out = _fit_minibatch(prob, optimizer, maxiter, batch_size, seed, callback, segment)
    return FitResult(**out, seconds=time.perf_counter() - t0, method=name, grad=grad)


# --- compiled optax loops -----------------------------------------------------------------------

_LOOP_STATIC = ("sizes", "activation", "output", "grad")
_LBFGS_STATIC = (*_LOOP_STATIC, "tol", "memory_size", "max_linesearch_steps")
_lbfgs_init = jax.jit(loops.lbfgs_init, static_argnames=_LBFGS_STATIC)
_lbfgs_segment = jax.jit(loops.lbfgs_segment, static_argnames=(*_LBFGS_STATIC, "length"))
_minibatch_init = jax.jit(loops.minibatch_init, static_argnames=("optimizer",))
_minibatch_segment = jax.jit(loops.minibatch_segment, static_argnames=(
    *_LOOP_STATIC, "optimizer", "batch_size", "length"))


def _run_segments(step: Callable, carry, total: int, seg: int, progress: Callable,
                  callback: Callback | None, prob: Problem):
    """Call ``step(carry, stop) -> (carry, costs)`` segment by segment up to ``total``
    iterations, ``seg`` at a time.

    ``progress(carry) -> (iterations done, finished)`` on the host. A carry replaces the
    previous one only once it is computed, so a ``KeyboardInterrupt`` keeps the last finished
    segment. Returns ``(carry, iterations, history, interrupted, stop message)``."""
    it, history, interrupted, stopped = 0, [], False, None
    try:
        while True:
            new, costs = step(carry, min(it + seg, total))
            (done, finished), costs = progress(new), np.asarray(costs)
            history.append(costs[: done - it])
            carry, it = new, done
            if callback is not None and it > 0 and callback(
                    it, float(history[-1][-1]), prob.unravel(np.asarray(carry.theta))):
                stopped = f"stopped by callback after {it} iterations"
                break
            if finished or it >= total:
                break
    except KeyboardInterrupt:
        interrupted = True
    history = np.concatenate(history).astype(np.float64) if history else np.zeros(0)
    return carry, it, history, interrupted, stopped


def _interrupted_message(it: int) -> str:
    return (f"interrupted (KeyboardInterrupt) after {it} iterations; params are those of the "
            "last finished compiled segment")


def _interrupted_at_start(prob: Problem) -> dict:
    """What ``fit`` returns for a ``KeyboardInterrupt`` before the loop's state existed (while
    the loop compiled): the initial parameters, no cost evaluated (NaN), no iteration."""
    return dict(params=prob.unravel(prob.theta0), cost=float("nan"), history=np.zeros(0),
                n_iter=0, n_evals=0, converged=False, interrupted=True,
                message="interrupted (KeyboardInterrupt) before the first iteration; params are "
                        "the initial ones")


def _fit_lbfgs(prob: Problem, maxiter: int, tol, options, callback, segment) -> dict:
    kw = dict(sizes=prob.sizes, activation=prob.activation, output=prob.output, grad=prob.grad,
              tol=1e-5 if tol is None else float(tol), **(options or {}))
    try:
        carry = _lbfgs_init(prob.put(prob.theta0), prob.X, prob.Y, prob.lam, **kw)
    except KeyboardInterrupt:  # while compiling or at the first evaluation
        return _interrupted_at_start(prob)
    seg = segment or LBFGS_SEGMENT
    length = max(seg, LBFGS_SEGMENT)  # one compiled program for every segment <= the default

    def progress(c):
        it, status = jax.device_get((c.it, c.status))
        return int(it), int(status) != loops.RUNNING

    carry, it, history, interrupted, stopped = _run_segments(
        lambda c, stop: _lbfgs_segment(c, prob.X, prob.Y, prob.lam, stop, length=length, **kw),
        carry, maxiter, seg, progress, callback, prob)
    status = int(carry.status)
    message = stopped or {
        loops.RUNNING: f"maximum number of iterations ({maxiter}) reached",
        loops.CONVERGED: f"converged: max |gradient| <= tol ({kw['tol']:g})",
        loops.STALLED: "stopped: the line search made no progress",
        loops.NONFINITE: "stopped: the cost or its gradient is not finite",
    }[status]
    if interrupted:
        message = _interrupted_message(it)
    return dict(params=prob.unravel(np.asarray(carry.theta)), cost=float(carry.value),
                history=history, n_iter=it, n_evals=int(carry.n_evals),
                converged=status == loops.CONVERGED, message=message, interrupted=interrupted)


def _fit_minibatch(prob: Problem, optimizer, epochs: int, batch_size, seed: int, callback,
                   segment) -> dict:
    m = prob.X.shape[0]
    b, nb = loops.n_batches(m, batch_size)
    key = jax.random.key(int(seed))
    if prob.replicated is not None:
        key = jax.device_put(key, prob.replicated)
    seg = segment or max(1, MINIBATCH_SEGMENT_STEPS // nb)
    kw = dict(sizes=prob.sizes, activation=prob.activation, output=prob.output, grad=prob.grad,
              optimizer=optimizer, batch_size=b, length=max(seg, MINIBATCH_SEGMENT_STEPS))
    try:
        carry = _minibatch_init(prob.put(prob.theta0), optimizer)
    except KeyboardInterrupt:
        return _interrupted_at_start(prob)

    def progress(c):
        it, finite = jax.device_get((c.epoch, c.finite))
        return int(it), not bool(finite)

    carry, it, history, interrupted, stopped = _run_segments(
        lambda c, stop: _minibatch_segment(c, prob.X, prob.Y, prob.lam, key, stop, **kw),
        carry, epochs, seg, progress, callback, prob)
    theta = np.asarray(carry.theta)
    obj = ScipyObjective(prob.X, prob.Y, prob.lam, sizes=prob.sizes, activation=prob.activation,
                         output=prob.output, grad=prob.grad, theta_sharding=prob.replicated)
    cost = float(obj.packed(theta)[0])
    if interrupted:
        message = _interrupted_message(it)
    elif stopped:
        message = stopped
    elif not bool(carry.finite):
        message = f"stopped: the cost became non-finite in epoch {it}"
    else:
        message = f"finished {it} epochs of {nb} batches of {b}"
    return dict(params=prob.unravel(theta), cost=cost, history=history, n_iter=it,
                n_evals=it * nb, converged=False, message=message, interrupted=interrupted)
