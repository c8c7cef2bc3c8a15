""":func:`fit`: the one training call, and the :class:`FitResult` it returns.

``fit(params, X, y, lam)`` unrolls ``params`` into the Octave-order vector ``theta`` once,
puts ``X`` and the one-hot targets on the device once, and then

* ``"L-BFGS-B"`` (the default): scipy's L-BFGS-B iterations (no bounds), the whole run one
  compiled ``lax.while_loop`` that evaluates once per pass (:mod:`jaxnn.train.lbfgsb`);
* ``"TNC"``, ``"CG"``, ``"BFGS"``: ``scipy.optimize.minimize(jac=True)`` calls a jit-compiled
  value-and-gradient function once per evaluation; ``theta`` goes to the device and ``[J, g]``
  comes back in one array (:mod:`jaxnn.train.scipy_bridge`,
  :class:`jaxnn.train.objective.ScipyObjective`);
* ``"lbfgs"``: optax's L-BFGS with its zoom line search, the loop compiled as one
  ``lax.while_loop`` that evaluates once per pass (:mod:`jaxnn.train.lbfgs`);
* ``"fmincg"``: the course's own nonlinear conjugate gradient, compiled the same way
  (:mod:`jaxnn.train.fmincg`);
* ``"adam"``, ``"sgd"`` (or any optax ``GradientTransformation`` passed as ``method``): shuffled
  mini-batches, the epochs compiled (:mod:`jaxnn.train.loops`).

The compiled loops run in segments of ``segment`` iterations (:mod:`jaxnn.train.compiled`:
``fit_lbfgsb`` and its siblings call the loop's ``*_segment`` function through
``run_segments``): between two segments ``fit`` calls the callback and a ``KeyboardInterrupt``
returns the parameters of the last finished segment. Splitting into segments does not change
the numbers. The building blocks :func:`value_and_grad_flat`, :func:`lbfgs_run` and
:func:`minibatch_run` are pure functions that ``jit`` and ``vmap`` accept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxnn.checks import check_dtype, check_seed, check_step_fits, positive_int
from jaxnn.defaults import ACTIVATION, GRAD, LAM, MAXITER, METHOD, OUTPUT
from jaxnn.names import COMPILED_METHODS, MINIBATCH_METHODS
from jaxnn.precision import x64_when
from jaxnn.train.compiled import Callback, fit_fmincg, fit_lbfgs, fit_lbfgsb, fit_minibatch
from jaxnn.train.loops import minibatch_optimizer, optax  # optax: imported on first use
from jaxnn.train.problem import (
    SCIPY_METHODS,
    check_loop_memory,
    check_method,
    check_options,
    make_problem,
)
from jaxnn.train.scipy_bridge import fit_scipy


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
        diverged: the cost or its gradient turned non-finite (NaN or infinite) and ended the
            run; ``params``, ``cost`` and ``history`` are those of the last finite iterate
            (the initial parameters, with their non-finite cost, if the cost was not finite
            from the start), ``converged`` is False.
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
    diverged: bool = False

    def __repr__(self) -> str:
        shapes = ", ".join(str(t.shape) for t in self.params)
        return (f"FitResult(method={self.method!r}, grad={self.grad!r}, cost={self.cost:.6g}, "
                f"n_iter={self.n_iter}, n_evals={self.n_evals}, converged={self.converged}, "
                f"interrupted={self.interrupted}, diverged={self.diverged}, "
                f"seconds={self.seconds:.3g}, "
                f"message={self.message!r}, params shapes [{shapes}])")


def fit(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: float = LAM,
    *,
    method: str | optax.GradientTransformation = METHOD,
    maxiter: int = MAXITER,
    grad: str = GRAD,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
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
        method: ``"L-BFGS-B"`` (scipy's iterations, compiled loop,
            :mod:`jaxnn.train.lbfgsb`), ``"TNC"``, ``"CG"``, ``"BFGS"`` (scipy; BFGS keeps a
            dense ``n x n`` matrix, for small networks only), ``"lbfgs"`` (optax, compiled
            loop),
            ``"fmincg"`` (the course's conjugate gradient, compiled loop; ``maxiter`` counts
            its line searches and ``history`` has the cost after each successful one),
            ``"adam"``, ``"sgd"`` (optax, mini-batches), or any optax ``GradientTransformation``
            (used like adam/sgd).
        maxiter: iterations; for adam/sgd epochs (passes through the data).
        grad: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``).
        activation, output: as in :func:`jaxnn.cost`.
        dtype: ``None`` follows the inputs (float32 unless JAX's x64 mode is on and they are
            float64); ``"float32"``; or ``"float64"``, for which ``fit`` turns x64 on for the
            duration of the call only (see :func:`jaxnn.x64`). The returned numpy arrays keep
            the dtype and stay valid outside x64. (TNC, CG and BFGS iterate in float64 on the
            host, each evaluation in the training dtype; the compiled methods iterate in the
            training dtype.)
        tol: ``"L-BFGS-B"`` and the scipy methods: ``minimize``'s ``tol`` (None: scipy's
            defaults; for L-BFGS-B it sets ``ftol`` and ``gtol``); ``"lbfgs"``: stop
            when ``max|gradient| <= tol`` (default 1e-5). Not used by ``"fmincg"`` (it runs
            all its line searches, as the course's does) nor by adam/sgd.
        learning_rate: adam/sgd only: a float or an optax schedule (default 1e-3 for adam,
            0.1 for sgd).
        batch_size: adam/sgd only; None for full batch. Each epoch reshuffles (from ``seed``)
            and takes ``m // batch_size`` batches of exactly ``batch_size`` examples.
        seed: adam/sgd shuffling seed. Same seed, same inputs: same parameters, bit for bit.
        callback: ``callback(iteration, cost, params)``: iterations done so far, the latest
            ``history`` entry, and the current ``(Theta1, ..., ThetaL)`` as numpy arrays.
            Return True to stop (the message says so). The scipy methods (TNC, CG, BFGS) call
            it after every iteration; the compiled methods, L-BFGS-B among them, after every
            segment (``segment=1``: every iteration, at the price of a dispatch and a wait
            each, about 1 ms on the course's network).
        segment: compiled methods only: iterations (epochs) per compiled segment. Default 25
            for L-BFGS-B, lbfgs and fmincg, and about 100 optimizer steps for adam/sgd. Any
            segment up to the default reuses the same compiled program.
        options: ``"L-BFGS-B"``: scipy's options ``maxcor`` (10), ``ftol``, ``gtol``,
            ``maxls`` (20), ``maxfun`` (15000) (``eps``, ``iprint``, ``finite_diff_rel_step``
            are accepted and, with an exact gradient, change nothing, as in scipy); the scipy
            methods: extra ``minimize`` options (TNC has no iteration cap of its own: ``fit``
            stops it after ``maxiter`` iterations; ``maxfun`` caps evaluations); ``"lbfgs"``:
            ``memory_size`` (10), ``max_linesearch_steps`` (20).
        devices: data parallelism: a device count (the first N of ``jax.devices()``) or a list
            of devices. ``X`` and ``Y`` are sharded over the example axis with a ``Mesh`` axis
            named ``"batch"``; ``theta`` is replicated; every compiled function runs SPMD. ``m``
            must be divisible by the number of devices.

    Returns:
        A :class:`FitResult`. ``KeyboardInterrupt`` during training returns the parameters
        reached so far with ``interrupted=True`` rather than raising.
    """
    t0 = time.perf_counter()
    name = check_method(method)
    maxiter = positive_int(maxiter, "maxiter")
    want64 = check_dtype(dtype)
    loop_options = check_options(name, grad=grad, tol=tol, learning_rate=learning_rate,
                                 batch_size=batch_size, segment=segment, options=options,
                                 callback=callback)
    seed = check_seed(seed)
    if name in (*MINIBATCH_METHODS, "optax"):
        method = minibatch_optimizer(method, learning_rate)
    with x64_when(want64):
        prob = make_problem(params, X, y, lam, activation, output, grad, want64, devices)
        if name in MINIBATCH_METHODS:
            check_step_fits(learning_rate, prob.dtype)
        if name in COMPILED_METHODS:
            check_loop_memory(prob, name)
        if name == "L-BFGS-B":
            out = fit_lbfgsb(prob, maxiter, tol, loop_options, callback, segment)
        elif name in SCIPY_METHODS:
            out = fit_scipy(prob, name, maxiter, tol, loop_options, callback)
        elif name == "lbfgs":
            out = fit_lbfgs(prob, maxiter, tol, loop_options, callback, segment)
        elif name == "fmincg":
            out = fit_fmincg(prob, maxiter, callback, segment)
        elif name in (*MINIBATCH_METHODS, "optax"):
            out = fit_minibatch(prob, method, maxiter, batch_size, seed, callback, segment)
        else:  # a name in jaxnn.names.METHODS without a loop here (tests/test_train.py)
            raise NotImplementedError(f"fit has no training loop for method {name!r}")
    return FitResult(**out, seconds=time.perf_counter() - t0, method=name, grad=grad)
