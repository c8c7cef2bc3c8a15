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

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxnn._validation import Params, as_params, check_lam
from jaxnn.activations import check_output, get_activation
from jaxnn.backprop import backprop_arrays
from jaxnn.datasets import iter_idx
from jaxnn.losses import data_loss, penalty, regularized_cost
from jaxnn.model import logits

__all__ = ["StreamResult", "evaluate_stream", "fit_stream", "idx_count"]

Array = jax.Array
PathLike = str | os.PathLike[str]

GRADS = ("backprop", "autodiff")
OPTIMIZERS = ("adam", "sgd")
DEFAULT_LEARNING_RATE = {"adam": 1e-3, "sgd": 0.1}


@dataclass(frozen=True)
class StreamResult:
    """What :func:`fit_stream` returns.

    Attributes:
        params: the trained ``(Theta1, ..., ThetaL)``.
        cost: mean mini-batch cost (regularized as described in the module) over the last
            epoch; each batch's cost is taken before its update.
        history: ``(epochs,)`` that mean for every epoch.
        batch_costs: ``(n_steps,)`` the cost of every mini-batch, before its update.
        n_steps: number of optimizer updates.
        n_examples: examples per epoch (``m``, from the file header).
        epochs: number of passes over the files.
        seconds: wall-clock time of the whole run, reading included.
    """

    params: Params
    cost: float
    history: np.ndarray
    batch_costs: np.ndarray
    n_steps: int
    n_examples: int
    epochs: int
    seconds: float


def idx_count(images: PathLike, labels: PathLike) -> int:
    """Number of examples in a pair of IDX files, from their headers (validated, nothing else
    read)."""
    from jaxnn.idx import _open_idx_pair  # the header reader behind load_idx/iter_idx

    img, lab = _open_idx_pair(images, labels)
    img.close()
    lab.close()
    return int(img.count)


def _make_tx(optimizer: str | optax.GradientTransformation, learning_rate: float | None
             ) -> optax.GradientTransformation:
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate is only used with optimizer='adam' or 'sgd'; an optax "
                "GradientTransformation carries its own"
            )
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer={optimizer!r} is not supported; choose one of {list(OPTIMIZERS)} or "
            "pass an optax.GradientTransformation"
        )
    lr = DEFAULT_LEARNING_RATE[optimizer] if learning_rate is None else learning_rate
    if not (isinstance(lr, int | float) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    return optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _value_and_grad(params: Params, X: Array, Y: Array, lam: Array, activation: str,
                    output: str, grad: str) -> tuple[Array, Params]:
    if grad == "backprop":
        return backprop_arrays(params, X, Y, lam, activation, output)
    return jax.value_and_grad(regularized_cost)(params, X, Y, lam, activation, output)


def _step(params: Params, opt_state: Any, X: Array, y: Array, lam: Array, *,
          tx: optax.GradientTransformation, activation: str, output: str, grad: str):
    """One optax update on a mini-batch ``X`` ``(b, n_0)``, labels ``y`` ``(b,)``; returns
    ``(params, opt_state, J)`` with ``J`` the batch cost before the update."""
    dtype = params[0].dtype
    Y = jax.nn.one_hot(y, params[-1].shape[0], dtype=dtype)
    J, g = _value_and_grad(params, X.astype(dtype), Y, lam, activation, output, grad)
    updates, opt_state = tx.update(g, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, J


def _check_chunk(X: np.ndarray, y: np.ndarray, n_in: int, K: int, images: PathLike,
                 labels: PathLike) -> None:
    if X.shape[1] != n_in:
        raise ValueError(
            f"{images} holds images of {X.shape[1]} pixels but the network's first Theta "
            f"expects {n_in} inputs; build the network with layer_sizes ({X.shape[1]}, ..., K)"
        )
    if y.size and (y.min() < 0 or y.max() > K - 1):
        raise ValueError(
            f"{labels} has labels in {int(y.min())}..{int(y.max())} but the network has "
            f"K={K} outputs; labels must lie in 0..{K - 1}"
        )


def fit_stream(
    params: Sequence[ArrayLike],
    images: PathLike,
    labels: PathLike,
    lam: float = 0.0,
    *,
    optimizer: Literal["adam", "sgd"] | optax.GradientTransformation = "adam",
    learning_rate: float | None = None,
    epochs: int = 1,
    batch_size: int = 256,
    chunk_size: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
    grad: Literal["backprop", "autodiff"] = "backprop",
    activation: str = "sigmoid",
    output: str = "sigmoid",
    order: Literal["C", "F"] = "C",
    dtype: Any = None,
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
        optimizer: ``"adam"`` (default learning rate 1e-3), ``"sgd"`` (0.1) or an optax
            ``GradientTransformation``.
        epochs: passes over the files.
        batch_size: examples per update.
        chunk_size: examples read (and shuffled) at once; default the largest multiple of
            ``batch_size`` not above 10,000 (at least ``batch_size``). Host memory is about
            ``chunk_size * n_0`` floats.
        grad: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.grad``).
        order: pixel order of the flattened images, as in ``load_idx`` (``"F"`` for the
            course's column-major layout).
        dtype: float dtype of the computation; default the params' dtype (float32 without
            x64).

    Returns:
        A :class:`StreamResult`.
    """
    t0 = time.perf_counter()
    params = as_params(params)
    get_activation(activation), check_output(output)
    if grad not in GRADS:
        raise ValueError(f"grad={grad!r} is not supported; choose one of {list(GRADS)}")
    lam = float(check_lam(lam))
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if chunk_size is None:
        chunk_size = max(1, 10_000 // batch_size) * batch_size
    chunk_size = _positive_int(chunk_size, "chunk_size")
    tx = _make_tx(optimizer, learning_rate)
    m = idx_count(images, labels)
    if m == 0:
        raise ValueError(f"{images} holds no examples")
    dtype = jax.dtypes.canonicalize_dtype(dtype if dtype is not None else params[0].dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    n_in, K = params[0].shape[1] - 1, params[-1].shape[0]
    params = tuple(jnp.array(t, dtype, copy=True) for t in params)  # the steps donate them
    step = jax.jit(partial(_step, tx=tx, activation=activation, output=output, grad=grad),
                   donate_argnums=(0, 1))
    opt_state = tx.init(params)
    rng = np.random.default_rng(seed)
    host_dtype = np.float32 if dtype == jnp.float32 else np.float64
    history, batch_costs = [], []
    for _ in range(epochs):
        epoch_costs = []
        for Xc, yc in iter_idx(images, labels, batch_size=chunk_size, order=order,
                               dtype=host_dtype):
            _check_chunk(Xc, yc, n_in, K, images, labels)
            perm = rng.permutation(len(yc)) if shuffle else np.arange(len(yc))
            for s in range(0, len(yc), batch_size):
                idx = perm[s:s + batch_size]
                lam_b = jnp.asarray(lam * len(idx) / m, dtype)
                params, opt_state, J = step(params, opt_state, Xc[idx], yc[idx].astype(np.int32),
                                            lam_b)
                epoch_costs.append(J)
            jax.block_until_ready(params)  # bound the work queued ahead of the device
        costs = np.asarray(jnp.stack(epoch_costs), dtype=np.float64)
        batch_costs.append(costs)
        history.append(float(costs.mean()))
    batch_costs = np.concatenate(batch_costs)
    return StreamResult(
        params=params,
        cost=history[-1],
        history=np.asarray(history),
        batch_costs=batch_costs,
        n_steps=int(batch_costs.size),
        n_examples=m,
        epochs=epochs,
        seconds=time.perf_counter() - t0,
    )


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
    chunk_size: int = 10_000,
    activation: str = "sigmoid",
    output: str = "sigmoid",
    order: Literal["C", "F"] = "C",
) -> dict[str, float]:
    """Full-data cost and accuracy of ``params`` on IDX files, read ``chunk_size`` at a time.

    Returns ``{"cost": J, "accuracy": fraction correct, "m": number of examples}``, where
    ``J`` equals :func:`jaxnn.cost` on the whole file (with ``lam``) up to rounding."""
    params = as_params(params)
    get_activation(activation), check_output(output)
    lam = float(check_lam(lam))
    chunk_size = _positive_int(chunk_size, "chunk_size")
    dtype = jax.dtypes.canonicalize_dtype(params[0].dtype)
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
