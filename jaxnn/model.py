"""The network: parameters in the course's layout, initialization, forward pass, prediction.

``params`` is a tuple of 2-D arrays, one per layer: ``Theta_l`` has shape ``(n_{l+1}, 1 + n_l)``
and column 0 holds the bias weights (the course's ``Theta1``, ``Theta2``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxnn.activations import get_activation
from jaxnn.checks import (
    COMPUTE_IN_FLOAT64,
    Params,
    PassedCalls,
    as_array,
    as_params,
    check_epsilon,
    check_finite_params,
    check_finite_start,
    check_float_dtype,
    check_params_representable,
    check_real,
    check_seed,
    check_sizes,
    check_targets,
    check_X,
    check_X_representable,
    float_dtype,
    is_traced,
    positive_int,
)
from jaxnn.defaults import ACTIVATION, INIT_EPSILON, OUTPUT
from jaxnn.memory import SMALLER_TRAINING, check_memory, param_count, problem_bytes
from jaxnn.outputs import get_output
from jaxnn.precision import x64_enabled

Array = jax.Array


def init_params(
    key: int | Array,
    layer_sizes: Sequence[int],
    epsilon: float = INIT_EPSILON,
    dtype: DTypeLike | None = None,
) -> Params:
    """Random weights, uniform in ``[-epsilon, epsilon]`` (the course's ``randInitializeWeights``).

    ``key`` is a JAX PRNG key or an int seed (in ``[-2**63, 2**63 - 1]``, the rule of
    :func:`jaxnn.checks.check_seed`). Returns ``Theta_l`` of shape ``(n_{l+1}, 1 + n_l)``, in
    ``dtype`` (default: JAX's default float). Sizes whose weights cannot fit in memory are a
    ``ValueError`` (:func:`jaxnn.memory.check_memory`), not an abort inside XLA.
    """
    sizes = check_sizes(layer_sizes)
    key = prng_key(key)
    dtype = weights_dtype(dtype)
    epsilon = check_epsilon(epsilon, dtype)
    count = param_count(sizes)
    # the weights and what drawing them holds at once: the random bits and their conversion
    # (measured: a peak of 3.6 times the weights for a (16, 10**7, 3) network in float32)
    check_memory(4 * count * np.dtype(dtype).itemsize,
                 f"init_params: layer_sizes {sizes} ({count:,} weights)",
                 hint="reduce layer_sizes")
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(
        jax.random.uniform(k, (n_out, 1 + n_in), dtype, -epsilon, epsilon)
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    )


def seed_keys(seeds: int | np.ndarray) -> Array:
    """JAX keys for integer seeds (a seed or an array of them), the same whether JAX's x64 mode
    is on or not: outside it ``jax.random.key(seed)`` keeps only a seed's low 32 bits (2**32 + 7
    gave seed 7's key, -1 another key than under x64). With JAX's default PRNG (threefry) a
    seed's 64 bits are its key's two words, high then low, as ``jax.random.key`` makes them
    under x64 (so seeds 0..2**32 - 1 give the same keys as ``jax.random.key``); with another
    PRNG chosen in JAX's configuration, the key is JAX's own."""
    if jax.config.jax_default_prng_impl != "threefry2x32":
        return jax.vmap(jax.random.key)(jnp.asarray(seeds)) if np.ndim(seeds) else \
            jax.random.key(int(seeds))
    words = np.asarray(seeds, dtype=np.int64).astype(np.uint64)
    data = np.stack([words >> np.uint64(32), words & np.uint64(0xFFFFFFFF)], axis=-1)
    return jax.random.wrap_key_data(data.astype(np.uint32), impl="threefry2x32")


def prng_key(key: object, name: str = "key") -> Array:
    """``key`` as a JAX PRNG key: a key (or key data) as given, an integer seed by
    :func:`jaxnn.checks.check_seed`'s rule; anything else is a ``ValueError`` naming ``name``."""
    if isinstance(key, jax.Array | np.ndarray):
        if is_traced(key) or (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()):
            return key
        if key.shape == () and jnp.issubdtype(key.dtype, jnp.integer):
            return seed_keys(check_seed(int(key), name))  # a seed held in an array
        if key.ndim == 1 and key.dtype == np.uint32:  # jax.random.PRNGKey's raw data
            return key  # (2 words for threefry; JAX itself checks the length for its PRNG)
        raise ValueError(f"{name} must be a JAX PRNG key (jax.random.key(seed)), the uint32 "
                         f"data of jax.random.PRNGKey(seed), or an integer seed; got an array "
                         f"of shape {tuple(key.shape)} and dtype {key.dtype}")
    if isinstance(key, bool | np.bool_) or not isinstance(key, int | np.integer):
        raise ValueError(f"{name} must be a JAX PRNG key or an integer seed, got {key!r}")
    return seed_keys(check_seed(key, name))


def weights_dtype(dtype: DTypeLike | None) -> np.dtype:
    """The floating dtype new weights are made in (``None``: JAX's default float)."""
    return jax.dtypes.canonicalize_dtype(float if dtype is None else check_float_dtype(dtype))


def debug_params(layer_sizes: Sequence[int], dtype: DTypeLike | None = None) -> Params:
    """The course's ``debugInitializeWeights``: ``Theta_l = sin(1..n_out*(1+n_in)) / 10``,
    reshaped column-major to ``(n_out, 1 + n_in)``. Deterministic; for gradient checks."""
    sizes = check_sizes(layer_sizes)
    dtype = weights_dtype(dtype)
    count = param_count(sizes)
    # a layer's float64 index and sine on the host, and the weights made from them
    check_memory(count * (2 * 8 + np.dtype(dtype).itemsize),
                 f"debug_params: layer_sizes {sizes} ({count:,} weights)",
                 hint="reduce layer_sizes")
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = np.sin(np.arange(1, n_out * (1 + n_in) + 1, dtype=np.float64)) / 10
        out.append(jnp.asarray(w.reshape((n_out, 1 + n_in), order="F"), dtype))
    return tuple(out)


def layer_sizes(params: Sequence[ArrayLike]) -> tuple[int, ...]:
    """The sizes ``(n_0, n_1, ..., K)`` that ``params`` describe; checks that they chain."""
    params = as_params(params)
    return (params[0].shape[1] - 1, *(t.shape[0] for t in params))


def start_vector(params: Params, dtype: object, name: str = "params",
                 maker: str = "jaxnn.init_params") -> np.ndarray:
    """A training's first ``theta``: ``params`` unrolled (:func:`ravel_params`) on the host
    in the training ``dtype``, where every weight must still be finite (a float64 weight past
    float32's range overflows in the cast). Batched layers give one row per network; the error
    names ``name`` and the function ``maker`` that makes good ones."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported next
        theta0 = ravel_params(tuple(np.asarray(t, dtype) for t in params))
    check_finite_start(theta0, dtype, name, maker)
    return theta0


def ravel_params(params: Sequence[ArrayLike]) -> Array | np.ndarray:
    """Unroll into one vector in Octave's order ``[Theta1(:); Theta2(:); ...]`` (column-major).

    The one unrolling of jaxnn, on the host and on the device: numpy arrays give a numpy
    vector (no transfer, no compilation), JAX arrays (or tracers) a JAX array. Leading batch
    axes shared by every ``Theta`` are kept: ``(B, n_out, 1 + n_in)`` layers give ``(B, n)``."""
    params = _as_layers(params)
    xp = np if all(isinstance(t, np.ndarray) for t in params) else jnp
    lead = params[0].shape[:-2]
    return xp.concatenate(
        [xp.reshape(xp.swapaxes(xp.asarray(t), -1, -2), (*lead, -1)) for t in params], axis=-1)


def unravel_params(theta: ArrayLike, layer_sizes: Sequence[int]) -> Params:
    """Inverse of :func:`ravel_params`: a vector of length ``sum n_{l+1} (1 + n_l)`` back to
    ``(Theta1, ..., ThetaL)``; numpy in, numpy out; leading batch axes ``(..., n)`` are kept."""
    sizes = check_sizes(layer_sizes)
    xp = np if isinstance(theta, np.ndarray) else jnp
    check_real(as_array(theta), "theta")
    theta = xp.asarray(theta)
    n = sum(o * (1 + i) for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    if theta.ndim < 1 or theta.shape[-1] != n:
        raise ValueError(
            f"theta must be a vector of length {n} for layer_sizes {sizes}, "
            f"got shape {tuple(theta.shape)}"
        )
    lead = theta.shape[:-1]
    out, start = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        size = n_out * (1 + n_in)
        chunk = theta[..., start : start + size].reshape(*lead, 1 + n_in, n_out)
        out.append(xp.swapaxes(chunk, -1, -2))
        start += size
    return tuple(out)


def _as_layers(params: object) -> Params:
    """``params`` checked as by :func:`jaxnn.checks.as_params`, or a batch of them: arrays of
    ``2 + k`` dimensions sharing ``k`` leading axes."""
    seq = params if isinstance(params, Sequence) and not isinstance(params, str) else None
    if seq and all(hasattr(t, "shape") and len(t.shape) > 2 for t in seq):
        lead = {tuple(t.shape[:-2]) for t in seq}
        if len(lead) != 1:
            raise ValueError(f"params: every Theta needs the same leading batch axes, got "
                             f"shapes {[tuple(t.shape) for t in seq]}")
        return tuple(seq)
    return as_params(params)


def one_hot(y: ArrayLike, K: int, dtype: DTypeLike | None = None) -> Array:
    """Targets ``(m, K)``: a 1 in column ``y_i`` of row ``i``. ``y``: integer labels ``(m,)``.

    ``K`` is at most ``jaxnn.checks.MAX_CLASSES``, and ``(m, K)`` must fit in memory."""
    K = positive_int(K, "K")
    y = check_targets(y, np.shape(y)[0] if np.ndim(y) else -1, int(K))
    if np.ndim(y) != 1:
        raise ValueError(f"y must be a vector of integer labels, got shape {np.shape(y)}")
    dtype = jax.dtypes.canonicalize_dtype(dtype or float)
    m = int(np.shape(y)[0])
    check_memory(m * int(K) * np.dtype(dtype).itemsize,
                 f"one_hot: {m:,} labels x K={int(K):,} classes", hint="reduce K or y")
    return jax.nn.one_hot(y, int(K), dtype=dtype)


# --- forward pass -------------------------------------------------------------------------------


def affine(theta: Array, a: Array) -> Array:
    """``z = [1, a] @ Theta.T`` for a batch ``a`` of shape ``(m, n_in)``: shape ``(m, n_out)``.

    The bias column is added rather than a column of ones concatenated to ``a``."""
    return a @ theta[:, 1:].T + theta[:, 0]


def logits(params: Params, X: Array, activation: str = ACTIVATION) -> Array:
    """Output-layer pre-activations ``z_L`` of shape ``(m, K)``. Traceable; no checks."""
    g = get_activation(activation).fn
    a = X
    for theta in params[:-1]:
        a = g(affine(theta, a))
    return affine(params[-1], a)


def probabilities(z: Array, output: str) -> Array:
    """Class probabilities from output logits: elementwise sigmoid, or row-wise softmax."""
    return get_output(output).probabilities(z)


def prepare(params: object, X: object, float64: str | None = COMPUTE_IN_FLOAT64
            ) -> tuple[Params, Array, jnp.dtype]:
    """Validate ``params`` and ``X`` and return them with the dtype the computation runs in.

    ``X`` must stay finite in that dtype (float64 data past float32's range would compute NaN);
    ``float64`` says how to reach float64 in the message, None leaves this check to a caller
    that computes in a dtype of its own (training: :func:`jaxnn.train.problem.make_problem`).
    The weights likewise: finite float64 weights past float32's range are refused.

    A network and ``X`` whose computation cannot fit in memory (the estimate of
    :func:`jaxnn.memory.problem_bytes`: weights, gradient, every layer's activations and
    deltas for the ``m`` rows) are a ``ValueError``; pure arithmetic, no array is touched.

    A call with the very ``jax.Array``s of an earlier call that passed, with the same x64 mode
    and ``float64``, skips the checks on its values (:class:`PassedCalls`); the memory estimate
    is still compared with the free memory."""
    arrays = (*params, X) if isinstance(params, tuple | list) else ()
    settings = settings_key(float64)
    hit = _prepared.get(arrays, settings) if arrays else None
    if hit is not None:
        dtype, memory_check = hit
        memory_check()
        return tuple(params), X, dtype
    params = as_params(params)
    X = check_X(X, params[0].shape[1] - 1)
    check_finite_params(params)
    dtype = float_dtype(*params, X)
    if float64 is not None:  # finite in their own dtype (checked): and in the computation's?
        if X.dtype != dtype:
            check_X_representable(X, dtype, float64)
        check_params_representable(params, dtype, float64)
    sizes = (params[0].shape[1] - 1, *(t.shape[0] for t in params))
    memory_check = partial(
        check_memory, problem_bytes(sizes, X.shape[0], dtype, optimizer_copies=0),
        f"{X.shape[0]:,} examples through layer_sizes {sizes}",
        hint=SMALLER_TRAINING if float64 is None else
        "use fewer examples at a time (a batch) or smaller layers")
    memory_check()
    if arrays:  # (as_params and check_X give jax.Arrays back as they were given)
        _prepared.put(arrays, settings, (dtype, memory_check))
    return params, X, dtype


#: the calls of :func:`prepare` that passed
_prepared = PassedCalls()


def settings_key(float64: str | None) -> tuple:
    """What, besides their arrays, decides the outcome of :func:`prepare`'s checks on the
    arrays' values: the x64 mode (the computation's dtype) and ``float64`` (whether values
    must be representable in that dtype, and the words of a refusal)."""
    return x64_enabled(), float64


@partial(jax.jit, static_argnames=("activation", "output", "dtype"))
def _forward(params: Params, X: Array, activation: str, output: str, dtype) -> Array:
    params = tuple(t.astype(dtype) for t in params)
    return probabilities(logits(params, X.astype(dtype), activation), output)


@partial(jax.jit, static_argnames=("activation", "dtype"))
def _predict(params: Params, X: Array, activation: str, dtype) -> Array:
    params = tuple(t.astype(dtype) for t in params)
    return jnp.argmax(logits(params, X.astype(dtype), activation), axis=1)


def forward(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    *,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> Array:
    """Class probabilities ``h`` of shape ``(m, K)`` for inputs ``X`` of shape ``(m, n_0)``.

    With ``output="sigmoid"`` (the course's) each column is an independent sigmoid; with
    ``"softmax"`` the rows sum to one. Checks shapes always and that ``X`` is finite when it
    is concrete (not inside a user's ``jit``)."""
    get_activation(activation), get_output(output)
    params, X, dtype = prepare(params, X)
    return _forward(params, X, activation, output, dtype)


def predict(params: Sequence[ArrayLike], X: ArrayLike, *, activation: str = ACTIVATION,
            output: str = OUTPUT) -> Array:
    """Integer labels ``(m,)``: the index of the largest output (``output`` does not change it)."""
    get_activation(activation), get_output(output)
    params, X, dtype = prepare(params, X)
    return _predict(params, X, activation, dtype)


def accuracy(params: Sequence[ArrayLike], X: ArrayLike, y: ArrayLike, **kw: str) -> float:
    """Fraction of rows of ``X`` whose predicted label equals ``y`` (integer labels ``(m,)``).

    Exact: the number correct is counted as an integer on the host and divided in Python, so
    4880 of 5000 is ``0.976``, not float32's ``0.97599995``."""
    pred = predict(params, X, **kw)
    y = check_targets(y, pred.shape[0], as_params(params)[-1].shape[0])
    if np.ndim(y) != 1:
        raise ValueError("accuracy needs integer labels y of shape (m,), not a target matrix")
    correct = int(np.count_nonzero(np.asarray(pred) == np.asarray(y)))
    return correct / int(pred.shape[0])
