"""Sweeps: validation curves over ``lam`` and learning curves over the training-set size.

Both train many networks with :func:`jaxnn.parallel.fit_many` (several seeds per point) and
report, for every point and seed, the training and validation **cost** and **accuracy**. The
costs are the data loss alone (:func:`jaxnn.cost` with ``lam = 0``), as in the course's ex5
curves: the penalty is part of what training minimizes, not of the error being compared.

* :func:`validation_curve`: every ``(lam, seed)`` pair is one member of a single
  ``fit_many`` batch: one compiled program for the whole curve.
* :func:`learning_curve`: training sets of different sizes have different shapes, so each
  size is one ``fit_many`` batch over the seeds (one compilation per size). Putting all sizes
  in one ``vmap`` would need the examples padded to the largest size and masked out of the
  mean in the cost and in its gradient: a weighted cost that the hand-written backprop (whose
  output rule is ``(h - Y) / m``) does not have. The loop over sizes keeps the exact cost and
  the same backprop, and costs only a compilation per size (a second or two on CPU).

``jaxnn sweep lam`` and ``jaxnn sweep size`` run them from the command line
(:mod:`jaxnn.cli.sweep`): a table on the terminal, a PNG plot and a JSON file with every
number.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jax.typing import ArrayLike

from jaxnn.checks import (
    check_choice,
    check_dtype,
    check_finite,
    check_hidden,
    check_labels,
    check_lam,
    check_number,
    check_representable,
    check_seed,
)
from jaxnn.datasets import held_out_count, train_test_split
from jaxnn.defaults import (
    ACTIVATION,
    HELD_OUT,
    HIDDEN,
    LAM,
    LEARNING_CURVE_SIZES,
    MANY_MAXITER,
    MANY_METHOD,
    OUTPUT,
    SEEDS,
)
from jaxnn.model import init_params, weights_dtype
from jaxnn.names import counted
from jaxnn.parallel.fit_many import MANY_METHODS, check_many_memory, fit_many
from jaxnn.parallel.members import evaluate_many
from jaxnn.precision import x64_when
from jaxnn.rules import FRACTION, NEEDS_TWO_CLASSES, is_fraction

__all__ = ["DEFAULT_LAMS", "METRICS", "Curve", "check_lams", "check_sizes", "learning_curve",
           "plot_curve", "validation_curve"]

METRICS = ("train_cost", "val_cost", "train_accuracy", "val_accuracy")
DEFAULT_LAMS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class Curve:
    """The result of a sweep: one row per swept value, one column per seed.

    Attributes:
        kind: ``"validation"`` (over ``lam``) or ``"learning"`` (over the training-set size).
        param: the swept quantity, ``"lam"`` or ``"m"`` (training examples).
        values: ``(P,)`` the swept values.
        seeds: ``(S,)`` the initialization seeds (``init_params(seed, sizes)``).
        train_cost, val_cost: ``(P, S)`` data loss (no penalty) on the training examples the
            network was trained on and on the validation set.
        train_accuracy, val_accuracy: ``(P, S)`` fraction correct.
        n_iter: ``(P, S)`` iterations each network ran.
        diverged: ``(P, S)`` the network met a non-finite cost (its row describes the
            parameters it kept; see :attr:`jaxnn.parallel.FitManyResult.diverged`).
        settings: the other choices (layer sizes, method, iterations, ``lam`` or ``m``, sizes of
            the training and validation sets).
        seconds: wall time of the sweep.
    """

    kind: str
    param: str
    values: np.ndarray
    seeds: np.ndarray
    train_cost: np.ndarray
    val_cost: np.ndarray
    train_accuracy: np.ndarray
    val_accuracy: np.ndarray
    n_iter: np.ndarray
    diverged: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def mean(self, metric: str) -> np.ndarray:
        """``(P,)`` mean over seeds of one of :data:`METRICS`."""
        return np.mean(getattr(self, _metric(metric)), axis=1)

    def std(self, metric: str) -> np.ndarray:
        """``(P,)`` standard deviation over seeds (0 with one seed; NaN where a seed's value
        is infinite)."""
        with np.errstate(invalid="ignore"):  # inf - inf: that row's spread is undefined
            return np.std(getattr(self, _metric(metric)), axis=1)

    @property
    def best(self) -> float | None:
        """The ``lam`` with the lowest mean validation cost, among those where some network
        did not diverge and the mean is finite (validation curves; None for a learning curve,
        where the largest training set is always expected to win, or when no ``lam``
        qualifies). A diverged network's parameters can give an infinite or NaN cost: such a
        ``lam`` is not the best, however its other networks did."""
        means = self.mean("val_cost")
        usable = np.flatnonzero(~self.diverged.all(axis=1) & np.isfinite(means))
        if self.kind != "validation" or usable.size == 0:
            return None
        return float(self.values[usable[int(np.argmin(means[usable]))]])

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain lists and numbers (JSON-ready)."""
        out: dict[str, Any] = {"kind": self.kind, "param": self.param,
                               "values": self.values.tolist(), "seeds": self.seeds.tolist()}
        for m in METRICS:
            out[m] = getattr(self, m).tolist()
            out[f"{m}_mean"] = self.mean(m).tolist()
            out[f"{m}_std"] = self.std(m).tolist()
        out["n_iter"] = self.n_iter.tolist()
        out["diverged"] = self.diverged.tolist()
        out["best"] = self.best
        out["settings"] = self.settings
        out["seconds"] = self.seconds
        return out


def _metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {name!r}")
    return name


# --- shared preparation ----------------------------------------------------------------------


@dataclass
class _Data:
    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    K: int


def _split(X: ArrayLike, y: ArrayLike, X_val: ArrayLike | None, y_val: ArrayLike | None,
           val_fraction: float, split_seed: int) -> _Data:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be 2-D (m, n) with at least 2 rows, got shape {X.shape}")
    y = check_labels(y, "y", X.shape[0])
    if np.unique(y).size < 2:
        raise ValueError(f"y holds a single class ({int(y[0])}); {NEEDS_TWO_CLASSES}")
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither (then val_fraction of X is held "
                         "out)")
    if X_val is None:
        if isinstance(val_fraction, bool) or not (isinstance(val_fraction, float | int)
                                                  and is_fraction(val_fraction)):
            raise ValueError(f"val_fraction must be {FRACTION}, got {val_fraction!r}")
        held_out_count(float(val_fraction), np.shape(X)[0], "val_fraction", "validation")
        X, X_val, y, y_val = train_test_split(X, y, test_size=float(val_fraction),
                                              seed=split_seed)
    else:
        X_val = np.asarray(X_val)
        if X_val.ndim != 2 or X_val.shape[1] != X.shape[1] or X_val.shape[0] < 1:
            raise ValueError(f"X_val must be 2-D with {X.shape[1]} columns like X, got shape "
                             f"{X_val.shape}")
        if np.issubdtype(X_val.dtype, np.inexact):
            check_finite(X_val, "X_val")
        y_val = check_labels(y_val, "y_val", X_val.shape[0])
        unseen = np.setdiff1d(y_val, y)
        if unseen.size:
            raise ValueError(f"y_val has labels {unseen[:5].tolist()} that y has not: the "
                             "networks learn the classes of y; validate on the same classes")
    if np.unique(y).size < 2:  # the training part of a split (the whole y was checked above)
        raise ValueError(f"after holding out val_fraction={val_fraction:g}, the training part "
                         f"({counted(len(y), 'example')}) holds a single class ({int(y[0])}); "
                         f"{NEEDS_TWO_CLASSES}: give more examples")
    K = int(max(y.max(), y_val.max())) + 1
    return _Data(X, y, X_val, y_val, K)


def _seeds(seeds: int | Sequence[int]) -> np.ndarray:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive count or a list of ints, got {seeds}")
        return np.arange(int(seeds))
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seeds must be a positive count or a list of ints, got {seeds!r}")
    out = [check_seed(int(s), "seeds") for s in arr]
    _once(out, "seeds", "each seed is one column")
    return np.asarray(out)


def _init(seeds: np.ndarray, sizes: tuple[int, ...], repeat: int, dtype: Any) -> tuple:
    """``init_params(seed, sizes)`` for every seed, the whole list ``repeat`` times, stacked:
    member ``p * S + s`` is seed ``s``."""
    with x64_when(dtype == np.float64):
        members = [init_params(int(s), sizes, dtype=dtype) for s in seeds]
        layers = [np.stack([np.asarray(m[layer]) for m in members])
                  for layer in range(len(sizes) - 1)]
    return tuple(np.concatenate([t] * repeat) for t in layers)


def _dtype(dtype: Any) -> Any:
    want64 = check_dtype(dtype)
    return None if want64 is None else np.dtype(np.float64 if want64 else np.float32)


# --- the two curves --------------------------------------------------------------------------


def validation_curve(
    X: ArrayLike,
    y: ArrayLike,
    lams: Sequence[float] = DEFAULT_LAMS,
    *,
    hidden: Sequence[int] = HIDDEN,
    seeds: int | Sequence[int] = SEEDS,
    maxiter: int = MANY_MAXITER,
    method: str = MANY_METHOD,
    val_fraction: float = HELD_OUT,
    X_val: ArrayLike | None = None,
    y_val: ArrayLike | None = None,
    split_seed: int = 0,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    dtype: Any = None,
    **fit_kw: Any,
) -> Curve:
    """Train a network for every ``lam`` and seed; training and validation cost and accuracy.

    Args:
        X: ``(m, n)`` examples; y: integer labels ``(m,)``.
        lams: the penalties to try (``P`` values, each ``>= 0``).
        hidden: hidden layer sizes; the network is ``(n, *hidden, K)``.
        seeds: a count ``S`` (seeds ``0..S-1``) or a list of seeds for ``init_params``.
        maxiter: iterations (epochs for adam/sgd) per network.
        method: a :func:`jaxnn.parallel.fit_many` method; ``fit_kw`` go to it too
            (``tol``, ``learning_rate``, ``batch_size``, ``options``, ``devices``, ...).
        val_fraction: held-out fraction of ``X`` (stratified, ``split_seed``) unless
            ``X_val``, ``y_val`` are given.
        dtype: None (follow ``X``), ``"float32"`` or ``"float64"``.

    Returns:
        A :class:`Curve` with ``P x S`` entries, all trained in one ``fit_many`` batch.
    """
    t0 = time.perf_counter()
    check_choice(method, MANY_METHODS, "method")
    data = _split(X, y, X_val, y_val, val_fraction, split_seed)
    dt = _dtype(dtype)
    lam_arr = check_lams(lams, dt or weights_dtype(None))  # the networks' dtype
    seed_arr = _seeds(seeds)
    sizes = (data.X.shape[1], *check_hidden(hidden), data.K)
    S, P = len(seed_arr), len(lam_arr)
    # before any weights are made
    check_many_memory(sizes, data.X.shape[0], dt, P * S, maxiter, method)
    pb = _init(seed_arr, sizes, P, dt)
    lam_batch = np.repeat(lam_arr, S)  # member p * S + s: lams[p], seeds[s]
    if method in ("adam", "sgd"):
        fit_kw.setdefault("seed", np.tile(seed_arr, P))
    res = fit_many(pb, data.X, data.y, lam_batch, activation=activation, output=output,
                   dtype=dt, method=method, maxiter=maxiter, **fit_kw)
    _warn_diverged(res.diverged, res.messages,
                   [f"lam {lam:g}, seed {seed}" for lam in lam_arr for seed in seed_arr])
    tr = evaluate_many(res.params, data.X, data.y, 0.0, activation=activation, output=output)
    va = evaluate_many(res.params, data.X_val, data.y_val, 0.0, activation=activation,
                       output=output)
    shape = (P, S)
    return Curve(
        kind="validation", param="lam", values=lam_arr, seeds=seed_arr,
        train_cost=tr["cost"].reshape(shape), val_cost=va["cost"].reshape(shape),
        train_accuracy=tr["accuracy"].reshape(shape), val_accuracy=va["accuracy"].reshape(shape),
        n_iter=res.n_iter.reshape(shape), diverged=res.diverged.reshape(shape),
        settings=_settings(sizes, method, maxiter, data.X.shape[0], data.X_val.shape[0],
                           activation, output, res.params),
        seconds=time.perf_counter() - t0,
    )


def _settings(sizes: Sequence[int], method: str, maxiter: int, m_train: int, m_val: int,
              activation: str, output: str, params: Sequence[Any], **fixed: float) -> dict:
    """A curve's ``settings`` (the same keys for both curves, plus what one holds ``fixed``)."""
    return {"layer_sizes": list(sizes), "method": method, "maxiter": maxiter, **fixed,
            "m_train": int(m_train), "m_val": int(m_val), "activation": activation,
            "output": output, "dtype": str(params[0].dtype)}


def learning_curve(
    X: ArrayLike,
    y: ArrayLike,
    sizes: Sequence[int | float] = LEARNING_CURVE_SIZES,
    *,
    lam: float = LAM,
    hidden: Sequence[int] = HIDDEN,
    seeds: int | Sequence[int] = SEEDS,
    maxiter: int = MANY_MAXITER,
    method: str = MANY_METHOD,
    val_fraction: float = HELD_OUT,
    X_val: ArrayLike | None = None,
    y_val: ArrayLike | None = None,
    split_seed: int = 0,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
    dtype: Any = None,
    **fit_kw: Any,
) -> Curve:
    """Train on the first ``n`` training examples for every ``n`` in ``sizes`` and seed.

    The training set is the (stratified, shuffled) split of ``X`` without the validation set;
    size ``n`` takes its first ``n`` examples, so smaller sets are subsets of larger ones, and
    every network of a size sees the same examples (the seeds vary the initial weights).
    ``sizes`` are counts (ints ``>= 1``) or fractions of the training set (floats in
    ``(0, 1]``). Training cost is measured on the ``n`` examples trained on, validation cost on
    the whole validation set. Each size is one :func:`jaxnn.parallel.fit_many` batch over the
    seeds (see the module docstring). Other arguments as in :func:`validation_curve`.
    """
    t0 = time.perf_counter()
    check_choice(method, MANY_METHODS, "method")
    data = _split(X, y, X_val, y_val, val_fraction, split_seed)
    m = data.X.shape[0]
    counts = _counts(sizes, m)
    seed_arr = _seeds(seeds)
    lam = float(check_lam(lam))
    layer_sizes = (data.X.shape[1], *check_hidden(hidden), data.K)
    dt = _dtype(dtype)
    # before any weights are made
    check_many_memory(layer_sizes, m, dt, len(seed_arr), maxiter, method)
    pb = _init(seed_arr, layer_sizes, 1, dt)
    if method in ("adam", "sgd"):
        fit_kw.setdefault("seed", seed_arr)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (*METRICS, "n_iter", "diverged")}
    messages: list[str] = []
    for n in counts:
        Xn, yn = data.X[:n], data.y[:n]
        res = fit_many(pb, Xn, yn, float(lam), activation=activation, output=output, dtype=dt,
                       method=method, maxiter=maxiter, **fit_kw)
        tr = evaluate_many(res.params, Xn, yn, 0.0, activation=activation, output=output)
        va = evaluate_many(res.params, data.X_val, data.y_val, 0.0, activation=activation,
                           output=output)
        rows["train_cost"].append(tr["cost"])
        rows["val_cost"].append(va["cost"])
        rows["train_accuracy"].append(tr["accuracy"])
        rows["val_accuracy"].append(va["accuracy"])
        rows["n_iter"].append(res.n_iter)
        rows["diverged"].append(res.diverged)
        messages.extend(res.messages)
    _warn_diverged(np.concatenate(rows["diverged"]), messages,
                   [f"{n} examples, seed {seed}" for n in counts for seed in seed_arr])
    return Curve(
        kind="learning", param="m", values=np.asarray(counts), seeds=seed_arr,
        **{k: np.stack(v) for k, v in rows.items()},
        settings=_settings(layer_sizes, method, maxiter, m, data.X_val.shape[0], activation,
                           output, res.params, lam=float(lam)),
        seconds=time.perf_counter() - t0,
    )


def _warn_diverged(diverged: np.ndarray, messages: Sequence[str],
                   members: Sequence[str]) -> None:
    """Say, in one warning, which networks of a sweep met a non-finite cost: their rows
    describe the parameters each kept, not a trained network."""
    bad = np.flatnonzero(diverged)
    if bad.size:
        first = int(bad[0])
        warnings.warn(f"{bad.size} of {len(diverged)} networks diverged (the first: "
                      f"{members[first]}): {messages[first]}", stacklevel=3)


# --- a curve's values: lambdas and training-set sizes ---------------------------------------------


def _values(values: object, name: str, what: str) -> list:
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{name} must be a list of {what}, got {values!r}") from None
    if not items:
        raise ValueError(f"{name} is empty; give at least one")
    return items


def _once(items: list, name: str, why: str = "each value is one row of the curve") -> None:
    """None of ``items`` given twice (a count and a fraction differ)."""
    seen: list[tuple[bool, float]] = []
    for v in items:  # ints exactly (seeds near 2**63 are distinct ints, one float)
        key = (True, int(v)) if isinstance(v, int | np.integer) else (False, float(v))
        if key in seen:
            raise ValueError(f"{name}: {v} is given twice ({why})")
        seen.append(key)


def check_lams(lams: Sequence[float], dtype: object = None) -> np.ndarray:
    """A validation curve's penalties: a non-empty list of finite numbers ``>= 0``, none given
    twice; with the networks' ``dtype``, each one it holds and none equal to another there
    (``1e-50`` is 0 in float32: two rows of one network). Returned as float64."""
    items = _values(lams, "lams", "numbers >= 0")
    out = [check_number(v, f"lams[{i}]", low=0.0) for i, v in enumerate(items)]
    _once(out, "lams")
    if dtype is not None:
        dtype = np.dtype(dtype)
        check_representable(out, "lams", dtype)
        trained = np.asarray(out).astype(dtype).tolist()  # what the networks see
        for i, v in enumerate(trained):
            if v in trained[:i]:
                raise ValueError(f"lams: {out[i]:g} is {v:g} in {dtype.name}, as is "
                                 f"{out[trained.index(v)]:g}; give each lambda once (or "
                                 "train in float64, dtype='float64')")
    return np.asarray(out, dtype=np.float64)


def check_sizes(sizes: Sequence[int | float]) -> list[int | float]:
    """A learning curve's training-set sizes, as far as they can be checked before the data is
    known: counts (ints ``>= 1``) or fractions of the training set (floats in ``(0, 1]``), none
    given twice."""
    items = _values(sizes, "sizes", "counts or fractions")
    for s in items:
        if isinstance(s, bool) or not isinstance(s, int | float | np.number):
            raise ValueError(f"sizes must hold counts or fractions, got {s!r}")
        if isinstance(s, int | np.integer):
            if s < 1:
                raise ValueError(f"sizes: a count of examples must be at least 1, got {s}")
        elif not 0 < s <= 1:
            raise ValueError(f"sizes: a size is a count of examples (2, 3, ...) or a fraction "
                             f"of the training set in (0, 1], got {s}")
    _once(items, "sizes")
    return items


def _counts(sizes: Sequence[int | float], m: int) -> list[int]:
    """:func:`check_sizes`, then each size as a count of the ``m`` training examples."""
    items = check_sizes(sizes)
    out: list[int] = []
    for s in items:
        n = int(s) if isinstance(s, int | np.integer) else round(float(s) * m)
        if n < 1:
            raise ValueError(f"sizes: {s} of the {m} training examples is less than one "
                             "example; give a larger fraction or a count")
        if n > m:
            raise ValueError(f"sizes: {s} is more than the {m} training examples")
        if n in out:
            raise ValueError(f"sizes: {items[out.index(n)]} and {s} are both {n} of the {m} "
                             "training examples; give each size once")
        out.append(n)
    return out


# --- picture ---------------------------------------------------------------------------------


def plot_curve(curve: Curve, title: str | None = None):  # noqa: ANN201 - matplotlib optional
    """The curve's picture: :func:`jaxnn.plot.sweep_curve` (two panels, cost and accuracy)."""
    from jaxnn.plot import sweep_curve

    return sweep_curve(curve, title=title)
