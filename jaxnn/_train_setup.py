"""What :func:`jaxnn.fit` does before training: argument checks, and the problem on the device.

The problem is prepared once per call: ``theta0`` unrolled on the host (numpy: no per-shape
compilation), ``X`` and the one-hot targets ``Y`` placed on the device (or sharded over the
example axis of a device mesh), ``lam`` a device scalar in the training dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import optax

from jaxnn.losses import prepare_problem, targets

SCIPY_METHODS = ("L-BFGS-B", "TNC", "CG", "BFGS")
METHODS = (*SCIPY_METHODS, "lbfgs", "adam", "sgd")
DEFAULT_LEARNING_RATE = {"adam": 1e-3, "sgd": 0.1}
LBFGS_OPTIONS = ("memory_size", "max_linesearch_steps")


@dataclass
class Problem:
    """The validated problem: ``theta0`` on the host, the data on the device(s)."""

    sizes: tuple[int, ...]
    theta0: np.ndarray  # (n,) Octave order, training dtype
    X: jax.Array  # (m, n_0)
    Y: jax.Array  # (m, K) targets
    lam: jax.Array  # scalar
    activation: str
    output: str
    grad: str
    replicated: Any = None  # the sharding for theta when data-parallel, else None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.X.dtype)

    def unravel(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Host-side inverse of ``ravel_params``: column-major slices, in the training dtype."""
        out, start = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            size = n_out * (1 + n_in)
            chunk = np.asarray(theta[start:start + size], self.dtype)
            out.append(chunk.reshape((n_out, 1 + n_in), order="F"))
            start += size
        return tuple(out)

    def put(self, theta: np.ndarray) -> jax.Array:
        """``theta`` on the device (replicated over the mesh when data-parallel)."""
        return jax.device_put(np.asarray(theta, self.dtype), self.replicated)


def make_problem(params, X, y, lam, activation: str, output: str, grad: str,
                 want64: bool | None, devices) -> Problem:
    """Validate (as :func:`jaxnn.cost` does) and place the problem; see :func:`jaxnn.fit`."""
    params, X, y, lam, dtype = prepare_problem(params, X, y, lam, activation, output)
    if want64 is not None:
        dtype = np.dtype(np.float64 if want64 else np.float32)
    rows, replicated = (None, None) if devices is None else _shardings(devices, X.shape[0])
    sizes = (params[0].shape[1] - 1, *(t.shape[0] for t in params))
    theta0 = np.concatenate([np.asarray(t, dtype).ravel(order="F") for t in params])
    if isinstance(X, jax.Array):
        X = X if X.dtype == dtype else X.astype(dtype)
    else:  # device_put, not jnp.asarray, which compiles a copy per shape
        X = np.asarray(X, dtype)
    if isinstance(y, jax.Array):
        Y = targets(y, sizes[-1], dtype)
    else:
        y = np.asarray(y)
        Y = np.eye(sizes[-1], dtype=dtype)[y] if y.ndim == 1 else y.astype(dtype)
    return Problem(sizes, theta0, jax.device_put(X, rows), jax.device_put(Y, rows),
                   jax.device_put(np.asarray(lam, dtype), replicated), activation, output,
                   grad, replicated)


def _shardings(devices: int | Sequence[jax.Device], m: int):
    """``(rows, replicated)``: examples split over a 1-D mesh named ``"batch"``, and copies."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    available = jax.devices()
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices} but {len(available)} JAX devices are available")
        devs = available[: int(devices)]
    elif isinstance(devices, Sequence) and devices and all(
            isinstance(d, jax.Device) for d in devices):
        devs = list(devices)
    else:
        raise ValueError(f"devices must be a positive count or a list of jax devices, "
                         f"got {devices!r}")
    if m % len(devs):
        raise ValueError(f"X has {m} rows, which {len(devs)} devices cannot share evenly; use "
                         f"a device count that divides m, or drop {m % len(devs)} rows")
    mesh = Mesh(np.array(devs), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


# --- argument checks ------------------------------------------------------------------------------


def check_method(method: object, learning_rate: object
                 ) -> tuple[str, optax.GradientTransformation | None]:
    """``(name, optimizer)``: the optax optimizer for adam/sgd/a custom one, else None."""
    if isinstance(method, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError("learning_rate is part of an optax optimizer passed as method")
        return "optax", method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; choose one of {list(METHODS)} "
                         "or pass an optax GradientTransformation")
    if method not in DEFAULT_LEARNING_RATE:
        return method, None
    lr = DEFAULT_LEARNING_RATE[method] if learning_rate is None else learning_rate
    if not callable(lr):
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < np.inf:
            raise ValueError(f"learning_rate must be a positive number or an optax schedule, "
                             f"got {learning_rate!r}")
        lr = float(lr)
    return method, optimizer(method, lr)


@functools.lru_cache(maxsize=64)
def optimizer(method: str, learning_rate: float | optax.Schedule
              ) -> optax.GradientTransformation:
    """One optimizer object per (method, learning rate), so its compiled loop is reused."""
    return optax.adam(learning_rate) if method == "adam" else optax.sgd(learning_rate)


def positive_int(v: object, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def check_dtype(dtype: object) -> bool | None:
    """None (follow the inputs), False (float32) or True (float64)."""
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {dtype!r}")
    return dt == np.float64


def check_options(name: str, tol, learning_rate, batch_size, segment, options, callback) -> None:
    """Each option is checked, and refused by the methods that would silently ignore it."""
    minibatch = name not in (*SCIPY_METHODS, "lbfgs")
    if tol is not None:
        if minibatch:
            raise ValueError(f"tol is not used by method {name!r} (it runs all epochs)")
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
            raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if not minibatch:
        for arg, v in (("learning_rate", learning_rate), ("batch_size", batch_size)):
            if v is not None:
                raise ValueError(f"{arg} is only used by adam/sgd, not by method {name!r}")
    if batch_size is not None:
        positive_int(batch_size, "batch_size")
    if segment is not None:
        if name in SCIPY_METHODS:
            raise ValueError(f"segment is only used by the compiled methods, not {name!r}")
        positive_int(segment, "segment")
    if options is not None:
        if minibatch:
            raise ValueError(f"options are not used by method {name!r}")
        if not isinstance(options, dict):
            raise ValueError(f"options must be a dict, got {type(options).__name__}")
        if name == "lbfgs":
            unknown = set(options) - set(LBFGS_OPTIONS)
            if unknown:
                raise ValueError(f"unknown lbfgs options {sorted(unknown)}; it takes "
                                 f"{' and '.join(LBFGS_OPTIONS)}")
            for k, v in options.items():
                positive_int(v, f"options[{k!r}]")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {type(callback).__name__}")
