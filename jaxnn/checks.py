"""The one home of jaxnn's argument rules and the constants they share.

Every entry point (``cost``/``backprop``/..., ``fit``, ``fit_many``, ``fit_stream``, the
estimator, the sweeps and the command line) checks its arguments with the functions here, so
one rule gives one outcome and one message everywhere. Each raises ``ValueError`` naming the
argument, what was wrong and what is accepted (``TypeError`` is never raised: a value of the
wrong type is a ``ValueError`` too, so one ``except ValueError`` catches every bad argument).

Shape checks always run (shapes are static, even under ``jit``). Value checks (finite ``X``,
labels in ``0..K-1``, targets in ``[0, 1]``) need concrete values, so they run on ordinary
calls and are skipped when the function is being traced inside a user's ``jit``/``vmap``.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import stat
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.names import GRADS

Array = jax.Array
Params = tuple[Array, ...]


def is_traced(*xs: object) -> bool:
    """True if any argument is a JAX tracer (we are inside a transformation)."""
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def as_params(params: object, name: str = "params") -> Params:
    """Check that ``params`` is a non-empty sequence of 2-D arrays whose shapes chain:
    ``Theta_{l+1}.shape[1] == 1 + Theta_l.shape[0]``. Returns them as a tuple of arrays."""
    if isinstance(params, dict) or not isinstance(params, Sequence) or isinstance(params, str):
        raise ValueError(
            f"{name} must be a tuple or list of 2-D arrays (Theta1, Theta2, ...), "
            f"got {type(params).__name__}"
        )
    if len(params) == 0:
        raise ValueError(f"{name} is empty; it needs at least one Theta of shape (K, 1 + n)")
    out = []
    for i, t in enumerate(params):
        if not hasattr(t, "shape"):
            t = np.asarray(t)
        if len(t.shape) != 2:
            raise ValueError(
                f"{name}[{i}] (Theta{i + 1}) must be 2-D of shape (n_out, 1 + n_in), "
                f"got shape {tuple(t.shape)}"
            )
        if t.shape[1] < 1 or t.shape[0] < 1:
            raise ValueError(
                f"{name}[{i}] (Theta{i + 1}) has shape {tuple(t.shape)}; it needs at least one "
                "row and a bias column"
            )
        if i > 0 and t.shape[1] != 1 + out[-1].shape[0]:
            raise ValueError(
                f"{name}[{i}] (Theta{i + 1}) has shape {tuple(t.shape)} but Theta{i} has "
                f"{out[-1].shape[0]} rows, so Theta{i + 1} needs {1 + out[-1].shape[0]} columns "
                "(bias + one per unit below): the layers do not chain"
            )
        if jnp.issubdtype(t.dtype, jnp.complexfloating) or not (
                jnp.issubdtype(t.dtype, jnp.number) or t.dtype == bool):
            raise ValueError(
                f"{name}[{i}] (Theta{i + 1}) must hold real numbers, got dtype {t.dtype}"
            )
        if not isinstance(t, jax.Array | jax.core.Tracer):
            t = np.asarray(t)
            if not np.issubdtype(t.dtype, np.floating):
                t = t.astype(np.float64)
        out.append(t)
    return tuple(out)


def float_dtype(*arrays: object) -> jnp.dtype:
    """The floating dtype the computation runs in: the promotion of the inputs' dtypes,
    or JAX's default float if none is floating. float64 becomes float32 unless x64 is on."""
    dts = [np.dtype(a.dtype) for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)]
    return jax.dtypes.canonicalize_dtype(np.result_type(*dts) if dts else float)


def check_X(X: object, n_in: int, name: str = "X") -> Array | np.ndarray:
    """``X`` must be 2-D ``(m, n_in)`` with ``m >= 1``, numeric, and (when concrete) finite."""
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    if len(X.shape) != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (m, {n_in}) with one example per row, "
            f"got shape {tuple(X.shape)}"
        )
    if X.shape[1] != n_in:
        raise ValueError(
            f"{name} has {X.shape[1]} features (shape {tuple(X.shape)}) but the first Theta "
            f"expects {n_in} (its shape is (n_1, 1 + {n_in})); pass X of shape (m, {n_in})"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows; pass at least one example")
    if not (jnp.issubdtype(X.dtype, jnp.number) or X.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if jnp.issubdtype(X.dtype, jnp.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if not is_traced(X) and jnp.issubdtype(X.dtype, jnp.inexact):
        checked_once(X, "finite", lambda: _check_finite(X, name))
    return X


def _check_finite(x: Array | np.ndarray, name: str) -> None:
    finite = np.isfinite(x).all() if isinstance(x, np.ndarray) else bool(_all_finite(x))
    if not finite:
        raise ValueError(
            f"{name} contains NaN or infinite values; clean or impute them before training"
        )


@jax.jit
def _all_finite(x: Array) -> Array:
    return jnp.isfinite(x).all()


# jax.Arrays are immutable, so a value check that passed once holds for the array's lifetime:
# remember the arrays already checked (weakly, so they are still freed) and skip repeats.
_checked: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def checked_once(x: object, what: str, check: Callable[[], None]) -> None:
    """Run ``check()`` unless this same immutable ``jax.Array`` already passed ``what``."""
    if not isinstance(x, jax.Array):
        check()
        return
    key = (id(x), what)
    if _checked.get(key) is x:
        return
    check()
    _checked[key] = x


@jax.jit
def _label_range(y: Array) -> tuple[Array, Array]:
    return y.min(), y.max()


def check_targets(y: object, m: int, K: int, name: str = "y") -> Array | np.ndarray:
    """``y`` is either integer labels ``(m,)`` in ``0..K-1`` or a target matrix ``(m, K)``.

    Integer-valued real float labels are accepted and cast to int32 (after their range is
    checked, so ``1e12`` is not wrapped around); complex labels are refused, never stripped of
    their imaginary part. Labels become one-hot rows of ``K`` entries, so ``K`` is bounded by
    ``MAX_CLASSES`` for them (:func:`check_classes`). Label range and finiteness are checked
    when ``y`` is concrete."""
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    traced = is_traced(y)
    if len(y.shape) == 1:
        if y.shape[0] != m:
            raise ValueError(
                f"{name} has {y.shape[0]} labels but X has {m} rows; they must match"
            )
        if K > MAX_CLASSES:
            raise ValueError(
                f"{name} holds class labels, which make one-hot targets of K={K} entries "
                f"each; jaxnn takes at most {MAX_CLASSES} classes from labels (pass a target "
                "matrix (m, K) instead)"
            )
        if not jnp.issubdtype(y.dtype, jnp.integer):
            if traced or not jnp.issubdtype(y.dtype, jnp.floating):
                raise ValueError(
                    f"{name} must hold integer class labels 0..{K - 1}, got dtype {y.dtype}"
                )
            yn = np.asarray(y)
            if not (np.isfinite(yn).all() and (yn == np.round(yn)).all()):
                raise ValueError(
                    f"{name} must hold integer class labels 0..{K - 1}; it has non-integer values"
                )
            _check_labels(yn, K, name)  # before the cast: 1e12 must not wrap around
            y = yn.astype(np.int32)
        if not traced:
            checked_once(y, f"labels<{K}", lambda: _check_labels(y, K, name))
        return y
    if len(y.shape) == 2:
        if y.shape != (m, K):
            raise ValueError(
                f"{name} as a target matrix must have shape (m, K) = ({m}, {K}), "
                f"got {tuple(y.shape)}"
            )
        if jnp.issubdtype(y.dtype, jnp.complexfloating) or not (
                jnp.issubdtype(y.dtype, jnp.number) or y.dtype == bool):
            raise ValueError(f"{name} as a target matrix must hold real numbers in [0, 1], "
                             f"got dtype {y.dtype}")
        if not traced:
            checked_once(y, "targets", lambda: _check_target_values(y, name))
        return y
    raise ValueError(
        f"{name} must be integer labels of shape (m,) or a target matrix of shape (m, K), "
        f"got shape {tuple(y.shape)}"
    )


def _check_labels(y: Array | np.ndarray, K: int, name: str) -> None:
    lo, hi = (y.min(), y.max()) if isinstance(y, np.ndarray) else _label_range(y)
    if lo < 0 or hi > K - 1:
        raise ValueError(
            f"{name} has labels in {int(lo)}..{int(hi)} but the network has K={K} "
            f"outputs, so labels must lie in 0..{K - 1} (course files number classes "
            "1..K: load them with jaxnn.datasets.load_mat, which maps label k to k mod K)"
        )


def _check_target_values(y: Array | np.ndarray, name: str) -> None:
    lo, hi = (np.min(y), np.max(y)) if isinstance(y, np.ndarray) else _label_range(y)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values; targets must lie in [0, 1]")
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} as a target matrix must hold values in [0, 1] (one-hot rows "
                         f"or probabilities), got values in {float(lo):g}..{float(hi):g}")


def check_lam(lam: object, name: str = "lam") -> object:
    """``lam`` must be a real, finite, non-negative scalar (its value checked when concrete;
    a traced ``lam`` inside a user's ``jit`` passes through)."""
    if is_traced(lam):
        if len(lam.shape) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {tuple(lam.shape)}")
        return lam
    if hasattr(lam, "shape") and len(lam.shape) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(lam.shape)}")
    check_number(lam, name, low=0.0)
    return lam


# --- numbers, counts, choices -------------------------------------------------------------------


def _is_real_number(value: object) -> bool:
    """A real scalar: Python or numpy int/float, or a 0-d real array; not bool, str, complex."""
    if isinstance(value, bool | np.bool_ | str | bytes):
        return False
    if isinstance(value, numbers.Real):
        return True
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    return shape == () and dtype is not None and (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))


def check_number(value: object, name: str, *, low: float | None = None,
                 strict: bool = False) -> float:
    """A finite real scalar, at least ``low`` (above it when ``strict``); returned as float.

    Refuses bools, strings, complex numbers and arrays with more than one value."""
    bound = "" if low is None else (f" > {low:g}" if strict else f" >= {low:g}")
    if not _is_real_number(value):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (low is not None and (v <= low if strict else v < low)):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return v


def positive_int(value: object, name: str) -> int:
    """A positive integer (Python or numpy int; not bool, not a float)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) \
            or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_eps(eps: object) -> float:
    """The step of a central difference: a finite number > 0."""
    return check_number(eps, "eps", low=0, strict=True)


def check_chunk_size(chunk_size: object, allow_none: bool = False) -> int | None:
    """Perturbations per compiled call of a numerical gradient: a positive integer (or None,
    the default, where ``allow_none``)."""
    if allow_none and chunk_size is None:
        return None
    return positive_int(chunk_size, "chunk_size")


def check_choice(value: object, choices: Sequence[str], name: str) -> str:
    """``value`` must be one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {list(choices)}")
    return value


def check_grad(grad: object) -> str:
    """``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``)."""
    return check_choice(grad, GRADS, "grad")


# seeds go to jax.random.key (a 64-bit value) and numpy's generators
SEED_RANGE = (-(2**63), 2**63 - 1)


def check_seed(seed: object, name: str = "seed") -> int:
    """An integer seed that a JAX key and numpy's generators accept (64-bit signed)."""
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer) \
            or not SEED_RANGE[0] <= int(seed) <= SEED_RANGE[1]:
        raise ValueError(f"{name} must be an integer in [-2**63, 2**63 - 1], got {seed!r}")
    return int(seed)


def check_seeds(seed: object, B: int, name: str = "seed") -> np.ndarray:
    """``B`` seeds, one per network: an int ``s`` gives ``s, s + 1, ..., s + B - 1``, or a
    sequence of ``B`` ints."""
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool | np.bool_):
        s = check_seed(seed, name)
        check_seed(s + B - 1, name)
        return s + np.arange(B, dtype=np.int64)
    if not isinstance(seed, Sequence | np.ndarray) or isinstance(seed, str):
        check_seed(seed, name)  # a single seed that is not an int: the seed rule says why
    arr = np.asarray(seed)
    if arr.shape != (B,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an int or {B} ints (one per network), got {seed!r}")
    for s in arr:
        check_seed(int(s), name)
    return arr.astype(np.int64)


def check_dtype(dtype: object) -> bool | None:
    """The training precision: None (follow the inputs), False (float32) or True (float64)."""
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {dtype!r}")
    return dt == np.float64


def check_tol(tol: object) -> float | None:
    """A convergence tolerance: None (the method's default) or a number >= 0."""
    return None if tol is None else check_number(tol, "tol", low=0.0)


#: learning rates of the mini-batch methods when none is given
DEFAULT_LEARNING_RATE = {"adam": 1e-3, "sgd": 0.1}


def check_learning_rate(learning_rate: object, method: str) -> float | Callable:
    """The learning rate of ``method`` (``"adam"``/``"sgd"``): its default for None, a
    positive finite number, or an optax schedule (a callable of the step count)."""
    if learning_rate is None:
        return DEFAULT_LEARNING_RATE[method]
    if callable(learning_rate):
        return learning_rate
    if not _is_real_number(learning_rate) or not 0 < float(learning_rate) < math.inf:
        raise ValueError(f"learning_rate must be a positive number or an optax schedule, "
                         f"got {learning_rate!r}")
    return float(learning_rate)


def check_callback(callback: object) -> Any:
    """None or a callable."""
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {type(callback).__name__}")
    return callback


# --- network shapes and labels --------------------------------------------------------------


def check_sizes(layer_sizes: object, name: str = "layer_sizes") -> tuple[int, ...]:
    """At least two positive integers (inputs, ..., outputs), e.g. ``(400, 25, 10)``."""
    try:
        sizes = tuple(int(n) for n in layer_sizes)
        ok = all(int(n) == n and not isinstance(n, bool) for n in layer_sizes)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"{name} must list at least two positive integers (inputs, ..., outputs), "
            f"e.g. (400, 25, 10); got {layer_sizes!r}"
        )
    return sizes


def check_hidden(hidden: object, name: str = "hidden") -> tuple[int, ...]:
    """Hidden layer sizes: a positive int (one layer) or a sequence of them (``()``: none)."""
    if isinstance(hidden, int | np.integer) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        sizes = tuple(hidden)
    except TypeError:
        sizes = None
    if sizes is None or isinstance(hidden, str) or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1
            for n in sizes):
        raise ValueError(f"{name} must be a positive int or a sequence of positive ints "
                         f"(units per hidden layer), got {hidden!r}")
    return tuple(int(n) for n in sizes)


def check_labels(y: object, name: str = "y", m: int | None = None) -> np.ndarray:
    """Host-side class labels: a vector of ``m`` whole numbers ``>= 0`` (an ``(m, 1)`` or
    ``(1, m)`` column or row is flattened), returned as int64."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    want = f"({m},)" if m is not None else "(m,)"
    if y.ndim != 1 or (m is not None and y.shape[0] != m):
        raise ValueError(f"{name} must be integer labels of shape {want} (one per example), "
                         f"got shape {y.shape}")
    if y.dtype.kind not in "iufb":
        raise ValueError(f"{name} must hold whole-number class labels 0..K-1, got dtype "
                         f"{y.dtype}")
    if y.dtype.kind == "f" and not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise ValueError(f"{name} must hold whole-number class labels 0..K-1")
    if y.size and y.min() < 0:
        raise ValueError(f"{name} has negative labels; labels are classes 0..K-1")
    if y.size and y.max() > MAX_CLASSES - 1:
        raise ValueError(f"{name} has a label {y.max():g}, which would make {int(y.max()) + 1} "
                         f"classes; jaxnn takes at most {MAX_CLASSES} (labels are 0..K-1)")
    return y.astype(np.int64)


#: the most classes a label vector may imply (a one-hot target row has K entries)
MAX_CLASSES = 100_000


def check_classes(K: object, name: str = "K") -> int:
    """A number of classes that labels may imply: a positive integer up to ``MAX_CLASSES``.

    Labels become one-hot rows of ``K`` entries, so a label such as ``1e12`` (a typo, an id
    column) would ask for ``m * 1e12`` numbers; this is the rule that refuses it."""
    K = positive_int(K, name)
    if K > MAX_CLASSES:
        raise ValueError(f"{name}={K} classes is more than jaxnn takes from labels "
                         f"({MAX_CLASSES}); labels are classes 0..K-1")
    return K


def check_float_dtype(dtype: object, name: str = "dtype") -> np.dtype:
    """A floating numpy dtype (``float16``/``float32``/``float64``/...) for loaded examples."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ValueError(f"{name} must be a floating dtype such as np.float32 or np.float64, "
                         f"got {dtype!r}")
    return dt


# --- memory ---------------------------------------------------------------------------------

#: a request of at most this many bytes is taken to fit without asking the system, which keeps
#: :func:`check_memory` pure arithmetic on small problems
MEMORY_FLOOR = 64 * 2**20
#: environment variable: a cap, in bytes, on the memory :func:`available_memory` reports
MEMORY_LIMIT_ENV = "JAXNN_MEMORY_LIMIT"


def param_count(layer_sizes: Sequence[int]) -> int:
    """Number of weights of a network: ``sum_l n_{l+1} (1 + n_l)`` (a Python int, exact)."""
    sizes = check_sizes(layer_sizes)
    return sum(o * (1 + i) for i, o in zip(sizes[:-1], sizes[1:], strict=True))


def problem_bytes(layer_sizes: Sequence[int], m: int, dtype: object = None, *,
                  grads: bool = True, optimizer_copies: int = 2, networks: int = 1) -> int:
    """Estimated bytes of memory that a cost / backprop / fit computation needs at least.

    Pure arithmetic on Python ints (no overflow, no array is made), cheap enough for every
    call. It counts, in the itemsize of ``dtype`` (None: JAX's default float):

    * the parameters ``P = param_count(layer_sizes)``, plus as many again for the gradient
      (``grads``) and ``optimizer_copies`` more (search direction, previous gradient, ...;
      pass ``2 * history`` for an L-BFGS that keeps ``history`` pairs of vectors);
    * the examples ``X`` ``(m, n_0)`` once, and per network the activations of every layer
      ``(m, n_l)``, plus (``grads``) one backward delta per layer ``(m, n_l)`` and the targets
      ``(m, K)``;
    * all of it but ``X`` times ``networks`` (the members of ``fit_many``, which share ``X``).

    It is a floor, not a bound: XLA's temporaries and the optimizer's host copies come on top,
    so a problem refused by ``check_memory(problem_bytes(...))`` cannot run, while one that
    passes may still be tight. Example: ``(400, 25, 10)``, ``m = 5000``, float32: about 9.3 MiB.
    """
    sizes = check_sizes(layer_sizes)
    m = int(m)
    if m < 0:
        raise ValueError(f"m must be a count of examples >= 0, got {m}")
    item = _itemsize(dtype)
    copies = 1 + int(bool(grads)) + max(0, int(optimizer_copies))
    per_network = copies * param_count(sizes) + m * sum(sizes[1:])
    if grads:
        per_network += m * sum(sizes[1:]) + m * sizes[-1]
    return item * (m * sizes[0] + max(1, int(networks)) * per_network)


def _itemsize(dtype: object) -> int:
    if dtype is None:
        return np.dtype(jax.dtypes.canonicalize_dtype(float)).itemsize
    return np.dtype(dtype).itemsize


def format_bytes(n: int | float) -> str:
    """``1536`` -> ``"1.5 KiB"``: a byte count for messages, in binary units."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory(device: object = None) -> tuple[int | None, str]:
    """``(bytes, where)``: how much memory a new allocation can use now, and which memory.

    ``device`` None is JAX's default device, or a ``jax.Device``, or ``"host"``. An
    accelerator reports ``bytes_limit - bytes_in_use`` of its ``memory_stats()``; the host
    (and CPU devices) the least of Linux's ``MemAvailable`` (``/proc/meminfo``), the
    container's cgroup limit minus its usage, and ``os.sysconf`` physical memory where those
    are missing. ``$JAXNN_MEMORY_LIMIT`` (bytes) caps the answer. ``bytes`` is None when
    nothing can be found out (then no limit is enforced)."""
    cap = _env_limit()
    dev = _device(device)
    found: list[int] = []
    where = "host memory"
    if dev is not None and getattr(dev, "platform", "cpu") != "cpu":
        where = f"memory of {dev}"
        try:
            stats = dev.memory_stats() or {}
        except Exception:  # some backends do not implement it
            stats = {}
        if "bytes_limit" in stats:
            found.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    else:
        found.extend(v for v in (_meminfo_available(), _cgroup_available()) if v is not None)
        if not found:
            found.extend(v for v in (_physical_memory(),) if v is not None)
    if cap is not None and (not found or cap < min(found)):
        return cap, f"{where}, capped by ${MEMORY_LIMIT_ENV}"
    return (max(0, min(found)) if found else None), where


def check_memory(n_bytes: int, what: str, *, hint: str = "", device: object = None) -> int:
    """Refuse, with a ``ValueError``, an allocation of ``n_bytes`` that cannot fit in memory.

    Call it before making arrays whose size comes from arguments or file headers, so that a
    size too large for the machine is a clear error instead of XLA aborting the interpreter
    (or the kernel killing it). ``what`` names what needs the memory and the argument that
    sets it (e.g. ``"init_params: layer_sizes (400, 100000000, 10), 40,100,000,010
    parameters"``); ``hint`` says what to reduce. ``device`` as in :func:`available_memory`.

    Requests up to ``MEMORY_FLOOR`` bytes pass without asking the system (pure arithmetic);
    larger ones read ``/proc/meminfo`` (or the device's statistics) once. Returns
    ``n_bytes``."""
    n_bytes = int(n_bytes)
    if n_bytes <= MEMORY_FLOOR and os.environ.get(MEMORY_LIMIT_ENV) is None:
        return n_bytes
    available, where = available_memory(device)
    if available is not None and n_bytes > available:
        tail = f"; {hint}" if hint else ""
        raise ValueError(f"{what}: needs about {format_bytes(n_bytes)} of memory but only "
                         f"{format_bytes(available)} is available ({where}){tail}")
    return n_bytes


def _env_limit() -> int | None:
    raw = os.environ.get(MEMORY_LIMIT_ENV)
    if raw is None or not raw.strip():
        return None
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(f"${MEMORY_LIMIT_ENV} must be a number of bytes, got {raw!r}") from None
    return max(0, value)


def _device(device: object) -> object:
    if isinstance(device, str) and device == "host":
        return None
    if device is not None:
        return device
    default = jax.config.jax_default_device
    if default is None or isinstance(default, str):
        try:
            return jax.devices(default)[0] if default else jax.devices()[0]
        except RuntimeError:
            return None
    return default


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit) as f:
                raw = f.read().strip()
            if raw == "max":
                continue
            with open(usage) as f:
                used = int(f.read().strip())
            cap = int(raw)
        except (OSError, ValueError):
            continue
        if cap < 2**60:  # cgroup v1 reports "no limit" as a huge number
            return cap - used
    return None


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


# --- input files ----------------------------------------------------------------------------


def check_input_file(path: object) -> int:
    """``path`` must name a regular file that can be read; returns its size in bytes.

    Problems of the file system stay ``OSError`` naming the path (missing: ``FileNotFoundError``,
    a directory: ``IsADirectoryError``, a symlink loop: ``OSError`` ELOOP, ...); a FIFO, socket
    or device (which would block or never end) is a ``ValueError``."""
    info = os.stat(path)  # OSError with the path named
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file (a FIFO, socket or device); pass a file")
    return int(info.st_size)


# --- devices --------------------------------------------------------------------------------


def check_devices(devices: object, axis_name: str) -> Any:
    """A 1-D ``jax.sharding.Mesh`` from ``devices``: a count ``N`` (the first ``N`` of
    ``jax.devices()``), a list of ``jax.Device``, or a 1-D ``Mesh`` (returned as is)."""
    from jax.sharding import Mesh

    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(f"devices: the mesh must be 1-D, got axes {devices.axis_names}")
        return devices
    available = jax.devices()
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices} but {len(available)} JAX devices are available"
                             " (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                             "before JAX starts makes N)")
        devs = available[: int(devices)]
    elif isinstance(devices, Sequence) and not isinstance(devices, str) and devices and all(
            isinstance(d, jax.Device) for d in devices):
        devs = list(devices)
    else:
        raise ValueError(f"devices must be a positive count, a list of jax devices or a 1-D "
                         f"Mesh, got {devices!r}")
    return Mesh(np.array(devs), (axis_name,))
