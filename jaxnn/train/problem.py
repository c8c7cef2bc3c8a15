"""What :func:`jaxnn.fit` does before training: its arguments checked, the problem on the device.

The problem is prepared once per call: ``theta0`` unrolled on the host (numpy: no per-shape
compilation), ``X`` and the one-hot targets ``Y`` placed on the device (or sharded over the
example axis of a device mesh), ``lam`` a device scalar in the training dtype, and the network
described by one :class:`jaxnn.spec.NetSpec`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from jaxnn.checks import (
    ALL_ITERATIONS,
    check_callback,
    check_choice,
    check_count_options,
    check_devices,
    check_grad,
    check_options_dict,
    check_representable,
    check_tol,
    check_X_representable,
    on_host,
    positive_int,
    refuse_unused,
)
from jaxnn.losses import prepare_problem, targets
from jaxnn.memory import FIT_PARAM_COPIES, SMALLER_TRAINING, check_memory, loop_bytes
from jaxnn.model import start_vector
from jaxnn.names import COMPILED_METHODS, METHODS, OPTAX_ALTERNATIVE, SCIPY_METHODS
from jaxnn.precision import training_dtype
from jaxnn.spec import NetSpec

LBFGS_OPTIONS = ("memory_size", "max_linesearch_steps")
MAX_SEGMENT = 100_000  # iterations (epochs) per compiled segment
BATCH_AXIS = "batch"  # the mesh axis over examples for data parallelism


@dataclass
class Problem:
    """The validated problem: ``theta0`` on the host, the data on the device(s)."""

    spec: NetSpec
    theta0: np.ndarray  # (n,) Octave order, training dtype
    X: jax.Array  # (m, n_0)
    Y: jax.Array  # (m, K) targets
    lam: jax.Array  # scalar
    replicated: Any = None  # the sharding for theta when data-parallel, else None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.X.dtype)

    def unravel(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """``theta`` back to host arrays ``(Theta1, ..., ThetaL)`` in the training dtype."""
        return self.spec.unravel(np.asarray(theta, self.dtype))

    def put(self, theta: np.ndarray) -> jax.Array:
        """``theta`` on the device (replicated over the mesh when data-parallel)."""
        return jax.device_put(np.asarray(theta, self.dtype), self.replicated)


def make_problem(params, X, y, lam, activation: str, output: str, grad: str,
                 want64: bool | None, devices) -> Problem:
    """Validate (as :func:`jaxnn.cost` does) and place the problem; see :func:`jaxnn.fit`."""
    params, X, y, lam, dtype = prepare_problem(params, X, y, lam, activation, output, None)
    dtype = training_dtype(want64, dtype)
    rows, replicated = (None, None) if devices is None else _shardings(devices, X.shape[0])
    spec = NetSpec((params[0].shape[1] - 1, *(t.shape[0] for t in params)), activation,
                   output, grad)
    check_representable(lam, "lam", dtype)
    theta0 = start_vector(params, dtype)
    # numpy casts what it reads where it lies, on the default device (_in_numpy): jnp's casts
    # and one_hot compile a program per shape; device_put, not jnp.asarray (a copy compiled)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        if isinstance(X, jax.Array) and (X.dtype == dtype or not _in_numpy(X)):
            X = X if X.dtype == dtype else X.astype(dtype)
        else:
            X = np.asarray(X, dtype)
        lam_t = np.asarray(lam, dtype)
    check_X_representable(X, dtype)
    K = spec.sizes[-1]
    if isinstance(y, jax.Array) and not _in_numpy(y):
        Y = targets(y, K, dtype)
    else:
        y = np.asarray(y)
        Y = np.eye(K, dtype=dtype)[y] if y.ndim == 1 else y.astype(dtype)
    return Problem(spec, theta0, jax.device_put(X, rows), jax.device_put(Y, rows),
                   jax.device_put(lam_t, replicated), replicated)


def check_loop_memory(prob: Problem, method: str) -> None:
    """A problem whose compiled training loop (``method``'s) cannot fit in memory is a
    ``ValueError`` (the loop holds more of each layer's activations than one evaluation,
    ``prepare``'s check, and the optimizer's vectors: :data:`jaxnn.memory.FIT_PARAM_COPIES`)."""
    sizes, m = prob.spec.sizes, prob.X.shape[0]
    check_memory(loop_bytes(sizes, m, prob.dtype, param_copies=FIT_PARAM_COPIES[method]),
                 f"training {'-'.join(map(str, sizes))} on {m:,} examples in a compiled loop",
                 hint=SMALLER_TRAINING)


def _in_numpy(x: jax.Array) -> bool:
    """Whether ``make_problem`` prepares ``x`` in numpy: on this process's CPU devices
    (:func:`jaxnn.checks.on_host`) and not committed to one (a committed array keeps its
    device, and ``fit`` refuses it as before if the problem lies elsewhere)."""
    return on_host(x) and not x.committed


def _shardings(devices, m: int):
    """``(rows, replicated)``: examples split over a 1-D mesh, and whole copies."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = check_devices(devices, BATCH_AXIS)
    if m % mesh.size:
        raise ValueError(f"X has {m} rows, which {mesh.size} devices cannot share evenly; use "
                         f"a device count that divides m, or drop {m % mesh.size} rows")
    return (NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])),
            NamedSharding(mesh, PartitionSpec()))


def callback_stops(callback, iteration: int, cost: float, params) -> bool:  # noqa: ANN001
    """Call the user's ``callback(iteration, cost, params)``; True when it asks to stop (it
    returned something true). An answer that is neither true nor false (an array of several
    values) is a ``ValueError`` saying what to return."""
    answer = callback(iteration, cost, params)
    try:
        return bool(answer)
    except (ValueError, TypeError):  # numpy's "truth value of an array ... is ambiguous"
        got = (f"an array of shape {tuple(answer.shape)}" if hasattr(answer, "shape")
               else type(answer).__name__)
        raise ValueError(f"callback must return True to stop the training, or None or False to "
                         f"go on; it returned {got}") from None


def check_method(method: object) -> str:
    """The method's name (``"optax"`` for an optax ``GradientTransformation``)."""
    optax = sys.modules.get("optax")  # not imported yet: not an optax optimizer either
    if optax is not None and isinstance(method, optax.GradientTransformation):
        return "optax"
    return check_choice(method, METHODS, "method", alternative=OPTAX_ALTERNATIVE)


def check_options(name: str, *, grad, tol, learning_rate, batch_size, segment, options,
                  callback) -> dict[str, Any]:
    """Each option is checked, and refused by the methods that would silently ignore it.
    Returns the compiled loop's options (lbfgs: ``memory_size``, ``max_linesearch_steps``)."""
    check_grad(grad)
    check_callback(callback)
    minibatch = name not in (*SCIPY_METHODS, *COMPILED_METHODS)
    if minibatch or name == "fmincg":
        refuse_unused(name, why=ALL_ITERATIONS, tol=tol)
    check_tol(tol)
    if not minibatch:
        refuse_unused(name, "adam/sgd", learning_rate=learning_rate, batch_size=batch_size)
    if batch_size is not None:
        positive_int(batch_size, "batch_size")
    if segment is not None:
        if name in SCIPY_METHODS:
            refuse_unused(name, "the compiled methods", segment=segment)
        if positive_int(segment, "segment") > MAX_SEGMENT:
            raise ValueError(f"segment must be at most {MAX_SEGMENT:,} (a compiled segment keeps "
                             f"a cost per iteration on the device), got {segment:,}")
    if options is None:
        return {}
    if minibatch or name == "fmincg":
        refuse_unused(name, options=options)
    if name == "lbfgs":
        return check_count_options(options, LBFGS_OPTIONS, name)
    return check_scipy_options(name, check_options_dict(options))


# options scipy.optimize.minimize accepts per method, besides maxiter (given by fit's own
# argument) and callback/disp (fit's own); anything else scipy would ignore with a warning
SCIPY_OPTIONS = {
    "L-BFGS-B": {"maxcor": int, "ftol": float, "gtol": float, "eps": float, "maxfun": int,
                 "maxls": int, "iprint": int, "finite_diff_rel_step": float},
    "TNC": {"eps": float, "scale": None, "offset": None, "maxCGit": int, "eta": float,
            "stepmx": float, "accuracy": float, "minfev": float, "ftol": float, "xtol": float,
            "gtol": float, "rescale": float, "maxfun": int, "finite_diff_rel_step": float},
    "CG": {"gtol": float, "norm": float, "eps": float, "return_all": bool,
           "finite_diff_rel_step": float, "c1": float, "c2": float},
    "BFGS": {"gtol": float, "norm": float, "eps": float, "return_all": bool,
             "finite_diff_rel_step": float, "xrtol": float, "c1": float, "c2": float,
             "hess_inv0": None},
}


def check_scipy_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """scipy ``options`` for ``method``: known names only (``maxiter`` is ``fit``'s own
    argument), counts positive and tolerances finite and >= 0."""
    from jaxnn.checks import check_number

    known = SCIPY_OPTIONS[method]
    out = {}
    for k, v in options.items():
        if k == "maxiter":
            raise ValueError("options['maxiter']: pass maxiter= to fit instead")
        if k not in known:
            raise ValueError(f"unknown {method} option {k!r}; scipy's {method} takes "
                             f"{sorted(known)}")
        kind = known[k]
        if kind is int and k != "iprint":
            v = positive_int(v, f"options[{k!r}]")
        elif kind is float:
            v = check_number(v, f"options[{k!r}]", low=0.0)
        out[k] = v
    return out
