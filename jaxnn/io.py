"""Network weights on disk: the course's `.mat` files and jaxnn's own `.npz` files.

Parameters are a tuple of 2-D arrays `(Theta_1, ..., Theta_L)`, `Theta_l` of shape
`(n_{l+1}, 1 + n_l)` with the bias weights in column 0 (see ARCHITECTURE.md).

`.mat` (MATLAB v5, readable by Octave's `load` and the course's `predict.m`): variables
`Theta1..ThetaL`, with the rows of the last `Theta` in Octave label order. One rule converts both
ways: Octave label `k` (1-based row `k`) is jaxnn class `k mod K`. Loading therefore moves the
last row (Octave's label `K`, digit 0 in ex4) to the front; saving moves it back to the end.

`.npz` (jaxnn's own layout, no label rotation): arrays `theta_0..theta_{L-1}` plus `format`
(`"jaxnn.weights"`) and `format_version` (1).

Writes are atomic: a crash mid-write leaves any previous file intact. Loading validates
everything (present, 2-D, real, finite, chaining shapes) and reports problems as `ValueError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from jaxnn.files.atomic import atomic_write
from jaxnn.files.mat import mat_keys, read_mat, real_matrix

__all__ = [
    "SUPPORTED_SUFFIXES",
    "classes_to_octave_rows",
    "load_weights",
    "octave_rows_to_classes",
    "save_weights",
]

SUPPORTED_SUFFIXES = (".mat", ".npz")
NPZ_FORMAT = "jaxnn.weights"
NPZ_VERSION = 1

Params = tuple[np.ndarray, ...]
PathLike = str | os.PathLike[str]


def save_weights(path: PathLike, params: Sequence[Any]) -> None:
    """Save `params` (a sequence of 2-D arrays, numpy or JAX) to `path`, atomically.

    The format follows the suffix: `.mat` (course layout, Octave label order for the last
    layer's rows) or `.npz` (jaxnn layout). Values are stored as float64.

    Raises:
        ValueError: unsupported suffix, or `params` empty, not 2-D, non-finite or not chaining
            (`Theta_{l+1}.shape[1] == 1 + Theta_l.shape[0]`).
    """
    suffix = _suffix(path)
    thetas = _validated([np.asarray(p) for p in params], source="params", path=path)
    if suffix == ".mat":
        atomic_write(path, lambda f: _write_mat(f, thetas))
    else:
        atomic_write(path, lambda f: _write_npz(f, thetas))


def load_weights(path: PathLike) -> Params:
    """Load weights saved by `save_weights`, Octave or the course (e.g. `ex4weights.mat`).

    Returns:
        A tuple of float64 numpy arrays `(Theta_1, ..., Theta_L)` in jaxnn's layout
        (rows of the last one are classes `0..K-1`).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: unsupported suffix; a corrupt, truncated or wrong-format file; Thetas that are
            missing, not 2-D, non-numeric, non-finite or do not chain.
    """
    suffix = _suffix(path)
    if suffix == ".mat":
        return _validated(_read_mat_thetas(path), source="file", path=path, rotate=True)
    return _validated(_read_npz_thetas(path), source="file", path=path)


# ---- label rule for the last layer -------------------------------------------------------------


def octave_rows_to_classes(theta: np.ndarray) -> np.ndarray:
    """Reorder the last layer's rows from Octave labels `1..K` to classes `0..K-1`.

    Octave row `k` (1-based) becomes class `k mod K`: the last row moves to the front.
    `theta`: shape `(K, 1 + n)`; returns the same shape.
    """
    return np.roll(theta, 1, axis=0)


def classes_to_octave_rows(theta: np.ndarray) -> np.ndarray:
    """Inverse of `octave_rows_to_classes`: class 0's row moves to the end (Octave label K)."""
    return np.roll(theta, -1, axis=0)


# ---- validation --------------------------------------------------------------------------------


def _suffix(path: PathLike) -> str:
    """The lower-cased suffix of `path`, checked against `SUPPORTED_SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported weights file suffix {suffix!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _validated(
    thetas: Sequence[Any], *, source: str, path: PathLike, rotate: bool = False
) -> Params:
    """Check the layers and return them as float64 arrays (last one row-rotated if `rotate`).

    `source` is "params" (saving) or "file" (loading); it only changes the error wording.
    """
    where = f"{path}: " if source == "file" else f"cannot save to {path}: "
    if len(thetas) == 0:
        raise ValueError(f"{where}no layers; expected at least one Theta matrix")
    out = [_layer(theta, i, where) for i, theta in enumerate(thetas)]
    _check_chain(out, where)
    if rotate:
        out[-1] = octave_rows_to_classes(out[-1])
    return tuple(out)


def _layer(theta: Any, index: int, where: str) -> np.ndarray:
    """One validated layer: real, 2-D, at least one row and a bias column, finite."""
    name = f"Theta{index + 1}"
    array = real_matrix(theta, name, where)
    if array.shape[1] < 1:
        raise ValueError(f"{where}{name} has shape {array.shape}; it needs a bias column")
    bad = np.size(array) - np.count_nonzero(np.isfinite(array))
    if bad:
        raise ValueError(f"{where}{name} has {bad} non-finite value(s) (NaN or inf)")
    return np.ascontiguousarray(array)


def _check_chain(thetas: Sequence[np.ndarray], where: str) -> None:
    """Theta_{l+1} must take the l-th layer's outputs plus a bias: shape[1] == 1 + rows."""
    for i in range(1, len(thetas)):
        prev, cur = thetas[i - 1].shape, thetas[i].shape
        if cur[1] != 1 + prev[0]:
            raise ValueError(
                f"{where}layers do not chain: Theta{i} has shape {prev} so Theta{i + 1} needs "
                f"{1 + prev[0]} columns (bias + {prev[0]} units), but has shape {cur}"
            )


# ---- .mat --------------------------------------------------------------------------------------


def _write_mat(f: IO[bytes], thetas: Params) -> None:
    """Write `Theta1..ThetaL` (last one in Octave row order) as a MATLAB v5 file."""
    import scipy.io

    mats = list(thetas[:-1]) + [classes_to_octave_rows(thetas[-1])]
    scipy.io.savemat(f, {f"Theta{i + 1}": t for i, t in enumerate(mats)}, format="5")


def _read_mat_thetas(path: PathLike) -> list[Any]:
    """The variables `Theta1, Theta2, ...` of a `.mat` file, in order, as stored."""
    variables = read_mat(path)
    names = [k for k in mat_keys(variables) if k.startswith("Theta") and k[5:].isdigit()]
    if "Theta1" not in names:
        raise ValueError(
            f"{path}: no Theta1 variable; expected Theta1..ThetaL. "
            f"Variables found: {mat_keys(variables) or 'none'}"
        )
    count = len(names)
    expected = [f"Theta{i + 1}" for i in range(count)]
    if sorted(names, key=lambda n: int(n[5:])) != expected:
        raise ValueError(
            f"{path}: Theta variables must be numbered 1..L without gaps; found {sorted(names)}"
        )
    return [variables[name] for name in expected]


# ---- .npz --------------------------------------------------------------------------------------


def _write_npz(f: IO[bytes], thetas: Params) -> None:
    """Write `theta_0..theta_{L-1}` plus the format marker, uncompressed."""
    arrays = {f"theta_{i}": t for i, t in enumerate(thetas)}
    np.savez(f, format=np.array(NPZ_FORMAT), format_version=np.array(NPZ_VERSION), **arrays)


def _read_npz_thetas(path: PathLike) -> list[np.ndarray]:
    """The arrays `theta_0, theta_1, ...` of a jaxnn `.npz` file, after checking the marker."""
    with open(path, "rb") as f:  # FileNotFoundError stays as it is
        try:
            with np.load(f, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except Exception as exc:  # zipfile, zlib, numpy format errors on corrupt input
            raise ValueError(
                f"{path}: corrupt, truncated or not an .npz file "
                f"({type(exc).__name__}: {exc}); expected weights written by "
                "jaxnn.save_weights"
            ) from exc
    _check_npz_marker(arrays, path)
    names = [k for k in arrays if k.startswith("theta_")]
    expected = [f"theta_{i}" for i in range(len(names))]
    if not names or sorted(names) != sorted(expected):
        raise ValueError(
            f"{path}: expected arrays theta_0..theta_{{L-1}} without gaps; "
            f"arrays found: {sorted(arrays)}"
        )
    return [arrays[name] for name in expected]


def _check_npz_marker(arrays: dict[str, np.ndarray], path: PathLike) -> None:
    """The file must say `format == "jaxnn.weights"` and a version this code reads."""
    marker = arrays.get("format")
    if marker is None or marker.shape != () or str(marker) != NPZ_FORMAT:
        raise ValueError(
            f"{path}: not a jaxnn weights file (format marker {NPZ_FORMAT!r} missing); "
            f"arrays found: {sorted(arrays)}"
        )
    version = arrays.get("format_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{path}: jaxnn weights file without a valid format_version")
    if int(version) != NPZ_VERSION:
        raise ValueError(
            f"{path}: jaxnn weights format version {int(version)}; this jaxnn reads "
            f"version {NPZ_VERSION}"
        )
