"""Mini-batch training streamed from MNIST IDX files: memory bounded by a chunk, not the data set.

:func:`fit_stream` reads the image and label files with :func:`jaxnn.datasets.iter_idx` one
chunk of ``chunk_size`` examples at a time, shuffles each chunk (seeded), and takes one jitted
optax step (adam or sgd) per mini-batch of ``batch_size`` examples. Every epoch re-reads the
files, so the 60,000 MNIST training images (188 MB as float32) never sit in memory at once:
the host holds one chunk (``chunk_size x n_0`` floats) and the device one mini-batch.

The objective is the full-data cost ``J = (1/m) sum_i loss_i + lam/(2m) sum ||W||^2`` with
``m`` the number of examples in the file (read from its header). Each mini-batch of ``b``
examples gives the unbiased estimate ``(1/b) sum_batch loss_i + lam/(2m) sum ||W||^2``, which
is the library's regularized cost on the batch with ``lam * b / m`` in place of ``lam``: the
penalty is not ``m / b`` times too strong, as it would be with ``lam`` itself.

:func:`evaluate_stream` computes the exact full-data cost and accuracy of a network on IDX
files the same way, one chunk at a time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxnn.checks import (
    COMPUTE_IN_FLOAT64,
    Params,
    as_params,
    check_choice,
    check_dtype,
    check_finite_params,
    check_flag,
    check_grad,
    check_label_range,
    check_lam,
    check_params_representable,
    check_representable,
    check_seed,
    check_step_fits,
    positive_int,
)
from jaxnn.defaults import ACTIVATION, GRAD, OUTPUT, STREAM_CHUNK
from jaxnn.files.idx import idx_count, iter_idx
from jaxnn.losses import data_loss, penalty
from jaxnn.model import logits, start_vector
from jaxnn.names import MINIBATCH_METHODS, OPTAX_ALTERNATIVE, Order, PathLike, counted
from jaxnn.precision import training_dtype, x64_when
from jaxnn.spec import NetSpec
from jaxnn.train.loops import minibatch_optimizer

__all__ = ["StreamResult", "evaluate_stream", "fit_stream", "idx_count"]

Array = jax.Array


@dataclass(frozen=True)
class StreamResult:
    """What :func:`fit_stream` returns.

    Attributes:
        params: the trained ``(Theta1, ..., ThetaL)``, numpy arrays in the training dtype.
        cost: mean mini-batch cost (regularized as described in the module) over the last
            epoch; each batch's cost is taken before its update.
        history: ``(epochs,)`` that mean for every epoch.
        batch_costs: ``(n_steps,)`` the cost of every mini-batch, before its update.
        n_steps: number of optimizer updates.
        n_examples: examples per epoch (``m``, from the file header).
        epochs: number of passes over the files (those that stayed finite, when diverged).
        seconds: wall-clock time of the whole run, reading included.
        diverged: a mini-batch cost or the weights became NaN or infinite (a learning rate too
            large for the data): the run stopped after that epoch, and ``params``, ``cost``,
            ``history`` and ``epochs`` are those of the last epoch that stayed finite (the
            initial parameters and a NaN cost if the first did not); ``batch_costs`` holds
            every mini-batch's cost, the diverging epoch's included.
        message: how the run ended, in words.
    """

    params: Params
    cost: float
    history: np.ndarray
    batch_costs: np.ndarray
    n_steps: int
    n_examples: int
    epochs: int
    seconds: float
    diverged: bool = False
    message: str = ""


def _optimizer(method: object, learning_rate: object) -> optax.GradientTransformation:
    """The optax optimizer of ``method``: adam/sgd with ``learning_rate``, or a given one."""
    if not isinstance(method, optax.GradientTransformation):
        check_choice(method, MINIBATCH_METHODS, "method", by="fit_stream",
                     alternative=OPTAX_ALTERNATIVE)
    return minibatch_optimizer(method, learning_rate)


# compiled once per network, optimizer (one object per method and learning rate:
# minibatch_optimizer), batch shape and dtype, for every call of fit_stream
@partial(jax.jit, static_argnames=("tx", "spec"), donate_argnums=(0, 1))
def _step(theta: Array, opt_state: Any, X: Array, y: Array, lam: Array, *,
          tx: optax.GradientTransformation, spec: NetSpec):
    """One optax update on a mini-batch ``X`` ``(b, n_0)``, labels ``y`` ``(b,)``; returns
    ``(theta, opt_state, J)`` with ``J`` the batch cost before the update."""
    Y = jax.nn.one_hot(y, spec.sizes[-1], dtype=theta.dtype)
    J, g = spec.value_and_grad(theta, X.astype(theta.dtype), Y, lam)
    updates, opt_state = tx.update(g, opt_state, theta)
    return optax.apply_updates(theta, updates), opt_state, J


def _check_chunk(X: np.ndarray, y: np.ndarray, n_in: int, K: int, images: PathLike,
                 labels: PathLike) -> None:
    if X.shape[1] != n_in:
        raise ValueError(
            f"{images} holds images of {X.shape[1]} pixels but the network's first Theta "
            f"expects {n_in} inputs; build the network with layer_sizes ({X.shape[1]}, ..., K)"
        )
    check_label_range(y, K, str(labels), hint=None)


def fit_stream(
    params: Sequence[ArrayLike],
    images: PathLike,
    labels: PathLike,
    lam: float = 0.0,
    *,
    method: Literal["adam", "sgd"] | optax.GradientTransformation | None = None,
    maxiter: int | None = None,
    learning_rate: float | optax.Schedule | None = None,
    batch_size: int = 256,
    chunk_size: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
    grad: Literal["backprop", "autodiff"] = GRAD,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    order: Order = "C",
    dtype: Any = None,
    **renamed: Any,
) -> StreamResult:
    """Train on IDX files (``train-images-idx3-ubyte[.gz]`` and its labels) by streaming them.

    Each epoch reads the files from the start with :func:`jaxnn.datasets.iter_idx` in chunks
    of ``chunk_size`` examples; each chunk is shuffled (``numpy.random.default_rng(seed)``,
    one permutation per chunk in reading order) when ``shuffle`` and cut into mini-batches of
    ``batch_size`` (the last mini-batch of the file may be smaller: one extra compilation).
    One jitted optax step per mini-batch, on the batch's cost with ``lam * b / m`` (see the
    module docstring), so the run minimizes the library's full-data cost with ``lam``.

    Args:
        params: initial ``(Theta1, ..., ThetaL)``; ``n_0`` must equal the images' pixel count.
        images, labels: the IDX files (gzip detected by content).
        lam: regularization strength of the full-data cost.
        method: ``"adam"`` (None, the default; learning rate 1e-3), ``"sgd"`` (0.1) or an
            optax ``GradientTransformation``, as in :func:`jaxnn.fit`.
        maxiter: epochs, passes over the files (``fit``'s word for adam/sgd epochs; None,
            the default: 1).
        learning_rate: a float or an optax schedule (adam/sgd).
        batch_size: examples per update.
        chunk_size: examples read (and shuffled) at once, at least ``batch_size`` (a
            mini-batch is cut from one chunk); default the largest multiple of ``batch_size``
            not above 10,000. Host memory is about ``chunk_size * n_0`` floats.
        grad: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.grad``).
        order: pixel order of the flattened images, as in ``load_idx`` (``"F"`` for the
            course's column-major layout).
        dtype: ``None`` follows the params (float32 unless JAX's x64 mode is on and they are
            float64); ``"float32"``; or ``"float64"``, for which x64 is on for the duration of
            the call only, as in :func:`jaxnn.fit`.
        renamed: the names of earlier versions, ``optimizer=`` (now ``method``) and
            ``epochs=`` (now ``maxiter``), still accepted with a ``DeprecationWarning``.

    Returns:
        A :class:`StreamResult`.
    """
    t0 = time.perf_counter()
    method, maxiter = _renamed(renamed, method, maxiter)
    params = as_params(params)
    spec = NetSpec((params[0].shape[1] - 1, *(t.shape[0] for t in params)), activation,
                   output, check_grad(grad))
    lam = float(check_lam(lam))
    epochs = positive_int(maxiter, "maxiter")
    batch_size = positive_int(batch_size, "batch_size")
    if chunk_size is None:
        chunk_size = max(1, STREAM_CHUNK // batch_size) * batch_size
    chunk_size = positive_int(chunk_size, "chunk_size")
    if chunk_size < batch_size:
        raise ValueError(f"chunk_size={chunk_size} is smaller than batch_size={batch_size}: a "
                         "mini-batch is cut from one chunk; give a chunk_size of at least "
                         "batch_size, or leave it out")
    rng = np.random.default_rng(check_seed(seed, numpy=True))
    shuffle = check_flag(shuffle, "shuffle")
    tx = _optimizer(method, learning_rate)
    want64 = check_dtype(dtype)
    m = idx_count(images, labels)
    if m == 0:
        raise ValueError(f"{images} holds no examples")
    with x64_when(want64):  # float64 only when asked for, for this call only
        dtype = training_dtype(want64, jax.dtypes.canonicalize_dtype(params[0].dtype))
        check_representable(lam, "lam", dtype)
        check_step_fits(learning_rate, dtype)
        theta = jnp.array(start_vector(params, dtype))
        n_in, K = spec.sizes[0], spec.sizes[-1]
        step = partial(_step, tx=tx, spec=spec)
        opt_state = tx.init(theta)
        host_dtype = np.float32 if dtype == jnp.float32 else np.float64
        history, batch_costs = [], []
        kept, diverged = params, False  # the parameters after the last finite epoch
        for _ in range(epochs):
            epoch_costs = []
            for Xc, yc in iter_idx(images, labels, batch_size=chunk_size, order=order,
                                   dtype=host_dtype):
                _check_chunk(Xc, yc, n_in, K, images, labels)
                perm = rng.permutation(len(yc)) if shuffle else np.arange(len(yc))
                for s in range(0, len(yc), batch_size):
                    idx = perm[s:s + batch_size]
                    lam_b = jnp.asarray(lam * len(idx) / m, dtype)
                    theta, opt_state, J = step(theta, opt_state, Xc[idx], yc[idx].astype(np.int32),
                                               lam_b)
                    epoch_costs.append(J)
                jax.block_until_ready(theta)  # bound the work queued ahead of the device
            costs = np.asarray(jnp.stack(epoch_costs), dtype=np.float64)
            batch_costs.append(costs)
            theta_host = np.asarray(theta)
            if not (np.isfinite(costs).all() and np.isfinite(theta_host).all()):
                diverged = True
                break
            history.append(float(costs.mean()))
            kept = spec.unravel(theta_host)
        batch_costs = np.concatenate(batch_costs)
        done = len(history)
        message = (f"diverged in epoch {done + 1}: a mini-batch cost or the weights became NaN "
                   "or infinite; the parameters are "
                   + (f"those after epoch {done}" if done else "the initial ones")
                   + "; try a smaller learning_rate" if diverged
                   else f"trained {counted(done, 'epoch')} of {counted(m, 'example')}")
        return StreamResult(
            params=tuple(np.asarray(t, dtype) for t in kept),
            cost=history[-1] if done else float("nan"),
            history=np.asarray(history),
            batch_costs=batch_costs,
            n_steps=int(batch_costs.size),
            n_examples=m,
            epochs=done,
            seconds=time.perf_counter() - t0,
            diverged=diverged,
            message=message,
        )


def _renamed(renamed: dict[str, Any], method: Any, maxiter: Any) -> tuple[Any, Any]:
    """Accept the earlier names ``optimizer=`` and ``epochs=``, with a DeprecationWarning;
    the defaults ("adam", one epoch) for what neither name gives."""
    unknown = set(renamed) - {"optimizer", "epochs"}
    if unknown:
        raise TypeError(f"fit_stream() got unexpected keyword arguments {sorted(unknown)}")
    given = {"method": method, "maxiter": maxiter}
    for old, new in (("optimizer", "method"), ("epochs", "maxiter")):
        if old in renamed:
            if given[new] is not None:
                raise TypeError(f"fit_stream() got both {new}= and {old}=, its earlier name; "
                                f"give {new}= only")
            warnings.warn(f"fit_stream({old}=...) is now {new}=...", DeprecationWarning,
                          stacklevel=3)
            given[new] = renamed[old]
    return ("adam" if given["method"] is None else given["method"],
            1 if given["maxiter"] is None else given["maxiter"])


@partial(jax.jit, static_argnames=("activation", "output"))
def _batch_sums(params: Params, X: Array, y: Array, activation: str, output: str
                ) -> tuple[Array, Array]:
    """Summed data loss and number correct on one batch (``b`` times the mean loss)."""
    dtype = params[0].dtype
    z = logits(params, X.astype(dtype), activation)
    Y = jax.nn.one_hot(y, params[-1].shape[0], dtype=dtype)
    return data_loss(z, Y, output) * X.shape[0], jnp.sum(jnp.argmax(z, axis=1) == y)


def evaluate_stream(
    params: Sequence[ArrayLike],
    images: PathLike,
    labels: PathLike,
    lam: float = 0.0,
    *,
    chunk_size: int = STREAM_CHUNK,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    order: Order = "C",
) -> dict[str, float]:
    """Full-data cost and accuracy of ``params`` on IDX files, read ``chunk_size`` at a time.

    Returns ``{"cost": J, "accuracy": fraction correct, "m": number of examples}``, where
    ``J`` equals :func:`jaxnn.cost` on the whole file (with ``lam``) up to rounding."""
    params = as_params(params)
    NetSpec((params[0].shape[1] - 1, *(t.shape[0] for t in params)), activation, output)
    lam = float(check_lam(lam))
    chunk_size = positive_int(chunk_size, "chunk_size")
    dtype = jax.dtypes.canonicalize_dtype(params[0].dtype)
    check_representable(lam, "lam", dtype, COMPUTE_IN_FLOAT64)
    check_finite_params(params)
    check_params_representable(params, dtype, COMPUTE_IN_FLOAT64)
    params = tuple(jnp.asarray(t, dtype) for t in params)
    host_dtype = np.float32 if dtype == jnp.float32 else np.float64
    n_in, K = params[0].shape[1] - 1, params[-1].shape[0]
    total, correct, m = 0.0, 0, 0
    for Xc, yc in iter_idx(images, labels, batch_size=chunk_size, order=order, dtype=host_dtype):
        _check_chunk(Xc, yc, n_in, K, images, labels)
        s, c = _batch_sums(params, Xc, yc.astype(np.int32), activation, output)
        total, correct, m = total + float(s), correct + int(c), m + len(yc)
    if m == 0:
        raise ValueError(f"{images} holds no examples")
    J = total / m + float(penalty(params, lam, m))
    return {"cost": J, "accuracy": correct / m, "m": m}
