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
* ``"lbfgs"``: :func:`lbfgs_many_run`, an L-BFGS written for ``vmap`` (the comment above
  :class:`LbfgsState` says why ``fit``'s optax loop is not simply vmapped): member ``i`` equals
  the same loop run on network ``i`` alone, and reaches the minima ``fit``'s L-BFGS methods
  reach.

Under ``vmap`` a loop runs until its slowest member stops; members that stopped earlier are held
fixed, so each member's iteration count and result are its own. :func:`evaluate_many`,
:func:`ensemble_proba` and :func:`ensemble_predict` evaluate and combine such batches. With
``fit_many(..., devices=N)`` the *networks* are split across ``N`` devices (a ``Mesh`` axis
``"networks"``), the data replicated: ``B`` must be a multiple of ``N``.

**One network, many devices (data parallelism).** :func:`jaxnn.fit` takes ``devices=``: the
examples (rows of ``X`` and ``Y``) are split across a ``Mesh`` axis ``"batch"`` and the
parameters replicated, and every compiled function runs SPMD: XLA computes each device's
partial sums and adds them with an all-reduce. :func:`data_mesh`, :func:`shard_examples` and
:func:`replicate` place arrays the same way for users who call :func:`jaxnn.cost`,
:func:`jaxnn.backprop` or their own jitted functions on sharded inputs: JAX's ``jit`` follows the
inputs' shardings, so ``backprop(params, Xs, ys)`` with ``Xs, ys = shard_examples(X, y, 8)``
runs on 8 devices and returns the gradients that one device computes, to rounding. For several
processes (hosts), see ``docs/multihost.md`` and :func:`shard_local_examples`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike, DTypeLike

from jaxnn._train_setup import check_dtype as _want64
from jaxnn._train_setup import optimizer as _optimizer
from jaxnn._train_setup import positive_int as _positive_int
from jaxnn._validation import Params
from jaxnn.activations import check_output, get_activation
from jaxnn.losses import data_loss, penalty, prepare_problem, targets
from jaxnn.model import _check_sizes, init_params, logits, probabilities, ravel_params
from jaxnn.model import unravel_params as _unravel
from jaxnn.precision import x64, x64_enabled
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
Devices = int | Sequence[jax.Device] | Mesh

MANY_METHODS = ("lbfgs", "adam", "sgd")
CPU_CHUNK = 16  # networks evaluated together on CPU (see lbfgs_many_run)
DEFAULT_LEARNING_RATE = {"adam": 1e-3, "sgd": 0.1}
GRADS = ("backprop", "autodiff")
BATCH_AXIS = "batch"
NETWORKS_AXIS = "networks"


# --- batches of networks ------------------------------------------------------------------------


def init_many(
    key: int | Array,
    n: int,
    layer_sizes: Sequence[int],
    epsilon: float = 0.12,
    dtype: DTypeLike | None = None,
) -> Params:
    """``n`` networks initialized as by :func:`jaxnn.init_params`, stacked on a leading axis.

    Member ``i`` is ``init_params(jax.random.split(key, n)[i], layer_sizes, epsilon, dtype)``
    (``key``: a JAX PRNG key or an int seed). Returns ``Theta_l`` of shape
    ``(n, n_{l+1}, 1 + n_l)``."""
    n = _positive_int(n, "n")
    sizes = _check_sizes(layer_sizes)
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        key = jax.random.key(int(key))
    keys = jax.random.split(key, n)
    if n <= 32:  # a few calls reuse init_params's compiled pieces; compiling vmap costs seconds
        members = [init_params(k, sizes, epsilon, dtype) for k in keys]
        return tuple(jnp.stack(layer) for layer in zip(*members, strict=True))
    init_params(keys[0], sizes, epsilon, dtype)  # argument checks, with clear errors
    return _init_many(keys, sizes, float(epsilon), jax.dtypes.canonicalize_dtype(dtype or float))


@partial(jax.jit, static_argnames=("sizes", "epsilon", "dtype"))
def _init_many(keys: Array, sizes: tuple[int, ...], epsilon: float, dtype) -> Params:
    """The same values as a loop of init_params over ``keys`` (vmap does not change them)."""
    return jax.vmap(lambda k: init_params(k, sizes, epsilon, dtype))(keys)


def member(params_batch: Sequence[ArrayLike], i: int) -> Params:
    """Network ``i`` of a batch: ``tuple(Theta[i] for Theta in params_batch)``."""
    return tuple(jnp.asarray(t)[i] if not isinstance(t, np.ndarray) else t[i]
                 for t in params_batch)


def _batch_size(params_batch: object, name: str = "params_batch") -> int:
    """Check that ``params_batch`` is a sequence of 3-D arrays with one common leading axis."""
    if isinstance(params_batch, dict) or not isinstance(params_batch, Sequence) \
            or isinstance(params_batch, str) or len(params_batch) == 0:
        raise ValueError(
            f"{name} must be a tuple of arrays (Theta1, Theta2, ...) each with a leading batch "
            f"axis, e.g. from jaxnn.parallel.init_many; got {type(params_batch).__name__}"
        )
    shapes = [tuple(np.shape(t)) for t in params_batch]
    for i, s in enumerate(shapes):
        if len(s) != 3:
            raise ValueError(
                f"{name}[{i}] (Theta{i + 1}) must be 3-D (B, n_out, 1 + n_in), a batch of "
                f"networks, got shape {s}; for one network use jaxnn.fit"
            )
    B = {s[0] for s in shapes}
    if len(B) != 1:
        raise ValueError(f"{name} has different batch sizes {[s[0] for s in shapes]} on its "
                         "Thetas; every Theta needs the same leading axis B")
    B = B.pop()
    if B < 1:
        raise ValueError(f"{name} holds no networks (B = 0)")
    return B


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


# --- an L-BFGS written for vmap -----------------------------------------------------------------
#
# optax's L-BFGS (what ``fit(method="lbfgs")`` runs) takes its steps with a zoom line search
# whose ``lax.cond`` between "search an interval" and "zoom into it" evaluates the network in
# *both* branches once the predicate is batched, and whose inner ``while_loop`` runs until the
# slowest member's search ends: under ``vmap`` it costs 2-4 gradient evaluations per iteration
# instead of about one. The loop below is L-BFGS (two-loop recursion, ``memory_size`` pairs,
# ``H0 = (s'y / y'y) I``) whose line search is a *state machine without branches*: every pass
# of the one ``while_loop`` evaluates each network once, at its current trial step ``t`` along
# the direction ``d``, and then
#
# * accepts ``t`` if it satisfies the weak Wolfe conditions, sufficient decrease
#   ``f(t) <= f(0) + c1 t f'(0)`` and curvature ``f'(t) >= c2 f'(0)`` (``c1 = 1e-4``,
#   ``c2 = 0.9``): an iteration is done, the pair ``(s, y)`` (``s'y > 0`` by the curvature
#   condition) enters the memory, the next trial is ``t = 1`` along the new direction;
# * if the decrease fails, makes ``t`` the upper end of the bracket and tries a smaller step
#   (the minimizer of the quadratic through ``f(0), f'(0), f(t)``, kept within
#   ``[0.1 t, 0.5 t]``, while no lower end is known; bisection after);
# * if only the curvature fails (the step was too short), makes ``t`` the lower end and tries
#   ``2 t`` (or bisects a known bracket);
# * after ``max_linesearch_steps`` trials it accepts the best lower end (sufficient decrease
#   only), or stops the network as stalled when there is none.
#
# No network waits for another's line search, and no evaluation is thrown away.

C1, C2 = 1e-4, 0.9
# why a network's L-BFGS run stopped
RUNNING, CONVERGED, STALLED, NONFINITE = 0, 1, 2, 3


class LbfgsState(NamedTuple):
    """State of :func:`lbfgs_many_run` for one network; with a leading axis ``B`` for a batch.

    ``history`` ``(maxiter,)`` holds the cost after each iteration, NaN where none ran.
    ``S``, ``Yd`` ``(memory_size, n)`` hold the last steps ``s`` and gradient changes ``y``,
    oldest first (a new pair shifts them up: static slices, no gather or scatter, which XLA's
    CPU backend runs element by element), ``rho = 1 / s'y`` (0 for an empty slot). The line
    search's bracket is ``[t_lo, t_hi]`` with the cost and gradient at ``t_lo``."""

    theta: Array
    value: Array
    grad: Array
    direction: Array
    slope: Array  # grad . direction at theta (< 0)
    step: Array  # next trial step along direction
    t_lo: Array
    f_lo: Array
    g_lo: Array
    t_hi: Array
    S: Array
    Yd: Array
    rho: Array
    it: Array
    n_evals: Array
    ls_steps: Array  # trials since the last accepted step
    status: Array
    history: Array


def _dot(a: Array, b: Array) -> Array:
    """``a . b`` for vectors as a fused multiply-and-sum: under ``vmap`` ``jnp.vdot`` becomes a
    batched matrix product, which XLA's CPU backend runs as many tiny products (slow)."""
    return jnp.sum(a * b)


def _first_step(g: Array) -> Array:
    """With no curvature pairs, the first trial step is ``min(1, 1/||g||)`` along ``-g``."""
    norm = jnp.sqrt(_dot(g, g))
    return jnp.minimum(1.0, 1.0 / jnp.where(norm > 0, norm, 1.0)).astype(g.dtype)


def _two_loop(g: Array, S: Array, Yd: Array, rho: Array) -> Array:
    """``-H g`` by the L-BFGS two-loop recursion over the stored pairs (oldest first, newest
    last); empty slots have ``rho = 0`` and drop out."""

    def newest_first(q, pair):
        s, y, r = pair
        a = r * _dot(s, q)
        return q - a * y, a

    q, alphas = jax.lax.scan(newest_first, g, (S, Yd, rho), reverse=True)
    sy = jnp.where(rho[-1] > 0, 1 / jnp.where(rho[-1] > 0, rho[-1], 1), 0)
    yy = _dot(Yd[-1], Yd[-1])
    gamma = jnp.where(sy > 0, sy / jnp.where(yy > 0, yy, 1), 1)

    def oldest_first(r, pair):
        s, y, rh, a = pair
        return r + s * (a - rh * _dot(y, r)), None

    r, _ = jax.lax.scan(oldest_first, gamma * q, (S, Yd, rho, alphas))
    return -r


def _status(value: Array, g: Array, tol: float) -> Array:
    finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(g))
    return jnp.where(~finite, NONFINITE,
                     jnp.where(jnp.max(jnp.abs(g)) <= tol, CONVERGED, RUNNING)
                     ).astype(jnp.int32)


def _lbfgs_start(theta: Array, value: Array, g: Array, *, maxiter: int, tol: float,
                 memory_size: int) -> LbfgsState:
    n, dt = theta.shape[0], theta.dtype
    zero = jnp.zeros((), dt)
    return LbfgsState(
        theta=theta, value=value, grad=g, direction=-g, slope=-_dot(g, g),
        step=_first_step(g), t_lo=zero, f_lo=value, g_lo=g, t_hi=jnp.full((), jnp.inf, dt),
        S=jnp.zeros((memory_size, n), dt), Yd=jnp.zeros((memory_size, n), dt),
        rho=jnp.zeros((memory_size,), dt), it=jnp.asarray(0, jnp.int32),
        n_evals=jnp.asarray(1, jnp.int32), ls_steps=jnp.asarray(0, jnp.int32),
        status=_status(value, g, tol),
        history=jnp.full((maxiter,), jnp.nan, dt))


def _lbfgs_advance(c: LbfgsState, f: Array, g: Array, active: Array, *, tol: float,
                   max_linesearch_steps: int) -> LbfgsState:
    """One pass for one network: ``(f, g)`` were evaluated at ``theta + step * direction``.
    An inactive network (stopped) comes back unchanged. Each memory buffer is read and
    written once: the pass is bound by memory traffic as much as by arithmetic."""
    dt = c.theta.dtype
    t = c.step
    finite = jnp.isfinite(f) & jnp.all(jnp.isfinite(g))
    decrease = finite & (f <= c.value + C1 * t * c.slope)
    curvature = _dot(g, c.direction) >= C2 * c.slope
    # the bracket after this trial, and the next trial inside it
    lower = active & decrease & ~curvature
    t_lo = jnp.where(lower, t, c.t_lo)
    f_lo = jnp.where(lower, f, c.f_lo)
    g_lo = jnp.where(lower, g, c.g_lo)
    t_hi = jnp.where(decrease, c.t_hi, t)
    excess = f - c.value - c.slope * t
    t_quad = -c.slope * t * t / (2 * jnp.where(excess > 0, excess, 1))
    shrink = jnp.where(finite & (excess > 0), jnp.clip(t_quad, 0.1 * t, 0.5 * t), 0.1 * t)
    t_next = jnp.where(jnp.isinf(t_hi), 2 * t_lo,
                       jnp.where(t_lo > 0, 0.5 * (t_lo + t_hi), shrink))
    ls_steps = c.ls_steps + 1
    # accept this trial (both Wolfe conditions), or the lower end when out of trials
    out_of_trials = ls_steps >= max_linesearch_steps
    accept_now = decrease & curvature
    accepted = active & (accept_now | (out_of_trials & (t_lo > 0)))
    t_acc = jnp.where(accept_now, t, t_lo)
    f_acc = jnp.where(accept_now, f, f_lo)
    g_acc = jnp.where(accept_now, g, g_lo)
    # the iteration: store the pair (s'y > 0 unless rounding spoils it), new direction
    s, yv = t_acc * c.direction, g_acc - c.grad
    sy, yy = _dot(s, yv), _dot(yv, yv)
    write = accepted & (sy > jnp.finfo(dt).eps * yy)
    S = jnp.where(write, jnp.concatenate([c.S[1:], s[None]]), c.S)
    Yd = jnp.where(write, jnp.concatenate([c.Yd[1:], yv[None]]), c.Yd)
    rho = jnp.where(write, jnp.concatenate([c.rho[1:], (1 / jnp.where(write, sy, 1))[None]]),
                    c.rho)
    d = _two_loop(g_acc, S, Yd, rho)
    slope = _dot(g_acc, d)
    reset = ~(slope < 0)  # not a descent direction (rounding): restart from -g, empty memory
    d = jnp.where(reset, -g_acc, d)
    slope = jnp.where(reset, -_dot(g_acc, g_acc), slope)
    rho = jnp.where(accepted & reset, 0, rho)  # rho = 0 empties a slot; S, Yd need no clearing
    step_new = jnp.where(jnp.all(rho == 0), _first_step(g_acc), jnp.ones((), dt))
    status = jnp.where(accepted, _status(f_acc, g_acc, tol),
                       jnp.where(active & out_of_trials, STALLED, c.status))

    def pick(a, b, when=accepted):
        return jnp.where(when, a, b)

    inf = jnp.full((), jnp.inf, dt)
    return LbfgsState(
        theta=pick(c.theta + t_acc * c.direction, c.theta), value=pick(f_acc, c.value),
        grad=pick(g_acc, c.grad), direction=pick(d, c.direction), slope=pick(slope, c.slope),
        step=pick(step_new, pick(t_next, c.step, active)).astype(dt),
        t_lo=pick(jnp.zeros((), dt), t_lo), f_lo=f_lo, g_lo=g_lo,
        t_hi=pick(inf, pick(t_hi, c.t_hi, active)), S=S, Yd=Yd, rho=rho,
        it=c.it + accepted.astype(jnp.int32), n_evals=c.n_evals + active.astype(jnp.int32),
        ls_steps=pick(0, pick(ls_steps, c.ls_steps, active)).astype(jnp.int32),
        status=status.astype(jnp.int32),
        history=jnp.where(accepted & (jnp.arange(c.history.shape[0]) == c.it), f_acc,
                          c.history))


def lbfgs_many_run(
    theta0: Array,
    X: Array,
    Y: Array,
    lams: Array,
    *,
    sizes: tuple[int, ...],
    activation: str = "sigmoid",
    output: str = "sigmoid",
    grad: str = "backprop",
    maxiter: int = 100,
    tol: float = 1e-5,
    memory_size: int = 10,
    max_linesearch_steps: int = 20,
    chunk_size: int | None = None,
) -> LbfgsState:
    """L-BFGS for ``B`` networks at once, one compiled ``while_loop``; pure and jittable.

    ``theta0`` ``(B, n)`` (Octave order for ``sizes``), ``X`` ``(m, n_0)``, ``Y`` ``(m, K)``,
    ``lams`` ``(B,)``. Each pass evaluates every running network once at its trial point
    (:func:`jaxnn.train.value_and_grad_flat`; in groups of ``chunk_size`` networks, which keeps
    the hidden activations of a group in cache on CPU; None: all at once) and accepts its step
    or moves it within the line search's bracket (see the comment above :class:`LbfgsState`).
    A network stops after ``maxiter`` iterations, when ``max|g| <= tol``, when its line search
    finds no lower cost in ``max_linesearch_steps`` trials (stalled) or on a non-finite cost;
    it is then held fixed while the others go on. With ``B = 1`` this is the single-network
    loop: member ``i`` of a batch computes what ``B = 1`` computes for it, to rounding.
    Returns the final :class:`LbfgsState`, batched (``history`` ``(B, maxiter)``, NaN-padded)."""
    B = theta0.shape[0]
    vg = partial(value_and_grad_flat, sizes=sizes, activation=activation, output=output,
                 grad=grad)

    def evaluate(thetas, lams):
        one = lambda a: vg(a[0], X, Y, a[1])  # noqa: E731
        if chunk_size is None or chunk_size >= B:
            return jax.vmap(one)((thetas, lams))
        return jax.lax.map(one, (thetas, lams), batch_size=chunk_size)

    f0, g0 = evaluate(theta0, lams)
    state = jax.vmap(partial(_lbfgs_start, maxiter=maxiter, tol=tol,
                             memory_size=memory_size))(theta0, f0, g0)
    advance = jax.vmap(partial(_lbfgs_advance, tol=tol,
                               max_linesearch_steps=max_linesearch_steps))

    def running(c: LbfgsState) -> Array:
        return (c.status == RUNNING) & (c.it < maxiter)

    def body(c: LbfgsState) -> LbfgsState:
        f, g = evaluate(c.theta + c.step[:, None] * c.direction, lams)
        return advance(c, f, g, running(c))

    return jax.lax.while_loop(lambda c: jnp.any(running(c)), body, state)


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
    B = _batch_size(params_batch)
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


# --- evaluating and combining batches -----------------------------------------------------------


@partial(jax.jit, static_argnames=("activation", "output"))
def _evaluate_many(params_batch, X, Y, y, lam, activation, output):
    def one(params):
        z = logits(params, X, activation)
        J = data_loss(z, Y, output) + penalty(params, lam, X.shape[0])
        return J, jnp.mean((jnp.argmax(z, axis=1) == y).astype(z.dtype))

    return jax.vmap(one)(params_batch)


def evaluate_many(
    params_batch: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: float = 0.0,
    *,
    activation: str = "sigmoid",
    output: str = "sigmoid",
) -> dict[str, np.ndarray]:
    """Cost and accuracy of every network of a batch on ``(X, y)``.

    ``y``: integer labels ``(m,)``. Returns ``{"cost": (B,), "accuracy": (B,)}`` where
    ``cost[i] == jaxnn.cost(member i, X, y, lam)`` (``lam=0`` by default: the data loss alone,
    the usual figure for training and validation curves)."""
    B = _batch_size(params_batch)
    del B
    member0 = tuple(t[0] for t in params_batch)
    p0, Xc, yc, lam, dt = prepare_problem(member0, X, y, lam, activation, output)
    if np.ndim(yc) != 1:
        raise ValueError("evaluate_many needs integer labels y of shape (m,), not a target "
                         "matrix")
    K = p0[-1].shape[0]
    pb = tuple(jnp.asarray(t, dt) for t in params_batch)
    yd = jnp.asarray(yc)
    J, acc = _evaluate_many(pb, jnp.asarray(Xc, dt), targets(yd, K, dt), yd,
                            jnp.asarray(lam, dt), activation, output)
    return {"cost": np.asarray(J, np.float64), "accuracy": np.asarray(acc, np.float64)}


@partial(jax.jit, static_argnames=("activation", "output"))
def _ensemble_proba(params_batch, X, weights, activation, output):
    probs = jax.vmap(lambda p: probabilities(logits(p, X, activation), output))(params_batch)
    return jnp.tensordot(weights, probs, axes=1)


def ensemble_proba(
    params_batch: Sequence[ArrayLike],
    X: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    activation: str = "sigmoid",
    output: str = "sigmoid",
) -> Array:
    """Averaged class probabilities ``(m, K)`` of a batch of networks: ``sum_i w_i h_i(X)``
    with ``h_i = jaxnn.forward(member i, X)`` and weights ``w`` ``(B,)`` (default uniform,
    normalized to sum 1)."""
    B = _batch_size(params_batch)
    get_activation(activation), check_output(output)
    p0, Xc, dt = _prepare_member0(params_batch, X)
    if weights is None:
        w = np.full(B, 1.0 / B)
    else:
        w = np.asarray(weights, np.float64)
        if w.shape != (B,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {B} finite numbers >= 0 with a positive sum, "
                             f"got {weights!r}")
        w = w / w.sum()
    pb = tuple(jnp.asarray(t, dt) for t in params_batch)
    return _ensemble_proba(pb, jnp.asarray(Xc, dt), jnp.asarray(w, dt), activation, output)


def ensemble_predict(params_batch: Sequence[ArrayLike], X: ArrayLike, **kw: Any) -> Array:
    """Labels ``(m,)`` of the ensemble: argmax of :func:`ensemble_proba`."""
    return jnp.argmax(ensemble_proba(params_batch, X, **kw), axis=1)


def _prepare_member0(params_batch, X):
    from jaxnn.model import prepare

    member0 = tuple(t[0] for t in params_batch)
    return prepare(member0, X)


# --- data parallelism: meshes and sharded arrays ------------------------------------------------


def data_mesh(devices: Devices | None = None, axis_name: str = BATCH_AXIS) -> Mesh:
    """A 1-D ``Mesh`` with axis ``axis_name`` over ``devices`` (the helpers here split arrays
    over the mesh's one axis, whatever its name).

    ``devices``: None (all of ``jax.devices()``, every process's in a multi-process run), a
    count ``N`` (the first ``N``), a list of ``jax.Device``, or a 1-D ``Mesh`` (returned as is
    as is)."""
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(f"devices: the mesh must be 1-D, got axes {devices.axis_names}")
        return devices
    available = jax.devices()
    if devices is None:
        devs = available
    elif isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices} but {len(available)} JAX devices are available"
                             " (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                             "before JAX starts makes N)")
        devs = available[: int(devices)]
    elif isinstance(devices, Sequence) and devices and all(isinstance(d, jax.Device)
                                                           for d in devices):
        devs = list(devices)
    else:
        raise ValueError(f"devices must be a positive count, a list of jax devices or a Mesh, "
                         f"got {devices!r}")
    return Mesh(np.array(devs), (axis_name,))


def shard_examples(
    X: ArrayLike,
    y: ArrayLike | None = None,
    devices: Devices | None = None,
    *,
    drop_remainder: bool = False,
) -> tuple[Array, Array | None]:
    """Place ``X`` ``(m, n)`` and ``y`` (``(m,)`` labels or ``(m, K)`` targets) on the devices,
    split by rows over the mesh axis ``"batch"`` (``NamedSharding(mesh, P("batch"))``; a
    ``Mesh`` passed as ``devices`` keeps its own axis name).

    Every device holds ``m / N`` consecutive examples. ``m`` must be a multiple of the number
    of devices ``N`` (an uneven split would need padding, which changes the mean in the cost);
    with ``drop_remainder=True`` the last ``m mod N`` examples are dropped instead. Pass the
    results to :func:`jaxnn.cost`, :func:`jaxnn.backprop` or any jitted function: the
    computation runs on all ``N`` devices and reduces across them.

    Arrays keep their dtype (a float64 numpy ``X`` stays float64 only under x64)."""
    mesh = data_mesh(devices, BATCH_AXIS)
    X = X if isinstance(X, jax.Array) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, n), got shape {tuple(X.shape)}")
    m, N = X.shape[0], mesh.size
    if y is not None:
        y = y if isinstance(y, jax.Array) else np.asarray(y)
        if y.ndim not in (1, 2) or y.shape[0] != m:
            raise ValueError(f"y must have one row per row of X ({m}), got shape "
                             f"{tuple(y.shape)}")
    if m % N:
        if not drop_remainder:
            raise ValueError(
                f"X has {m} rows, which {N} devices cannot share evenly; pass "
                f"drop_remainder=True to drop the last {m % N}, or use a device count that "
                f"divides {m}")
        keep = m - m % N
        if keep == 0:
            raise ValueError(f"X has {m} rows: fewer than the {N} devices")
        X, y = X[:keep], (y[:keep] if y is not None else None)
    rows = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    Xs = jax.device_put(X, rows)
    ys = jax.device_put(y, rows) if y is not None else None
    return Xs, ys


def replicate(tree: Any, devices: Devices | None = None) -> Any:
    """Put every array of ``tree`` (e.g. params) on all devices of the mesh, whole
    (``NamedSharding(mesh, P())``)."""
    mesh = data_mesh(devices, BATCH_AXIS)
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_local_examples(
    X_local: ArrayLike,
    y_local: ArrayLike | None = None,
    devices: Devices | None = None,
) -> tuple[Array, Array | None]:
    """Multi-process form of :func:`shard_examples`: each process passes only *its own*
    examples and gets the global arrays (rows of process 0 first, then process 1, ...).

    Uses ``jax.make_array_from_process_local_data``; every process must pass the same number
    of rows, a multiple of its number of local devices. In a single process it is
    :func:`shard_examples`."""
    mesh = data_mesh(devices, BATCH_AXIS)
    rows = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    X_local = np.asarray(X_local)
    n_local = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    if X_local.ndim != 2 or X_local.shape[0] % max(n_local, 1):
        raise ValueError(f"X_local must be 2-D with a multiple of {n_local} rows (this "
                         f"process's devices), got shape {X_local.shape}")
    Xs = jax.make_array_from_process_local_data(rows, X_local)
    ys = None
    if y_local is not None:
        y_local = np.asarray(y_local)
        if y_local.shape[0] != X_local.shape[0]:
            raise ValueError(f"y_local must have {X_local.shape[0]} rows, got {y_local.shape}")
        ys = jax.make_array_from_process_local_data(rows, y_local)
    return Xs, ys
