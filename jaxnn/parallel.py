"""Many networks at once (``vmap``) and one network over many devices (``jax.sharding``).

**Many networks.** A *batch* of networks is the params pytree with a leading axis ``B`` on every
``Theta``: ``(Theta1 (B, n_1, 1 + n_0), Theta2 (B, n_2, 1 + n_1), ...)``, as made by
:func:`init_many` (member ``i`` is :func:`jaxnn.init_params` with the ``i``-th of ``B`` keys).
:func:`fit_many` trains the whole batch, each member with its own ``lam`` (and for adam/sgd its
own shuffling seed), as **one compiled program**: the B small matrix products of every layer
become one batched product, and there is one dispatch per run instead of one per network and
iteration.

* ``"adam"``/``"sgd"``: ``jax.vmap`` of :func:`jaxnn.train.minibatch_run`, the very loop of
  ``fit(method="adam")``: member ``i`` equals ``fit(member_i, X, y, lams[i], method="adam",
  seed=seed + i)`` to rounding.
* ``"lbfgs"``: :func:`jaxnn.batched_lbfgs.lbfgs_many_run`, an L-BFGS written for ``vmap`` (the
  comment in :mod:`jaxnn.batched_lbfgs` says why ``fit``'s optax loop is not simply vmapped):
  member ``i`` equals the same loop run on network ``i`` alone, and reaches the minima ``fit``'s
  L-BFGS methods reach.

Under ``vmap`` a loop runs until its slowest member stops; members that stopped earlier are held
fixed, so each member's iteration count and result are its own. :func:`evaluate_many`,
:func:`ensemble_proba` and :func:`ensemble_predict` evaluate and combine such batches (they live
in :mod:`jaxnn.batches`, with :func:`init_many` and :func:`member`, and are re-exported here).
With ``fit_many(..., devices=N)`` the *networks* are split across ``N`` devices (a ``Mesh`` axis
``"networks"``), the data replicated: ``B`` must be a multiple of ``N``.

**One network, many devices (data parallelism).** :func:`jaxnn.fit` takes ``devices=``: the
examples (rows of ``X`` and ``Y``) are split across a ``Mesh`` axis ``"batch"`` and the
parameters replicated, and every compiled function runs SPMD: XLA computes each device's partial
sums and adds them with an all-reduce. :func:`data_mesh`, :func:`shard_examples` and
:func:`replicate` (from :mod:`jaxnn.sharding`, re-exported here) place arrays the same way for
users who call :func:`jaxnn.cost`, :func:`jaxnn.backprop` or their own jitted functions on
sharded inputs: JAX's ``jit`` follows the inputs' shardings, so ``backprop(params, Xs, ys)``
with ``Xs, ys = shard_examples(X, y, 8)`` runs on 8 devices and returns the gradients that one
device computes, to rounding. For several processes (hosts), see ``docs/multihost.md`` and
:func:`shard_local_examples`.
"""

from __future__ import annotations

import contextlib
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

from jaxnn._train_setup import check_dtype as _want64
from jaxnn._train_setup import optimizer as _optimizer
from jaxnn._train_setup import positive_int as _positive_int
from jaxnn._validation import Params
from jaxnn.batched_lbfgs import CONVERGED, NONFINITE, RUNNING, STALLED, LbfgsState, lbfgs_many_run
from jaxnn.batches import (
    ensemble_predict,
    ensemble_proba,
    evaluate_many,
    init_many,
    member,
    n_networks,
)
from jaxnn.losses import prepare_problem, targets
from jaxnn.model import ravel_params
from jaxnn.model import unravel_params as _unravel
from jaxnn.precision import x64, x64_enabled
from jaxnn.sharding import (
    Devices,
    data_mesh,
    replicate,
    shard_examples,
    shard_local_examples,
)
from jaxnn.train import minibatch_run, value_and_grad_flat

__all__ = [
    "FitManyResult",
    "LbfgsState",
    "data_mesh",
    "ensemble_predict",
    "ensemble_proba",
    "evaluate_many",
    "fit_many",
    "init_many",
    "lbfgs_many_run",
    "member",
    "replicate",
    "shard_examples",
    "shard_local_examples",
]

Array = jax.Array

MANY_METHODS = ("lbfgs", "adam", "sgd")
CPU_CHUNK = 16  # networks evaluated together on CPU (see lbfgs_many_run)
DEFAULT_LEARNING_RATE = {"adam": 1e-3, "sgd": 0.1}
GRADS = ("backprop", "autodiff")
NETWORKS_AXIS = "networks"


# --- per-member arguments -----------------------------------------------------------------------


def _lams(lams: ArrayLike, B: int) -> np.ndarray:
    arr = np.asarray(lams, dtype=np.float64) if not isinstance(lams, jax.Array) \
        else np.asarray(lams).astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(B, float(arr))
    if arr.shape != (B,):
        raise ValueError(f"lams must be a scalar or have one value per network, shape ({B},); "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"lams must be finite numbers >= 0, got {arr.tolist()}")
    return arr


def _seeds(seed: int | Sequence[int], B: int) -> np.ndarray:
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        return int(seed) + np.arange(B)
    arr = np.asarray(seed)
    if arr.shape != (B,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seed must be an int or {B} ints (one per network), got {seed!r}")
    return arr


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
    messages: tuple[str, ...]
    seconds: float
    method: str
    grad: str

    def __len__(self) -> int:
        return int(self.cost.shape[0])

    def member(self, i: int) -> Params:
        """The trained parameters of network ``i``."""
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


_STATIC = ("sizes", "activation", "output", "grad")


@partial(jax.jit, static_argnames=(*_STATIC, "maxiter", "tol", "memory_size",
                                   "max_linesearch_steps", "chunk_size"))
def _lbfgs_many(theta0, X, Y, lams, **kw):
    c = lbfgs_many_run(theta0, X, Y, lams, **kw)
    return c.theta, c.value, c.history, c.it, c.n_evals, c.status


@partial(jax.jit, static_argnames=(*_STATIC, "optimizer", "epochs", "batch_size"))
def _minibatch_many(theta0, X, Y, lams, keys, *, sizes, activation, output, grad, optimizer,
                    epochs, batch_size):
    """vmap of jaxnn.train's mini-batch loop over ``(theta0, lams, keys)``, then each member's
    full-batch cost at its final ``theta``."""
    run = partial(minibatch_run, sizes=sizes, activation=activation, output=output,
                  grad=grad, optimizer=optimizer, epochs=epochs, batch_size=batch_size)
    theta, history = jax.vmap(run, in_axes=(0, None, None, 0, 0))(theta0, X, Y, lams, keys)
    vg = partial(value_and_grad_flat, sizes=sizes, activation=activation, output=output,
                 grad=grad)
    cost = jax.vmap(lambda t, lam: vg(t, X, Y, lam)[0])(theta, lams)
    return theta, cost, history


@partial(jax.jit, static_argnames=("sizes",))
def _unravel_many(theta: Array, sizes: tuple[int, ...]) -> Params:
    return jax.vmap(lambda t: _unravel(t, sizes))(theta)


@jax.jit
def _ravel_many(params_batch: Params) -> Array:
    return jax.vmap(ravel_params)(params_batch)


def _lbfgs_message(status: int, n_iter: int, maxiter: int, tol: float) -> str:
    return {
        RUNNING: f"maximum number of iterations ({maxiter}) reached",
        CONVERGED: f"converged: max |gradient| <= tol ({tol:g})",
        STALLED: f"stopped after {n_iter} iterations: the line search found no lower cost",
        NONFINITE: "stopped: the cost or its gradient is not finite",
    }[status]


def fit_many(
    params_batch: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lams: ArrayLike = 1.0,
    *,
    method: str = "lbfgs",
    maxiter: int = 100,
    grad: str = "backprop",
    activation: str = "sigmoid",
    output: str = "sigmoid",
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
            evaluation per network per pass, weak-Wolfe line search; ``fit(method="lbfgs")``'s
            optax loop costs 2-4 evaluations per iteration under ``vmap``, see the comment
            above :class:`LbfgsState`); ``"adam"`` or ``"sgd"``: ``vmap`` of
            :func:`jaxnn.train.minibatch_run`, the loop of ``fit(method="adam")``.
        maxiter: iterations (lbfgs) or epochs (adam/sgd).
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
    if method not in MANY_METHODS:
        raise ValueError(f"method={method!r} is not supported by fit_many; choose one of "
                         f"{list(MANY_METHODS)}")
    if grad not in GRADS:
        raise ValueError(f"grad={grad!r} is not supported; choose one of {list(GRADS)}")
    maxiter = _positive_int(maxiter, "maxiter")
    want64 = _want64(dtype)
    kw_loop = _method_options(method, tol, learning_rate, batch_size, options)
    seeds = _seeds(seed, B)
    mesh = data_mesh(devices, NETWORKS_AXIS) if devices is not None else None
    if mesh is not None and B % mesh.size:
        raise ValueError(f"fit_many with {mesh.size} devices needs a number of networks that "
                         f"they share evenly; got B = {B}")
    scope = x64() if want64 and not x64_enabled() else contextlib.nullcontext()
    with scope:
        member0 = tuple(np.asarray(t[0]) if isinstance(t, np.ndarray) else t[0]
                        for t in params_batch)
        p0, Xc, yc, _, dt = prepare_problem(member0, X, y, float(lam_arr[0]), activation,
                                            output)
        if want64 is not None:
            dt = np.dtype(np.float64 if want64 else np.float32)
        sizes = (p0[0].shape[1] - 1, *(t.shape[0] for t in p0))
        theta0 = _ravel_many(tuple(jnp.asarray(t, dt) for t in params_batch))
        Xd = jnp.asarray(Xc, dt)
        Yd = targets(jnp.asarray(yc), sizes[-1], dt)
        lam_d = jnp.asarray(lam_arr, dt)
        static = dict(sizes=sizes, activation=activation, output=output, grad=grad)
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
                theta0, Xd, Yd, lam_d, maxiter=maxiter, chunk_size=chunk, **static, **kw_loop))
            tol_used = kw_loop["tol"]
            messages = tuple(_lbfgs_message(int(s), int(n), maxiter, tol_used)
                             for s, n in zip(status, it, strict=True))
            converged = np.asarray(status) == CONVERGED
        else:
            keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
            if mesh is not None:
                keys = jax.device_put(keys, split)
            m = Xd.shape[0]
            b = m if batch_size is None else min(batch_size, m)  # as fit: m // b batches of b
            nb = m // b
            theta, value, hist = jax.device_get(_minibatch_many(
                theta0, Xd, Yd, lam_d, keys, **static, **kw_loop, epochs=maxiter))
            it = np.sum(np.isfinite(hist), axis=1)
            n_evals = it * nb
            converged = np.zeros(B, dtype=bool)
            messages = tuple(
                f"finished {int(n)} epochs of {nb} batches of {b}" if n == maxiter
                else f"stopped: the cost became non-finite in epoch {int(n) + 1}" for n in it)
        params = tuple(np.asarray(t) for t in _unravel_many(jnp.asarray(theta), sizes))
    return FitManyResult(
        params=params, lams=lam_arr, cost=np.asarray(value, np.float64),
        history=np.asarray(hist, np.float64), n_iter=np.asarray(it, np.int64),
        n_evals=np.asarray(n_evals, np.int64), converged=np.asarray(converged, bool),
        messages=messages, seconds=time.perf_counter() - t0, method=method, grad=grad,
    )


def _method_options(method: str, tol, learning_rate, batch_size, options) -> dict[str, Any]:
    """Check the method-specific arguments; return the static options of its compiled loop."""
    if method == "lbfgs":
        for name, v in (("learning_rate", learning_rate), ("batch_size", batch_size)):
            if v is not None:
                raise ValueError(f"{name} is only used by adam/sgd, not by method 'lbfgs'")
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, int | float)
                                or not tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {tol!r}")
        opts: dict[str, Any] = {"memory_size": 10, "max_linesearch_steps": 20,
                                "chunk_size": None}
        if options is not None:
            if not isinstance(options, dict) or set(options) - set(opts):
                raise ValueError(f"options for lbfgs take only {sorted(opts)}, got {options!r}")
            opts.update({k: _positive_int(v, f"options[{k!r}]") for k, v in options.items()})
        return {"tol": 1e-5 if tol is None else float(tol), **opts}
    if tol is not None or options is not None:
        raise ValueError(f"tol and options are only used by method 'lbfgs', not {method!r}")
    lr = DEFAULT_LEARNING_RATE[method] if learning_rate is None else learning_rate
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if batch_size is not None:
        batch_size = _positive_int(batch_size, "batch_size")
    return {"optimizer": _optimizer(method, float(lr)), "batch_size": batch_size}
