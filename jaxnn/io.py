"""Network weights on disk: the course's `.mat` files and jaxnn's own `.npz` files.

Parameters are a tuple of 2-D arrays `(Theta_1, ..., Theta_L)`, `Theta_l` of shape
`(n_{l+1}, 1 + n_l)` with the bias weights in column 0 (docs/design.md, the conventions).

A weights file carries the model it holds: the layer sizes, the hidden activation and the
output layer, so that a network trained with `relu` is not silently evaluated with `sigmoid`.
:func:`load_model` returns them with the weights (a :class:`Model`); :func:`load_weights`
returns the weights alone. Files without them (the course's `ex4weights.mat`, Octave's files,
jaxnn's format 1) load with the course's defaults, sigmoid and sigmoid.

`.mat` (MATLAB v5, readable by Octave's `load` and the course's `predict.m`): variables
`Theta1..ThetaL`, with the rows of the last `Theta` in Octave label order. One rule converts both
ways: Octave label `k` (1-based row `k`) is jaxnn class `k mod K`. Loading therefore moves the
last row (Octave's label `K`, digit 0 in ex4) to the front; saving moves it back to the end.
Beside them, variables that `predict.m` ignores: `jaxnn_format_version` (2),
`jaxnn_layer_sizes` (a row of numbers), `jaxnn_activation` and `jaxnn_output` (text).

`.npz` (jaxnn's own layout, no label rotation): arrays `theta_0..theta_{L-1}` plus `format`
(`"jaxnn.weights"`), `format_version` (2), `layer_sizes` (int64), `activation` and `output`
(0-d text). Version 1 files (without the last three) still load.

Writes are atomic: a crash mid-write leaves any previous file intact. Loading validates
everything (present, 2-D, real, finite, chaining shapes, metadata that agrees with the arrays)
and reports problems as `ValueError` naming the file; file-system problems stay `OSError`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from jaxnn.activations import get_activation
from jaxnn.checks import check_input_file, check_path
from jaxnn.defaults import ACTIVATION, OUTPUT  # what a file without a model record holds
from jaxnn.files.atomic import atomic_write
from jaxnn.files.mat import mat_keys, read_mat, real_matrix
from jaxnn.memory import check_memory
from jaxnn.names import PathLike
from jaxnn.outputs import get_output
from jaxnn.user_warnings import warn

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Model",
    "classes_to_octave_rows",
    "load_model",
    "load_weights",
    "octave_rows_to_classes",
    "read_npz",
    "save_weights",
]

SUPPORTED_SUFFIXES = (".mat", ".npz")
NPZ_FORMAT = "jaxnn.weights"
#: the format written: 2 carries the model (layer sizes, activation, output); 1 did not
NPZ_VERSION = 2
#: the formats read
NPZ_VERSIONS = (1, 2)
#: the formats of the `jaxnn_*` variables of a `.mat` file read (they appeared in format 2)
MAT_VERSIONS = (2,)
#: prefix of the `.mat` variables that carry the model
MAT_PREFIX = "jaxnn_"
MAT_META = ("format_version", "layer_sizes", "activation", "output")

Params = tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class Model:
    """A network read from a weights file: its weights and what it is.

    Attributes:
        params: `(Theta_1, ..., Theta_L)`, float64 numpy arrays in jaxnn's layout (rows of the
            last one are classes `0..K-1`), `Theta_l` of shape `(n_{l+1}, 1 + n_l)`.
        activation: the hidden activation (a name of `jaxnn.activations.ACTIVATIONS`).
        output: the output layer (a name of `jaxnn.outputs.OUTPUTS`).
        layer_sizes: `(n_0, n_1, ..., K)`.
        format_version: the jaxnn format of the file: 2 (carries the model), 1 (a jaxnn `.npz`
            of the first format) or 0 (a `.mat` not written by jaxnn, e.g. the course's).
        carries_model: whether the file said what network it is; when False, `activation` and
            `output` are the course's defaults (sigmoid, sigmoid), not something the file said.
    """

    params: Params
    activation: str
    output: str
    layer_sizes: tuple[int, ...]
    format_version: int
    carries_model: bool


def save_weights(
    path: PathLike,
    params: Sequence[Any],
    *,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> None:
    """Save `params` (a sequence of 2-D arrays, numpy or JAX) and the model they are, atomically.

    The format follows the suffix: `.mat` (course layout, Octave label order for the last
    layer's rows, plus `jaxnn_*` variables that Octave's `predict.m` ignores) or `.npz` (jaxnn
    layout). Values are stored as float64; the layer sizes, `activation` and `output` beside
    them, so that :func:`jaxnn.io.load_model` gives back the same network.

    Raises:
        ValueError: unsupported suffix; unknown `activation` or `output`; `params` empty, not
            2-D, non-finite or not chaining (`Theta_{l+1}.shape[1] == 1 + Theta_l.shape[0]`).
        FileNotFoundError / NotADirectoryError: the directory of `path` does not exist or is
            not a directory (the error names it); other `OSError`s name `path`.
    """
    suffix = _suffix(path)
    get_activation(activation)
    get_output(output)
    if isinstance(params, dict | str) or not isinstance(params, Iterable):
        raise ValueError(f"params must be a sequence of weight arrays (Theta1, Theta2, ...), "
                         f"got {type(params).__name__}")
    thetas = _validated([np.asarray(p) for p in params], source="params", path=path)
    meta = _Meta(activation, output, _sizes_of(thetas))
    _check_directory(path)
    writer = _write_mat if suffix == ".mat" else _write_npz
    try:
        atomic_write(path, lambda f: writer(f, thetas, meta))
    except OSError as exc:
        if exc.filename is None or Path(exc.filename) == Path(path):
            raise
        # the temporary file beside `path` is an implementation detail: name the target
        raise type(exc)(exc.errno, f"cannot save {path}: {exc.strerror}", str(path)) from exc


def load_model(path: PathLike) -> Model:
    """Load a weights file and the model it records (see :class:`Model`).

    Reads what :func:`save_weights` writes, older jaxnn files (format 1), and `.mat` files of
    Octave or the course (e.g. `ex4weights.mat`), which load with `carries_model=False` and the
    course's sigmoid hidden layers and sigmoid output.

    Raises:
        FileNotFoundError (and other `OSError`s, naming `path`): the file cannot be opened.
        ValueError (naming `path`): unsupported suffix; a corrupt, truncated or wrong-format
            file; Thetas that are missing, not 2-D, non-numeric, non-finite or do not chain;
            metadata that is incomplete, names an unknown activation or output, or whose
            layer sizes contradict the arrays; sizes that cannot fit in memory.
    """
    suffix = _suffix(path)
    if suffix == ".mat":
        variables = read_mat(path)
        thetas = _validated(_mat_thetas(variables, path), source="file", path=path, rotate=True)
        meta, version = _mat_meta(variables, path)
    else:
        arrays = read_npz(path, what="weights written by jaxnn.save_weights")
        version = _check_npz_marker(arrays, path)
        thetas = _validated(_npz_thetas(arrays, path), source="file", path=path)
        meta = _npz_meta(arrays, path) if version >= 2 else None
    sizes = _sizes_of(thetas)
    if meta is None and len(thetas) == 1:
        warn(
            f"{path}: holds only Theta1 and no jaxnn model record, so it is read as a network "
            f"without hidden layers whose {sizes[-1]} rows are the classes; if the file should "
            "hold more layers, save Theta2.. as well")
    if meta is None:
        return Model(thetas, ACTIVATION, OUTPUT, sizes, version, False)
    if meta.layer_sizes != sizes:
        raise ValueError(
            f"{path}: the file records layer_sizes {meta.layer_sizes} but its weights are a "
            f"{sizes} network; the file is inconsistent (re-save it with jaxnn.save_weights)"
        )
    return Model(thetas, meta.activation, meta.output, sizes, version, True)


def load_weights(path: PathLike) -> Params:
    """Load the weights of a file saved by `save_weights`, Octave or the course.

    The weights alone; :func:`jaxnn.io.load_model` also says which activation and output they need.

    Returns:
        A tuple of float64 numpy arrays `(Theta_1, ..., Theta_L)` in jaxnn's layout
        (rows of the last one are classes `0..K-1`).

    Raises:
        As :func:`jaxnn.io.load_model`.
    """
    return load_model(path).params


def read_npz(path: PathLike, *, what: str = "an .npz file") -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, safely: no pickles, sizes checked before reading.

    The header of each array declares its shape and dtype; their total must fit in memory
    (:func:`jaxnn.memory.check_memory`) before any array is read, so a small file that
    declares (or inflates to) gigabytes is refused at once. `what` says, in errors, what the
    file was expected to hold.

    Raises:
        OSError (naming `path`): the file cannot be opened (missing, a directory, a loop of
            symbolic links, no permission).
        ValueError (naming `path`): corrupt, truncated or not an `.npz` file; object arrays;
            declared sizes that cannot fit in memory.
    """
    check_input_file(path)
    with open(path, "rb") as f:  # OSError stays as it is
        if f.read(2) != b"PK":  # np.load would read a .npy or a pickle instead of a zip
            raise ValueError(f"{path}: not an .npz file (no zip signature); expected {what}")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
            declared = sum(_npy_bytes(npz.zip, f"{key}.npy") for key in npz.files)
        except Exception as exc:  # zipfile, zlib, numpy format errors on corrupt input
            raise _corrupt_npz(path, what, exc) from exc
        with npz:
            check_memory(declared, f"{path}: arrays of {declared:,} bytes (as declared)",
                         hint="is this the right file?", device="host")
            try:
                return {key: npz[key] for key in npz.files}
            except Exception as exc:  # corrupt data behind a valid header
                raise _corrupt_npz(path, what, exc) from exc


def _corrupt_npz(path: PathLike, what: str, exc: BaseException) -> ValueError:
    return ValueError(
        f"{path}: corrupt, truncated or not an .npz file ({type(exc).__name__}: {exc}); "
        f"expected {what}"
    )


def _npy_bytes(archive: Any, member: str) -> int:
    """The data bytes a `.npy` member of a zip archive declares in its header."""
    fmt = np.lib.format
    with archive.open(member) as fp:
        version = fmt.read_magic(fp)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
            fmt.read_array_header_2_0
        shape, _, dtype = read_header(fp)
    count = 1
    for n in shape:
        count *= int(n)
    return count * dtype.itemsize


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


@dataclass(frozen=True)
class _Meta:
    activation: str
    output: str
    layer_sizes: tuple[int, ...]


def _suffix(path: PathLike) -> str:
    """The lower-cased suffix of `path`, checked against `SUPPORTED_SUFFIXES`."""
    check_path(path)
    suffix = Path(path).suffix.lower()
    if Path(path).is_dir():  # whatever its name says (IsADirectoryError, as open() would)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported weights file suffix {suffix!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _check_directory(path: PathLike) -> None:
    """The directory `path` goes into must exist: name it when it does not."""
    directory = Path(path).parent
    if directory.is_dir():
        return
    if directory.exists():
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot save {path}: {directory} is not a directory", str(directory)
        )
    raise FileNotFoundError(
        errno.ENOENT, f"cannot save {path}: the directory {directory} does not exist",
        str(directory),
    )


def _sizes_of(thetas: Params) -> tuple[int, ...]:
    return (thetas[0].shape[1] - 1, *(t.shape[0] for t in thetas))


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


def _checked_names(activation: Any, output: Any, path: PathLike) -> tuple[str, str]:
    """The recorded activation and output, checked against the registries."""
    for kind, value, lookup in (("activation", activation, get_activation),
                                ("output", output, get_output)):
        if not isinstance(value, str):
            raise ValueError(f"{path}: the recorded {kind} is not text ({value!r})")
        try:
            lookup(value)
        except ValueError as exc:
            raise ValueError(f"{path}: the file records {exc}") from None
    return activation, output


def _checked_sizes(value: Any, path: PathLike, name: str) -> tuple[int, ...]:
    """Recorded layer sizes: a vector of at least two whole numbers >= 1."""
    array = np.asarray(value)
    ok = array.dtype.kind in "iuf" and array.size >= 2 and (array.ndim == 1 or (
        array.ndim == 2 and 1 in array.shape))
    if ok:
        flat = array.ravel()
        ok = bool(np.all(np.isfinite(flat)) and np.all(flat == np.round(flat))
                  and np.all(flat >= 1) and np.all(flat < 2**62))
    if not ok:
        raise ValueError(
            f"{path}: {name} must be a vector of at least two positive whole numbers, got "
            + (f"{array.ravel().tolist()}" if array.dtype.kind in "iufb" and 0 < array.size <= 8
               else f"{array.dtype} {array.shape}")
        )
    return tuple(int(n) for n in array.ravel())


def _checked_version(value: Any, path: PathLike, name: str) -> int:
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iuf" or not np.isfinite(array).all() \
            or float(array.ravel()[0]) != round(float(array.ravel()[0])):
        raise ValueError(f"{path}: {name} must be a whole number, got {value!r}")
    version = int(array.ravel()[0])
    if version not in MAT_VERSIONS:
        raise ValueError(
            f"{path}: jaxnn weights format version {version}; this jaxnn reads .mat files of "
            f"version {', '.join(map(str, MAT_VERSIONS))} (a newer jaxnn wrote it?)"
        )
    return version


# ---- .mat --------------------------------------------------------------------------------------


def _write_mat(f: IO[bytes], thetas: Params, meta: _Meta) -> None:
    """Write `Theta1..ThetaL` (last one in Octave row order) and the model, MATLAB v5."""
    import scipy.io

    mats = list(thetas[:-1]) + [classes_to_octave_rows(thetas[-1])]
    variables: dict[str, Any] = {f"Theta{i + 1}": t for i, t in enumerate(mats)}
    variables |= {
        f"{MAT_PREFIX}format_version": np.array([[float(NPZ_VERSION)]]),
        f"{MAT_PREFIX}layer_sizes": np.array([meta.layer_sizes], dtype=np.float64),
        f"{MAT_PREFIX}activation": meta.activation,
        f"{MAT_PREFIX}output": meta.output,
    }
    scipy.io.savemat(f, variables, format="5")


def _mat_thetas(variables: dict[str, Any], path: PathLike) -> list[Any]:
    """The variables `Theta1, Theta2, ...` of a `.mat` file, in order, as stored."""
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


def _mat_meta(variables: dict[str, Any], path: PathLike) -> tuple[_Meta | None, int]:
    """The model the `jaxnn_*` variables record, and the format version (0: none)."""
    found = {k[len(MAT_PREFIX):] for k in mat_keys(variables) if k.startswith(MAT_PREFIX)}
    if not found & set(MAT_META):
        return None, 0
    missing = [f"{MAT_PREFIX}{k}" for k in MAT_META if k not in found]
    if missing:
        raise ValueError(
            f"{path}: incomplete jaxnn model record: {', '.join(missing)} missing beside "
            f"{', '.join(f'{MAT_PREFIX}{k}' for k in MAT_META if k in found)}"
        )
    get = {k: variables[f"{MAT_PREFIX}{k}"] for k in MAT_META}
    version = _checked_version(get["format_version"], path, f"{MAT_PREFIX}format_version")
    activation, output = _checked_names(get["activation"], get["output"], path)
    sizes = _checked_sizes(get["layer_sizes"], path, f"{MAT_PREFIX}layer_sizes")
    return _Meta(activation, output, sizes), version


# ---- .npz --------------------------------------------------------------------------------------


def _write_npz(f: IO[bytes], thetas: Params, meta: _Meta) -> None:
    """Write `theta_0..theta_{L-1}`, the format marker and the model, uncompressed."""
    arrays = {f"theta_{i}": t for i, t in enumerate(thetas)}
    np.savez(
        f,
        format=np.array(NPZ_FORMAT),
        format_version=np.array(NPZ_VERSION),
        layer_sizes=np.array(meta.layer_sizes, dtype=np.int64),
        activation=np.array(meta.activation),
        output=np.array(meta.output),
        **arrays,
    )


def _npz_thetas(arrays: dict[str, np.ndarray], path: PathLike) -> list[np.ndarray]:
    """The arrays `theta_0, theta_1, ...` of a jaxnn `.npz` file."""
    names = [k for k in arrays if k.startswith("theta_")]
    expected = [f"theta_{i}" for i in range(len(names))]
    if not names or sorted(names) != sorted(expected):
        raise ValueError(
            f"{path}: expected arrays theta_0..theta_{{L-1}} without gaps; "
            f"arrays found: {sorted(arrays)}"
        )
    return [arrays[name] for name in expected]


def _npz_meta(arrays: dict[str, np.ndarray], path: PathLike) -> _Meta:
    """The model a format 2 `.npz` records."""
    missing = [k for k in ("layer_sizes", "activation", "output") if k not in arrays]
    if missing:
        raise ValueError(
            f"{path}: jaxnn weights format 2 without {', '.join(missing)}; arrays found: "
            f"{sorted(arrays)}"
        )
    names = []
    for kind in ("activation", "output"):
        value = arrays[kind]
        if value.shape != () or value.dtype.kind != "U":
            raise ValueError(f"{path}: {kind} must be 0-d text, got {value.dtype} {value.shape}")
        names.append(str(value))
    activation, output = _checked_names(*names, path)
    return _Meta(activation, output, _checked_sizes(arrays["layer_sizes"], path, "layer_sizes"))


def _check_npz_marker(arrays: dict[str, np.ndarray], path: PathLike) -> int:
    """The file must say `format == "jaxnn.weights"` and a version this code reads."""
    marker = arrays.get("format")
    if marker is None or marker.shape != () or str(marker) != NPZ_FORMAT:
        raise ValueError(
            f"{path}: not a jaxnn weights file (format marker {NPZ_FORMAT!r} missing); "
            f"arrays found: {sorted(arrays)}. Write weights with jaxnn.save_weights, or save "
            "the Theta arrays in a .mat file (scipy.io.savemat), which loads as the course's"
        )
    version = arrays.get("format_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{path}: jaxnn weights file without a valid format_version")
    if int(version) not in NPZ_VERSIONS:
        raise ValueError(
            f"{path}: jaxnn weights format version {int(version)}; this jaxnn reads versions "
            f"{', '.join(map(str, NPZ_VERSIONS))}"
        )
    return int(version)
