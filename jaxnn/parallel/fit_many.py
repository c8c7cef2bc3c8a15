""":func:`fit_many`: ``B`` networks trained on the same data in one compiled, ``vmap``-ed program.

``"adam"``/``"sgd"`` vmap the very loop of ``fit(method="adam")``
(:func:`jaxnn.train.minibatch_run`); ``"lbfgs"`` runs :func:`jaxnn.parallel.lbfgs.lbfgs_many_run`,
an L-BFGS written for ``vmap``. See :mod:`jaxnn.parallel`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from jax.typing import ArrayLike, DTypeLike

from jaxnn.checks import (
    ALL_ITERATIONS,
    Params,
    check_choice,
    check_count_options,
    check_devices,
    check_dtype,
    check_grad,
    check_number,
    check_representable,
    check_seeds,
    check_step_fits,
    check_tol,
    check_X_representable,
    positive_int,
    refuse_unused,
)
from jaxnn.compiling import LOOPS, jit_with_options
from jaxnn.defaults import ACTIVATION, GRAD, LBFGS_TOL, MANY_MAXITER, MANY_METHOD, OUTPUT
from jaxnn.losses import prepare_problem, targets
from jaxnn.memory import MANY_PARAM_COPIES, check_memory, loop_bytes
from jaxnn.model import seed_keys, start_vector
from jaxnn.names import MANY_METHODS
from jaxnn.parallel.lbfgs import lbfgs_many_run
from jaxnn.parallel.members import member_index, n_networks
from jaxnn.parallel.sharding import Devices
from jaxnn.precision import training_dtype, x64_when
from jaxnn.spec import NetSpec
from jaxnn.train.fmincg import fmincg_segment, fmincg_start
from jaxnn.train.lbfgs import MAX_LINESEARCH_STEPS, MEMORY_SIZE
from jaxnn.train.loops import minibatch_optimizer, minibatch_run
from jaxnn.train.status import Status, epochs_message, message

Array = jax.Array

CPU_CHUNK = 16  # networks evaluated together on CPU (see lbfgs_many_run)
NETWORKS_AXIS = "networks"
LBFGS_MANY_OPTIONS = {"memory_size": MEMORY_SIZE, "max_linesearch_steps": MAX_LINESEARCH_STEPS,
                      "chunk_size": None}


def _lams(lams: ArrayLike, B: int) -> np.ndarray:
    """``lams``: one penalty for all networks or one per network, each finite and >= 0."""
    arr = np.asarray(lams)
    if arr.ndim == 0:
        return np.full(B, check_number(lams, "lams", low=0.0))
    if arr.shape != (B,):
        raise ValueError(f"lams must be a scalar or have one value per network, shape ({B},); "
                         f"got shape {arr.shape}")
    return np.asarray([check_number(v, f"lams[{i}]", low=0.0) for i, v in enumerate(arr)])


# --- fit_many -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class FitManyResult:
    """What :func:`fit_many` returns: every field batched like the input, ``B`` networks.

    Attributes:
        params: ``(Theta1 (B, n_1, 1 + n_0), ...)``, numpy arrays in the training dtype.
        lams: ``(B,)`` the penalty each member was trained with.
        cost: ``(B,)`` regularized (full-batch) cost at each member's final ``params``.
        history: ``(B, maxiter)`` cost after each iteration (adam/sgd: each epoch's mean
            mini-batch cost), NaN after a member's last iteration.
        n_iter: ``(B,)`` iterations (epochs) each member did.
        n_evals: ``(B,)`` value-and-gradient evaluations (adam/sgd: mini-batch steps).
        converged: ``(B,)`` the L-BFGS gradient test passed (never for adam/sgd).
        diverged: ``(B,)`` the member met a non-finite cost (its ``messages`` entry says
            which parameters it kept).
        messages: why each member stopped.
        seconds: wall time of the whole call, compilation included.
        method, grad: as passed.
    """

    params: tuple[np.ndarray, ...]
    lams: np.ndarray
    cost: np.ndarray
    history: np.ndarray
    n_iter: np.ndarray
    n_evals: np.ndarray
    converged: np.ndarray
    diverged: np.ndarray
    messages: tuple[str, ...]
    seconds: float
    method: str
    grad: str

    def __len__(self) -> int:
        return int(self.cost.shape[0])

    def member(self, i: int) -> Params:
        """The trained parameters of network ``i`` (``0..B-1``, or ``-B..-1`` from the end)."""
        i = member_index(i, len(self))
        return tuple(t[i] for t in self.params)

    @property
    def best(self) -> int:
        """Index of the member with the lowest final cost (ties: the first)."""
        return int(np.nanargmin(self.cost))

    def __repr__(self) -> str:
        shapes = ", ".join(str(t.shape) for t in self.params)
        return (f"FitManyResult(B={len(self)}, method={self.method!r}, grad={self.grad!r}, "
                f"cost min/median/max={np.nanmin(self.cost):.6g}/{np.nanmedian(self.cost):.6g}/"
                f"{np.nanmax(self.cost):.6g}, n_iter max={int(self.n_iter.max())}, "
                f"seconds={self.seconds:.3g}, params shapes [{shapes}])")


def _lbfgs_many_impl(theta0, X, Y, lams, **kw):
    c = lbfgs_many_run(theta0, X, Y, lams, **kw)
    return c.theta, c.value, c.history, c.it, c.n_evals, c.status


# compiled as fit compiles its loops (jaxnn.compiling.LOOPS)
_lbfgs_many = jit_with_options(_lbfgs_many_impl, LOOPS, static_argnames=(
    "spec", "maxiter", "tol", "memory_size", "max_linesearch_steps", "chunk_size"))


def _fmincg_many_impl(theta0, X, Y, lams, *, spec, maxiter):
    """vmap of the course's ``fmincg`` over ``(theta0, lams)``: its line search is a
    branch-free state machine, so no member evaluates twice per pass."""

    def one(theta, lam):
        args = (X, Y, lam)
        state, history = fmincg_segment(spec.value_and_grad, fmincg_start(theta), maxiter,
                                        length=maxiter, args=args)
        return state.theta, state.value, history, state.it, state.n_evals, state.status

    return jax.vmap(one)(theta0, lams)


_fmincg_many = jit_with_options(_fmincg_many_impl, LOOPS, static_argnames=("spec", "maxiter"))


@partial(jax.jit, static_argnames=("spec", "optimizer", "epochs", "batch_size"))
def _minibatch_many(theta0, X, Y, lams, keys, *, spec, optimizer, epochs, batch_size):
    """vmap of jaxnn.train's mini-batch loop over ``(theta0, lams, keys)``, then each member's
    full-batch cost at its final ``theta``."""
    run = partial(minibatch_run, sizes=spec.sizes, activation=spec.activation,
                  output=spec.output, grad=spec.grad, optimizer=optimizer, epochs=epochs,
                  batch_size=batch_size)
    theta, history = jax.vmap(run, in_axes=(0, None, None, 0, 0))(theta0, X, Y, lams, keys)
    cost = jax.vmap(lambda t, lam: spec.value_and_grad(t, X, Y, lam)[0])(theta, lams)
    return theta, cost, history


def check_many_memory(sizes: tuple[int, ...], m: int, dtype: object, networks: int,
                      maxiter: int = 0, method: str = MANY_METHOD) -> None:
    """``networks`` networks of ``sizes`` trained together by ``method`` on ``m`` examples for
    ``maxiter`` iterations (each network's cost history: ``maxiter`` values) that cannot fit in
    memory are a ``ValueError`` (``fit_many``'s check; the sweeps make it before they make the
    networks' weights)."""
    check_memory(loop_bytes(sizes, m, dtype, networks=networks, maxiter=maxiter,
                            param_copies=MANY_PARAM_COPIES[method]),
                 f"fit_many: {networks} networks {'-'.join(map(str, sizes))} on {m} examples",
                 hint="train fewer networks at once (sweeps: fewer seeds or values), use "
                      "smaller layers, fewer examples or fewer iterations")


def fit_many(
    params_batch: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lams: ArrayLike = 1.0,
    *,
    method: str = MANY_METHOD,
    maxiter: int = MANY_MAXITER,
    grad: str = GRAD,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    dtype: DTypeLike | None = None,
    tol: float | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    seed: int | Sequence[int] = 0,
    options: dict[str, int] | None = None,
    devices: Devices | None = None,
) -> FitManyResult:
    """Train ``B`` networks on the same data in one compiled, ``vmap``-ed program.

    Args:
        params_batch: ``(Theta1 (B, n_1, 1 + n_0), ...)``, e.g. ``init_many(seed, B, sizes)``.
        X: ``(m, n_0)`` inputs. y: integer labels ``(m,)`` or targets ``(m, K)``.
        lams: the penalty, a scalar for all or ``(B,)``, one per network.
        method: ``"lbfgs"``: L-BFGS written for ``vmap`` (:func:`lbfgs_many_run`: one gradient
            evaluation per network per pass, weak-Wolfe line search; see the comment above
            :class:`LbfgsState` for how it differs from ``fit(method="lbfgs")``'s strong-Wolfe
            zoom); ``"fmincg"``: ``vmap`` of the course's conjugate
            gradient (:mod:`jaxnn.train.fmincg`, one evaluation per network per pass, as in
            ``fit(method="fmincg")``); ``"adam"`` or ``"sgd"``: ``vmap`` of
            :func:`jaxnn.train.minibatch_run`, the loop of ``fit(method="adam")``.
        maxiter: iterations (lbfgs), line searches (fmincg) or epochs (adam/sgd).
        grad: ``"backprop"`` (hand-written) or ``"autodiff"``.
        activation, output: as in :func:`jaxnn.cost`.
        dtype: None (follow the inputs), ``"float32"`` or ``"float64"`` (x64 is switched on for
            the call).
        tol: lbfgs: stop a member when ``max|gradient| <= tol`` (default 1e-5).
        learning_rate: adam/sgd (default 1e-3 for adam, 0.1 for sgd).
        batch_size: adam/sgd mini-batch size (None: full batch).
        seed: adam/sgd shuffling: an int ``s`` gives member ``i`` the seed ``s + i`` (what
            ``fit(..., seed=s + i)`` uses), or ``B`` ints.
        options: lbfgs: ``memory_size`` (10), ``max_linesearch_steps`` (20), ``chunk_size``
            (networks evaluated together; default 16 on CPU, all on GPU and with
            ``devices``).
        devices: split the *networks* over devices (a count, a list of devices or a 1-D
            ``Mesh``); ``B`` must be a multiple of their number. The data are replicated.

    Returns:
        A :class:`FitManyResult`. Member ``i`` matches a run of the same compiled loop on
        network ``i`` alone with ``lams[i]``, to rounding: for ``"adam"`` and ``"sgd"`` that is
        ``jaxnn.fit`` with the same method and ``seed + i``; for ``"lbfgs"`` it is
        ``fit_many`` on that one network (it reaches the minima ``fit``'s L-BFGS methods
        reach, by a slightly different path).

    Raises:
        ValueError: naming the argument, for inconsistent batch shapes, ``lams`` of the wrong
            length or negative, unknown methods and options, and everything
            :func:`jaxnn.cost` rejects (checked once, on member 0).
    """
    t0 = time.perf_counter()
    B = n_networks(params_batch)
    lam_arr = _lams(lams, B)
    check_choice(method, MANY_METHODS, "method", by="fit_many")
    check_grad(grad)
    maxiter = positive_int(maxiter, "maxiter")
    want64 = check_dtype(dtype)
    kw_loop = _method_options(method, tol, learning_rate, batch_size, options)
    seeds = check_seeds(seed, B)
    mesh = check_devices(devices, NETWORKS_AXIS) if devices is not None else None
    if mesh is not None and B % mesh.size:
        raise ValueError(f"fit_many with {mesh.size} devices needs a number of networks that "
                         f"they share evenly; got B = {B}")
    with x64_when(want64):
        member0 = tuple(np.asarray(t[0]) if isinstance(t, np.ndarray) else t[0]
                        for t in params_batch)
        p0, Xc, yc, _, dt = prepare_problem(member0, X, y, float(lam_arr[0]), activation,
                                            output, None)
        dt = training_dtype(want64, dt)
        check_representable(lam_arr, "lam", dt)
        spec = NetSpec((p0[0].shape[1] - 1, *(t.shape[0] for t in p0)), activation, output,
                       grad)
        check_many_memory(spec.sizes, Xc.shape[0], dt, B, maxiter, method)
        check_step_fits(learning_rate, dt)
        theta0 = jnp.asarray(start_vector(params_batch, dt, "params_batch",
                                          "jaxnn.parallel.init_many"))
        with np.errstate(over="ignore"):  # an overflow is reported by the check below
            Xd = jnp.asarray(Xc, dt)
        check_X_representable(Xd, dt)
        Yd = targets(jnp.asarray(yc), spec.sizes[-1], dt)
        lam_d = jnp.asarray(lam_arr, dt)
        if mesh is not None:
            split, whole = (NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])),
                            NamedSharding(mesh, PartitionSpec()))
            theta0, lam_d = jax.device_put(theta0, split), jax.device_put(lam_d, split)
            Xd, Yd = jax.device_put(Xd, whole), jax.device_put(Yd, whole)
        if method == "lbfgs":
            chunk = kw_loop.pop("chunk_size")
            if chunk is None and mesh is None and jax.default_backend() == "cpu":
                chunk = CPU_CHUNK
            theta, value, hist, it, n_evals, status = jax.device_get(_lbfgs_many(
                theta0, Xd, Yd, lam_d, spec=spec, maxiter=maxiter, chunk_size=chunk,
                **kw_loop))
            messages = tuple(message(s, n_iter=int(n), maxiter=maxiter, tol=kw_loop["tol"],
                                     at_start=not np.isfinite(v), dtype=theta.dtype.name)
                             for s, n, v in zip(status, it, value, strict=True))
            converged = np.asarray(status) == Status.CONVERGED
            diverged = np.asarray(status) == Status.NONFINITE
        elif method == "fmincg":
            theta, value, hist, it, n_evals, status = jax.device_get(_fmincg_many(
                theta0, Xd, Yd, lam_d, spec=spec, maxiter=maxiter))
            messages = tuple(message(s, n_iter=int(n), maxiter=maxiter,
                                     at_start=not np.isfinite(v), dtype=theta.dtype.name)
                             for s, n, v in zip(status, it, value, strict=True))
            converged = np.zeros(B, dtype=bool)
            diverged = np.asarray(status) == Status.NONFINITE
        else:
            keys = seed_keys(seeds)
            if mesh is not None:
                keys = jax.device_put(keys, split)
            m = Xd.shape[0]
            b = m if batch_size is None else min(batch_size, m)  # as fit: m // b batches of b
            nb = m // b
            theta, value, hist = jax.device_get(_minibatch_many(
                theta0, Xd, Yd, lam_d, keys, spec=spec, **kw_loop, epochs=maxiter))
            it = np.sum(np.isfinite(hist), axis=1)
            n_evals = it * nb
            converged = np.zeros(B, dtype=bool)
            diverged = (it < maxiter) | ~np.isfinite(value)
            # a member whose last parameters have a non-finite cost is said so (the pure
            # loop returns no earlier parameters to go back to, unlike fit's)
            messages = tuple(
                epochs_message(int(n), maxiter, nb, b, diverged=n < maxiter,
                               at_start=n == 0 and not np.isfinite(v),
                               final_finite=bool(np.isfinite(v)))
                for n, v in zip(it, value, strict=True))
        params = spec.unravel(np.asarray(theta))
    return FitManyResult(
        params=params, lams=lam_arr, cost=np.asarray(value, np.float64),
        history=np.asarray(hist, np.float64), n_iter=np.asarray(it, np.int64),
        n_evals=np.asarray(n_evals, np.int64), converged=np.asarray(converged, bool),
        diverged=np.asarray(diverged, bool), messages=messages,
        seconds=time.perf_counter() - t0, method=method, grad=grad,
    )


def _method_options(method: str, tol, learning_rate, batch_size, options) -> dict[str, Any]:
    """Check the method-specific arguments; return the static options of its compiled loop."""
    if method == "fmincg":
        refuse_unused(method, why=ALL_ITERATIONS, tol=tol)
        refuse_unused(method, "adam/sgd", learning_rate=learning_rate, batch_size=batch_size)
        refuse_unused(method, options=options)
        return {}
    if method == "lbfgs":
        refuse_unused(method, "adam/sgd", learning_rate=learning_rate, batch_size=batch_size)
        tol = check_tol(tol)
        opts: dict[str, Any] = dict(LBFGS_MANY_OPTIONS)
        if options is not None:
            opts.update(check_count_options(options, list(opts), method))
        return {"tol": LBFGS_TOL if tol is None else tol, **opts}
    refuse_unused(method, why=ALL_ITERATIONS, tol=tol)
    refuse_unused(method, options=options)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    return {"optimizer": minibatch_optimizer(method, learning_rate), "batch_size": batch_size}
