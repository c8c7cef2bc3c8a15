"""Argument checks shared by the public functions.

Shape checks always run (shapes are static, even under ``jit``). Value checks (finite ``X``,
labels in ``0..K-1``) need concrete values, so they run on ordinary calls and are skipped when
the function is being traced inside a user's ``jit``/``vmap``/``grad``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

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

    Integer-valued float labels are accepted and cast to int32. Label range and finiteness are
    checked when ``y`` is concrete."""
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    traced = is_traced(y)
    if len(y.shape) == 1:
        if y.shape[0] != m:
            raise ValueError(
                f"{name} has {y.shape[0]} labels but X has {m} rows; they must match"
            )
        if not jnp.issubdtype(y.dtype, jnp.integer):
            if traced or not jnp.issubdtype(y.dtype, jnp.number):
                raise ValueError(
                    f"{name} must hold integer class labels 0..{K - 1}, got dtype {y.dtype}"
                )
            yn = np.asarray(y)
            if not (np.isfinite(yn).all() and (yn == np.round(yn)).all()):
                raise ValueError(
                    f"{name} must hold integer class labels 0..{K - 1}; it has non-integer values"
                )
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
        if not traced and jnp.issubdtype(y.dtype, jnp.inexact):
            checked_once(y, "finite", lambda: _check_finite(y, name))
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


def check_lam(lam: object) -> object:
    """``lam`` must be a finite, non-negative scalar (checked when concrete)."""
    if hasattr(lam, "shape") and len(lam.shape) != 0:
        raise ValueError(f"lam must be a scalar, got shape {tuple(lam.shape)}")
    if not is_traced(lam):
        v = float(lam)
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    return lam
