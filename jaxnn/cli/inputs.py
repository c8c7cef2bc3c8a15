"""The inputs of a ``jaxnn`` command: the examples named by ``--data``/``--dataset`` and the
weights named by ``--weights``, with every problem turned into a :class:`UsageError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from jaxnn.cli.common import UsageError, missing_extra, missing_module

Order = Literal["C", "F"]


@dataclass(frozen=True)
class Data:
    """Examples loaded for a command: ``X`` ``(m, n)``, labels ``y`` ``(m,)`` or None,
    a description for messages and summaries, and how a row becomes an image (or None)."""

    X: np.ndarray
    y: np.ndarray | None
    name: str
    image: tuple[tuple[int, int], Order] | None


def unreadable(exc: OSError, where: object, kind: str) -> UsageError:
    """The one-line error for a ``kind`` file at ``where`` that could not be opened."""
    if isinstance(exc, FileNotFoundError):
        return UsageError(f"{where}: no such file")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{where}: is a directory, not a {kind} file")
    return UsageError(f"{where}: permission denied")


def load_data(paths: Sequence[str] | None, dataset: str | None, *, need_labels: bool) -> Data:
    """Load the examples named by ``--data PATH [PATH]`` or ``--dataset NAME`` (mnist5k when
    neither is given). Any problem with the files becomes a :class:`UsageError`."""
    from jaxnn.plot import image_layout

    try:
        if paths:
            data = _load_paths(list(paths), need_labels)
        else:
            data = _load_dataset(dataset or "mnist5k")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise unreadable(exc, exc.filename or exc, "data") from exc
    except ImportError as exc:
        if missing_module(exc) is None:
            raise
        raise missing_extra(exc) from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    X, y, name, source = data
    if need_labels and y is None:
        raise UsageError(f"{name}: no labels (array y) found; training needs them")
    image = {"mnist5k": ((20, 20), "F"), "digits": ((8, 8), "C")}.get(source)
    return Data(X, y, name, image or image_layout(X.shape[1], source))


def _load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    from jaxnn import datasets

    loaders = {"mnist5k": datasets.mnist5k, "digits": datasets.digits}
    X, y = loaders[name]()
    return X, y, name, name


def _load_paths(paths: list[str], need_labels: bool) -> tuple[Any, ...]:
    """``(X, y, name, source)`` from one ``.mat``/``.npz`` file or a pair of IDX files."""
    from jaxnn import datasets

    if len(paths) == 2:
        X, y = datasets.load_idx(paths[0], paths[1])
        return X, y, f"{paths[0]} + {paths[1]}", "idx"
    if len(paths) != 1:
        raise ValueError(f"--data takes one .mat or .npz file, or two IDX files; got {len(paths)}")
    path = paths[0]
    suffix = Path(path).suffix.lower()
    if suffix == ".mat":
        X, y = datasets.load_mat(path)
        return X, y, path, "mat"
    if suffix == ".npz":
        X, y = _load_npz(path, need_labels)
        return X, y, path, "npz"
    if not Path(path).exists():
        raise FileNotFoundError(2, "No such file", path)
    if "idx" in Path(path).name.lower() or suffix in (".gz", ".ubyte"):
        raise ValueError(f"{path}: IDX data needs two files: --data IMAGES LABELS")
    raise ValueError(f"{path}: unsupported data file; expected .mat, .npz, or two IDX files")


def _load_npz(path: str, need_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays ``X`` ``(m, n)`` and ``y`` ``(m,)`` (integer labels ``0..K-1``) of an ``.npz``."""
    with open(path, "rb") as f:
        try:
            with np.load(f, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files if k in ("X", "y")}
                found = sorted(npz.files)
        except Exception as exc:  # zipfile/zlib/format errors on a corrupt file
            raise ValueError(f"{path}: corrupt or not an .npz file ({type(exc).__name__})") from exc
    if "X" not in arrays:
        raise ValueError(f"{path}: no array X (examples, one per row); arrays found: {found}")
    X = arrays["X"]
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "fiub":
        raise ValueError(f"{path}: X must be a non-empty numeric 2-D array, got {X.dtype} "
                         f"{X.shape}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: X contains NaN or inf")
    if "y" not in arrays:
        return X, None
    return X, _labels(arrays["y"], X.shape[0], path)


def _labels(y: np.ndarray, m: int, path: str) -> np.ndarray:
    """Validate labels: ``m`` whole numbers ``>= 0``, as int64."""
    y = np.ravel(y) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or y.shape[0] != m:
        raise ValueError(f"{path}: y must hold {m} labels (one per row of X), got shape {y.shape}")
    if y.dtype.kind not in "fiub" or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        raise ValueError(f"{path}: y must hold whole-number class labels 0..K-1")
    if y.min() < 0:
        raise ValueError(f"{path}: y has negative labels; expected classes 0..K-1")
    return y.astype(np.int64)


# ---- weights -------------------------------------------------------------------------------------


def load_weights(path: str) -> tuple[np.ndarray, ...]:
    """:func:`jaxnn.load_weights` with file problems turned into :class:`UsageError`."""
    from jaxnn.io import load_weights as load

    try:
        return load(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise unreadable(exc, path, "weights") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def check_fits(params: Sequence[np.ndarray], data: Data, weights: str) -> None:
    """The weights' input size must match the data's features, and the labels its outputs."""
    n_in, K = params[0].shape[1] - 1, params[-1].shape[0]
    if data.X.shape[1] != n_in:
        raise UsageError(
            f"{weights} expects {n_in} inputs per example but {data.name} has "
            f"{data.X.shape[1]} features"
        )
    if data.y is not None and data.y.max() >= K:
        raise UsageError(
            f"{data.name} has labels up to {int(data.y.max())} but {weights} has only {K} "
            f"outputs (classes 0..{K - 1})"
        )


