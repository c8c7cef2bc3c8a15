"""The one home of jaxnn's argument rules and the constants they share.

Every entry point (``cost``/``backprop``/..., ``fit``, ``fit_many``, ``fit_stream``, the
estimator, the sweeps and the command line) checks its arguments with the functions here, so
one rule gives one outcome and one message everywhere. Each raises ``ValueError`` naming the
argument, what was wrong and what is accepted (a value of the wrong type is a ``ValueError``
too, so one ``except ValueError`` catches every bad argument value; ``TypeError`` is left to
calls Python itself refuses, as an unknown keyword, or a keyword given with its earlier name).

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
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.defaults import GRADCHECK_EPS, INIT_EPSILON, LEARNING_RATES, MAX_SEED
from jaxnn.names import DTYPES, GRADS, ORDERS, counted
from jaxnn.rules import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    STEP,
    is_bounded,
    is_seed,
    is_step,
    number_words,
    seed_range,
)

Array = jax.Array
Params = tuple[Array, ...]


# --- the problem's arrays: params, X, targets, and their values ---------------------------------


def is_traced(*xs: object) -> bool:
    """True if any argument is a JAX tracer (we are inside a transformation)."""
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def as_array(x: object) -> object:
    """``x`` itself when it is a numpy or JAX array (or traced); anything else (a list, a
    pandas DataFrame or Series, another array-like) through ``np.asarray``, so that the checks
    read a real array's shape and dtype."""
    return x if isinstance(x, np.ndarray | jax.Array) else np.asarray(x)


def check_real(x: object, name: str) -> None:
    """``x`` (with a ``dtype``) holds real numbers: integers, booleans or floats; anything else
    (text, objects, complex numbers) is a ``ValueError`` naming ``name`` and the dtype."""
    dtype = x.dtype
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
        raise ValueError(f"{name} must be numeric, got dtype {dtype}")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {dtype}")


def real_floats(x: object, name: str) -> Array | np.ndarray:
    """``x`` as an array of real floats: checked by :func:`check_real` (complex numbers are
    refused), integers and booleans converted to JAX's default float, floats kept. A Python
    number stays weakly typed, taking the dtype of what it later meets, as in JAX."""
    if isinstance(x, bool | int | float):
        return jnp.asarray(float(x))
    x = as_array(x)
    check_real(x, name)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else jnp.asarray(x, float_dtype())


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
        check_real(t, f"{name}[{i}] (Theta{i + 1})")
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
    X = as_array(X)
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
    check_real(X, name)
    if not is_traced(X) and jnp.issubdtype(X.dtype, jnp.inexact):
        checked_once(X, "finite", lambda: check_finite(X, name))
    return X


def check_finite(x: Array | np.ndarray, name: str,
                 hint: str = "clean or impute them first") -> None:
    """Every entry of the concrete ``x`` finite, or a ValueError naming ``name``: examples and
    weights, given in memory or read from a file."""
    if not all_finite_values(x):
        raise ValueError(f"{name} contains NaN or infinite values; {hint}")


def check_finite_params(params: Params) -> None:
    """Every weight finite (when concrete; a traced network passes): NaN or infinite weights
    make every cost, gradient and prediction meaningless. One reduction per ``Theta``, once per
    ``jax.Array`` (:func:`checked_once`)."""
    for i, theta in enumerate(params):
        if not is_traced(theta) and jnp.issubdtype(theta.dtype, jnp.inexact):
            checked_once(theta, "finite", lambda t=theta, i=i: check_finite(
                t, f"params[{i}]", "start from finite weights, e.g. jaxnn.init_params"))


def on_host(x: object) -> bool:
    """Whether numpy reads ``x`` where it lies: a numpy array, or a ``jax.Array`` on this
    process's CPU devices. A value check then runs in numpy at once; a jitted reduction would
    first be compiled, per shape (30-60 ms each, a tenth of ``fit``'s first call on 2 cores).
    An array spread over several processes is checked by the reduction."""
    return isinstance(x, np.ndarray) or (isinstance(x, jax.Array) and x.is_fully_addressable
                                         and all(d.platform == "cpu" for d in x.devices()))


def all_finite_values(x: Array | np.ndarray) -> bool:
    """Whether every entry of the concrete ``x`` is finite: in numpy where it reads ``x``
    (:func:`on_host`), else one jitted reduction."""
    return bool(np.isfinite(np.asarray(x)).all()) if on_host(x) else bool(_all_finite(x))


@jax.jit
def _all_finite(x: Array) -> Array:  # on an accelerator: one reduction, one scalar back
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


#: the scalar types a :class:`PassedCalls` setting may hold by value (immutable, hashable)
PLAIN_SCALARS = (int, float, np.float32, np.float64)


class PassedCalls:
    """The calls whose checks passed, remembered by the identity of their arrays.

    ``jax.Array``s are immutable, so a call given the very arrays of a call that passed, with
    equal settings, passes again: :meth:`get` gives back what :meth:`put` stored for it, and
    the caller skips its checks. The checks of a public ``cost``/``backprop`` call are about
    270 small Python calls (50 us alone); right after an XLA call they run several times slower
    while XLA's worker threads still spin, so on 2 cores a ``backprop`` at m = 5000 took 0.3-0.45
    ms (15-20%) more than its compiled program (benchmarks/RESULTS.md, 2026-12-04, night).

    Only concrete ``jax.Array``s count (numpy arrays can change in place: always checked); they
    are referenced weakly (freed as usual; a new array given a freed one's ``id`` is told apart)
    and the stored values must not hold them. At most ``size`` calls, the oldest forgotten."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._calls: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(arrays: Sequence[object], settings: tuple) -> tuple | None:
        if not all(isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer)
                   for a in arrays):
            return None
        return tuple(map(id, arrays)), settings

    def get(self, arrays: Sequence[object], settings: tuple) -> object | None:
        """What :meth:`put` stored for these same arrays and equal ``settings``, or None."""
        key = self._key(arrays, settings)
        hit = None if key is None else self._calls.get(key)
        if hit is None or any(ref() is not a for ref, a in zip(hit[0], arrays, strict=True)):
            return None
        return hit[1]

    def put(self, arrays: Sequence[object], settings: tuple, value: object) -> None:
        """Remember that the call with ``arrays`` and ``settings`` passed, with ``value``."""
        key = self._key(arrays, settings)
        if key is None:
            return
        refs = tuple(weakref.ref(a) for a in arrays)
        with self._lock:
            self._calls.pop(key, None)
            while len(self._calls) >= self._size:
                self._calls.pop(next(iter(self._calls)))
            self._calls[key] = (refs, value)


def _min_max(y: Array | np.ndarray) -> tuple:
    """``y``'s smallest and largest entries: in numpy where it reads ``y`` (:func:`on_host`),
    else one jitted reduction; ``(0, 0)`` for an empty ``y`` (no label out of any range)."""
    if np.size(y) == 0:
        return 0, 0
    if on_host(y):
        y = np.asarray(y)
        return y.min(), y.max()
    return _label_range(y)


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
    y = as_array(y)
    traced = is_traced(y)
    if len(y.shape) == 1:
        check_label_count(y.shape[0], m, name)
        check_class_count(K, f"{name} holds class labels, which make one-hot targets of "
                          f"K={K} entries each", "pass a target matrix (m, K) instead")
        if not jnp.issubdtype(y.dtype, jnp.integer):
            if traced or not jnp.issubdtype(y.dtype, jnp.floating):
                raise ValueError(
                    f"{name} must hold whole-number class labels 0..{K - 1}, got dtype {y.dtype}"
                )
            yn = np.asarray(y)
            check_whole_labels(yn, name, f"0..{K - 1}")
            check_label_range(yn, K, name)  # before the cast: 1e12 must not wrap around
            y = yn.astype(np.int32)
        if not traced:
            checked_once(y, f"labels<{K}", lambda: check_label_range(y, K, name))
        return y
    if len(y.shape) == 2:
        if y.shape != (m, K):
            column = (" (a column of class labels, as the course's .mat files hold them? pass "
                      f"{name}.ravel())") if y.shape == (m, 1) and K > 1 else ""
            raise ValueError(
                f"{name} as a target matrix must have shape (m, K) = ({m}, {K}), "
                f"got {tuple(y.shape)}{column}"
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


#: why labels 1..K are out of range, for a label vector from a course file
COURSE_LABELS_HINT = ("course files number classes 1..K: load them with "
                      "jaxnn.datasets.load_mat, which maps label k to k mod K")


def check_label_range(y: Array | np.ndarray, K: int, name: str,
                      hint: str | None = COURSE_LABELS_HINT) -> None:
    """Class labels ``y`` (host or device) for a network of ``K`` outputs: in ``0..K-1``."""
    lo, hi = _min_max(y)
    if lo < 0 or hi > K - 1:
        raise ValueError(
            f"{name} has labels in {int(lo)}..{int(hi)} but the network has K={K} "
            f"outputs, so labels must lie in 0..{K - 1}" + (f" ({hint})" if hint else "")
        )


def _check_target_values(y: Array | np.ndarray, name: str) -> None:
    lo, hi = _min_max(y)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values; targets must lie in [0, 1]")
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} as a target matrix must hold values in [0, 1] (one-hot rows "
                         f"or probabilities), got values in {float(lo):g}..{float(hi):g}")


# --- lam, and what the training dtype can hold ------------------------------------------------


def check_lam(lam: object, name: str = "lam") -> object:
    """``lam`` must be a real, finite, non-negative scalar (its value checked when concrete;
    a traced ``lam`` inside a user's ``jit`` passes through)."""
    if is_traced(lam):
        if len(lam.shape) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {tuple(lam.shape)}")
        return lam
    if hasattr(lam, "shape") and len(lam.shape) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(lam.shape)}")
    value = check_number(lam, name, low=0.0)
    # an array keeps its dtype; any other real number (a Fraction, an int past int64) goes on
    # as the float it was checked as, which every computation can take
    return lam if hasattr(lam, "shape") else value


#: how to reach float64: in training functions, and in the others (cost, backprop, predict...)
TRAIN_IN_FLOAT64 = "train in float64 (dtype='float64')"
COMPUTE_IN_FLOAT64 = "compute in float64 (float64 arrays inside `with jaxnn.x64():`)"


def overflow_hint(dtype: object, float64: str = TRAIN_IN_FLOAT64) -> str:
    """What to do about a value that the computation's ``dtype`` cannot hold; ``float64`` says
    how to reach float64 from where the value was given."""
    return (f"scale it down, or {float64}" if np.dtype(dtype) == np.float32
            else "pass finite values")


def check_X_representable(X: Array | np.ndarray, dtype: object,
                          float64: str = TRAIN_IN_FLOAT64, name: str = "X") -> None:
    """``X`` (finite, checked earlier) cast to the computation's ``dtype`` must stay finite, as
    ``lam`` and the weights must: data that overflow float32 can only compute NaN. ``X`` may be
    given cast already or not (a wider float on the host: its largest magnitude is compared)."""
    if is_traced(X) or np.size(X) == 0:  # values unknown inside a user's jit; none at all
        return
    if np.dtype(X.dtype) != np.dtype(dtype) and jnp.issubdtype(X.dtype, jnp.floating):
        if np.finfo(X.dtype).max <= np.finfo(dtype).max:
            return
        Xn = np.asarray(X)
        finite = max(-float(Xn.min()), float(Xn.max())) <= float(np.finfo(dtype).max)
    else:
        finite = all_finite_values(X)
    if not finite:
        raise ValueError(f"{name} has values that overflow {np.dtype(dtype).name} (the largest "
                         f"float32 is 3.4e38); {overflow_hint(dtype, float64)}")


def check_params_representable(params: Params, dtype: object,
                               float64: str = TRAIN_IN_FLOAT64) -> None:
    """Each ``Theta`` (finite, checked earlier) wider than the computation's ``dtype`` must
    stay finite in it, as ``X`` must: float64 weights past float32's range compute NaN."""
    for i, theta in enumerate(params):
        if np.dtype(theta.dtype) != np.dtype(dtype):
            check_X_representable(theta, dtype, float64, f"params[{i}]")


def check_representable(values: object, name: str, dtype: object,
                        float64: str = TRAIN_IN_FLOAT64) -> None:
    """Every one of ``values`` (finite numbers, checked before) finite in ``dtype`` too: a
    penalty past float32's largest value (3.4e38) trains to inf or NaN. The message names
    ``name=value``, or ``name value`` for a command-line option (``--values``)."""
    arr = np.asarray(values, np.float64).ravel()
    with np.errstate(over="ignore"):
        cast = arr.astype(dtype)
    bad = np.flatnonzero(~np.isfinite(cast))
    if bad.size:
        v = float(arr[bad[0]])
        said = f"{name} {v:g}" if name.startswith("--") else f"{name}={v!r}"
        raise ValueError(f"{said} is not representable in {np.dtype(dtype).name} (it "
                         f"overflows to {float(cast[bad[0]])}); {overflow_hint(dtype, float64)}")


def check_step_fits(learning_rate: object, dtype: object) -> None:
    """A learning rate given as a number (not a schedule, not None) must not round to 0 in the
    training ``dtype``: every update would then be 0 and nothing would train."""
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
        with np.errstate(under="ignore"):
            zero = learning_rate != 0 and np.asarray(learning_rate, dtype) == 0
        if zero:
            wider = f", or {TRAIN_IN_FLOAT64}" if np.dtype(dtype) == np.float32 else ""
            raise ValueError(f"learning_rate={learning_rate!r} rounds to 0 in "
                             f"{np.dtype(dtype).name}, so nothing would train; pass a larger "
                             f"one{wider}")


def check_finite_start(theta0: np.ndarray, dtype: object, name: str = "params",
                       maker: str = "jaxnn.init_params") -> None:
    """Initial weights (``theta0``, already in the training ``dtype``; one row per network
    of a batch) must be finite: a training from NaN or infinite weights can only end in NaN."""
    finite = np.isfinite(theta0)
    bad = int(finite.size - np.count_nonzero(finite))
    if bad:
        rows = np.flatnonzero(~finite.all(axis=-1)) if theta0.ndim > 1 else ()
        which = f" (networks {rows[:5].tolist()}{', ...' if len(rows) > 5 else ''})" \
            if len(rows) else ""
        raise ValueError(f"{name} hold{'' if name.endswith('s') else 's'} {bad} NaN or "
                         f"infinite value(s) in {np.dtype(dtype).name}{which}; start from "
                         f"finite weights, e.g. {maker}")


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
    shown = value.item() if isinstance(value, np.generic) else value  # -2, not np.int64(-2)
    try:
        v = float(value) if _is_real_number(value) else math.nan
    except OverflowError:  # an int past the largest float (10**400): not a finite number
        v = math.inf
    if not is_bounded(v, low, strict):
        raise ValueError(f"{name} must be {number_words(low, strict)}, got {shown!r}")
    return v


def check_order(order: object, name: str = "order") -> str:
    """How flattened images are ordered: ``"C"`` (row-major) or ``"F"`` (column-major)."""
    if order not in ORDERS:
        raise ValueError(f"{name} must be 'C' (row-major) or 'F' (column-major), got {order!r}")
    return order


def check_flag(value: object, name: str) -> bool:
    """``True`` or ``False`` (Python or numpy): a string such as ``"no"`` is refused, never
    read by its truth value."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def positive_int(value: object, name: str) -> int:
    """A positive integer (Python or numpy int; not bool, not a float)."""
    return _whole(value, name, 1, POSITIVE_INT)


def non_negative_int(value: object, name: str) -> int:
    """An integer ``>= 0`` (Python or numpy int; not bool, not a float): an offset, a count
    that may be zero."""
    return _whole(value, name, 0, NON_NEGATIVE_INT)


def _whole(value: object, name: str, low: int, words: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) \
            or value < low:
        shown = value.item() if isinstance(value, np.generic) else value  # -1, not np.int64(-1)
        raise ValueError(f"{name} must be {words}, got {shown!r}")
    return int(value)


def check_options_dict(options: object) -> dict:
    """A method's ``options``: a dict (its names and values are the method's to check)."""
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict, got {type(options).__name__}")
    return options


def check_count_options(options: object, known: Sequence[str], method: str) -> dict[str, int]:
    """A compiled loop's ``options``: a dict of positive integer counts, each named in
    ``known``."""
    unknown = sorted(set(check_options_dict(options)) - set(known))
    if unknown:
        raise ValueError(f"unknown {method} options {unknown}; it takes {', '.join(known)}")
    return {k: positive_int(v, f"options[{k!r}]") for k, v in options.items()}


def check_epsilon(epsilon: object, dtype: object) -> float:
    """The half-width of a uniform initialization in ``[-epsilon, epsilon]``: a finite number
    > 0 whose span ``2 * epsilon`` the weights' ``dtype`` holds (else the draw is infinite)."""
    eps = check_number(epsilon, "epsilon", low=0.0, strict=True)
    most = float(np.finfo(np.dtype(dtype)).max) / 2
    if eps > most:
        raise ValueError(f"epsilon={eps!r} is too large for {np.dtype(dtype).name} weights "
                         f"(the draw spans 2 * epsilon): at most {most:.3g}; the course "
                         f"uses {INIT_EPSILON:g}")
    return eps


def check_eps(eps: object) -> float:
    """The step of a central difference (:data:`jaxnn.rules.STEP`)."""
    value = check_number(eps, "eps", low=0, strict=True)
    if not is_step(value):
        raise ValueError(f"eps must be {STEP}, got {value!r}; the course uses {GRADCHECK_EPS:g}")
    return value


def check_chunk_size(chunk_size: object, allow_none: bool = False) -> int | None:
    """Perturbations per compiled call of a numerical gradient: a positive integer (or None,
    the default, where ``allow_none``)."""
    if allow_none and chunk_size is None:
        return None
    return positive_int(chunk_size, "chunk_size")


def check_choice(value: object, choices: Sequence[str], name: str, *, by: str | None = None,
                 alternative: str | None = None) -> str:
    """``value`` must be one of ``choices`` (strings). The error names the entry point ``by``
    when several take ``name`` with different choices, and an ``alternative`` to the names."""
    if not isinstance(value, str) or value not in choices:
        given = f"={value!r}" if isinstance(value, str) else f" of type {type(value).__name__}"
        raise ValueError(f"{name}{given} is not supported{f' by {by}' if by else ''}; "
                         f"choose one of {list(choices)}"
                         f"{f' or {alternative}' if alternative else ''}")
    return value


#: why a method does without a convergence tolerance
ALL_ITERATIONS = "it runs all iterations"


def refuse_unused(method: str, used_by: str | None = None, *, why: str | None = None,
                  **values: object) -> None:
    """Refuse the arguments that ``method`` would silently ignore: the first of ``values``
    given (not None) is a ValueError naming it and the methods that use it (``used_by``), or
    ``why`` the method does without it."""
    for name, value in values.items():
        if value is not None:
            verb = "are" if name.endswith("s") else "is"
            users = f"only used by {used_by}, not" if used_by else "not used"
            raise ValueError(f"{name} {verb} {users} by method {method!r}"
                             f"{f' ({why})' if why else ''}")


def check_grad(grad: object) -> str:
    """``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``)."""
    return check_choice(grad, GRADS, "grad")


def check_seed(seed: object, name: str = "seed", *, numpy: bool = False) -> int:
    """An integer seed: 64-bit signed for a JAX key (``jax.random.key``), non-negative
    (``0..2**63 - 1``) where it seeds numpy's generator (``numpy=True``), which refuses
    negative seeds."""
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer) \
            or not is_seed(int(seed), numpy):
        raise ValueError(f"{name} must be {seed_range(numpy)[1]}, got {seed!r}")
    return int(seed)


def check_seeds(seed: object, B: int, name: str = "seed") -> np.ndarray:
    """``B`` seeds, one per network: an int ``s`` gives ``s, s + 1, ..., s + B - 1``, or a
    sequence of ``B`` ints."""
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool | np.bool_):
        s = check_seed(seed, name)
        if not is_seed(s + B - 1):
            raise ValueError(f"{name}={s} gives the {B} networks the seeds {s}..{s + B - 1}, "
                             f"beyond 2**63 - 1; pass a seed of at most {MAX_SEED - B + 1}"
                             f" or a sequence of {B} seeds")
        return s + np.arange(B, dtype=np.int64)
    if not isinstance(seed, Sequence | np.ndarray) or isinstance(seed, str):
        check_seed(seed, name)  # a single seed that is not an int: the seed rule says why
    arr = np.asarray(seed)
    if arr.shape != (B,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an int or {B} ints (one per network), got {seed!r}")
    for s in arr:
        check_seed(int(s), name)
    return arr.astype(np.int64)


def check_dtype(dtype: object, allow_none: bool = True) -> bool | None:
    """The training precision: None (follow the inputs; where ``allow_none``), False (float32)
    or True (float64)."""
    if dtype is None and allow_none:
        return None
    try:
        dt = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        choices = " or ".join(map(repr, DTYPES))
        raise ValueError(f"dtype must be {'None, ' if allow_none else ''}{choices}, got {dtype!r}")
    return dt == np.float64


def check_tol(tol: object) -> float | None:
    """A convergence tolerance: None (the method's default) or a number >= 0."""
    return None if tol is None else check_number(tol, "tol", low=0.0)


def check_learning_rate(learning_rate: object, method: str) -> float | Callable:
    """The learning rate of ``method`` (``"adam"``/``"sgd"``): its default for None, a
    positive finite number, or an optax schedule (a callable of the step count)."""
    if learning_rate is None:
        return LEARNING_RATES[method]
    if callable(learning_rate):
        check_scalar_function(learning_rate, "learning_rate", "a number or an optax schedule "
                              "(a function of the step count returning the rate)",
                              jax.ShapeDtypeStruct((), jnp.int32))
        return learning_rate
    if not _is_real_number(learning_rate) or not 0 < float(learning_rate) < math.inf:
        raise ValueError(f"learning_rate must be a positive number or an optax schedule, "
                         f"got {learning_rate!r}")
    return float(learning_rate)


def check_scalar_function(f: Callable, name: str, what: str, *args: object) -> None:
    """``f(*args)`` (``args`` abstract: shapes and dtypes) returns one real number, checked by
    tracing it once (``jax.eval_shape``, nothing computed); a ``ValueError`` naming ``name``
    and ``what`` it must be otherwise."""
    try:
        out = jax.eval_shape(f, *args)
    except Exception as e:  # noqa: BLE001 - the caller's function: said in our words, chained
        raise ValueError(f"{name} must be {what}; calling it on abstract values failed with "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                         ) from e
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or not (jnp.issubdtype(dtype, jnp.floating)
                           or jnp.issubdtype(dtype, jnp.integer)):
        got = (f"an array of shape {shape} and dtype {dtype}" if shape is not None
               else type(out).__name__)
        raise ValueError(f"{name} must be {what} (one real number); it returned {got}")


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


# --- label vectors: one rule for the core functions, the command's files and course files ----


def check_label_count(n: int, m: int, name: str = "y", of: str | None = None,
                      where: str = "") -> None:
    """One label per example: ``n`` labels where ``of`` (default ``X has m rows``) says ``m``."""
    if n != m:
        raise ValueError(f"{where}{name} has {n} label{'s' * (n != 1)} but "
                         f"{of or f'X has {m} rows'}; they must match")


def check_whole_labels(y: np.ndarray, name: str = "y", classes: str = "0..K-1",
                       where: str = "") -> None:
    """Host-side labels hold real whole numbers: integers or integer-valued finite floats
    (refused: booleans, as the core functions refuse them, complex, strings, objects, NaN, inf
    and fractions, with examples)."""
    if y.dtype.kind not in "iuf":
        raise ValueError(f"{where}{name} must hold whole-number class labels {classes}, got "
                         f"dtype {y.dtype}")
    if y.dtype.kind == "f":
        bad = ~(np.isfinite(y) & (y == np.round(y)))
        if bad.any():
            raise ValueError(f"{where}{name} must hold whole-number class labels {classes}; "
                             f"found e.g. {y[bad][:5].tolist()}")


def label_vector(y: object, name: str = "y", m: int | None = None, of: str | None = None,
                 where: str = "", classes: str = "0..K-1") -> np.ndarray:
    """Host-side labels as a vector of ``m`` whole numbers (an ``(m, 1)`` or ``(1, m)`` column
    or row is flattened), in their own dtype: each caller checks its range before a cast."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{where}{name} must be a vector of class labels, shape "
                         f"({'m' if m is None else m},), got shape {y.shape}")
    if m is not None:
        check_label_count(y.shape[0], m, name, of, where)
    check_whole_labels(y, name, classes, where)
    return y


def check_labels(y: object, name: str = "y", m: int | None = None,
                 of: str | None = None) -> np.ndarray:
    """Host-side class labels: a vector of ``m`` whole numbers ``>= 0`` (:func:`label_vector`),
    returned as int64."""
    y = label_vector(y, name, m, of)
    if y.size and y.min() < 0:
        raise ValueError(f"{name} has negative labels; labels are classes 0..K-1")
    if y.size:
        check_class_count(int(y.max()) + 1, f"{name} has a label {int(y.max())}, which would make "
                          f"{int(y.max()) + 1} classes", "labels are 0..K-1")
    return y.astype(np.int64)


#: the most classes a label vector may imply (a one-hot target row has K entries)
MAX_CLASSES = 100_000


def check_classes(K: object, name: str = "K") -> int:
    """A number of classes that labels may imply: a positive integer up to ``MAX_CLASSES``.

    Labels become one-hot rows of ``K`` entries, so a label such as ``1e12`` (a typo, an id
    column) would ask for ``m * 1e12`` numbers; this is the rule that refuses it."""
    K = positive_int(K, name)
    check_class_count(K, f"{name}={K} classes", "labels are classes 0..K-1")
    return K


def check_class_count(K: int, what: str, hint: str) -> None:
    """The one bound on the classes labels may imply, ``K <= MAX_CLASSES``; ``what`` says
    where ``K`` came from and ``hint`` what to do instead."""
    if K > MAX_CLASSES:
        raise ValueError(f"{what}; jaxnn takes at most {MAX_CLASSES} classes from labels ({hint})")


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


# --- input files ----------------------------------------------------------------------------


def check_path(path: object, name: str = "path") -> None:
    """``path`` is a file path: a ``str`` or an ``os.PathLike`` (``None``, numbers and open
    files are a ``ValueError`` naming ``name``, not ``os``'s ``TypeError``)."""
    if not isinstance(path, str | os.PathLike) or isinstance(os.fspath(path), bytes):
        shown = repr(path) if path is None or isinstance(path, int | float | bytes) else \
            f"a {type(path).__name__}"
        raise ValueError(f"{name} must be a file path (a str or pathlib.Path), got {shown}")


def check_input_file(path: object) -> int:
    """``path`` must name a regular file that can be read; returns its size in bytes.

    Problems of the file system stay ``OSError`` naming the path (missing: ``FileNotFoundError``,
    a directory: ``IsADirectoryError``, a symlink loop: ``OSError`` ELOOP, ...); a FIFO, socket
    or device (which would block or never end) is a ``ValueError``, as a ``path`` that is not a
    path (:func:`check_path`)."""
    check_path(path)
    info = os.stat(path)  # OSError with the path named
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file (a FIFO, socket or device); pass a file")
    return int(info.st_size)


# --- devices --------------------------------------------------------------------------------


def _each_once(devices: list) -> list:
    twice = [d for i, d in enumerate(devices) if d in devices[:i]]
    if twice:  # JAX fails on them deep inside (an empty AssertionError)
        raise ValueError(f"devices lists {twice[0]} more than once; each device holds one "
                         "share of the examples: list each once")
    return devices


def check_devices(devices: object, axis_name: str) -> Any:
    """A 1-D ``jax.sharding.Mesh`` from ``devices``: a count ``N`` (the first ``N`` of
    ``jax.devices()``), a list of ``jax.Device``, or a 1-D ``Mesh`` (returned as is)."""
    from jax.sharding import Mesh

    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(f"devices: the mesh must be 1-D, got axes {devices.axis_names}")
        _each_once(list(devices.devices.flat))
        return devices
    available = jax.devices()
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if devices < 1:
            raise ValueError(f"devices must be a positive count of devices, got {devices}")
        if devices > len(available):
            are = "is" if len(available) == 1 else "are"
            raise ValueError(f"devices={devices} but {counted(len(available), 'JAX device')} "
                             f"{are} available (on CPU, "
                             "XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX "
                             "starts makes N)")
        devs = available[: int(devices)]
    elif isinstance(devices, Sequence) and not isinstance(devices, str) and devices and all(
            isinstance(d, jax.Device) for d in devices):
        devs = _each_once(list(devices))
    else:
        raise ValueError(f"devices must be a positive count, a list of jax devices or a 1-D "
                         f"Mesh, got {devices!r}")
    return Mesh(np.array(devs), (axis_name,))
