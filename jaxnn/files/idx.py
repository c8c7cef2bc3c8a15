"""MNIST IDX files (``train-images-idx3-ubyte[.gz]`` and friends), gzipped or not.

:func:`load_idx` reads a pair of files into ``(X, y)``; :func:`iter_idx` streams them in batches
so that memory follows the batch, not the file. Magic numbers, dimensions and counts are
checked, and a truncated or corrupt file is a ``ValueError`` naming the file. Both are also
available as ``jaxnn.datasets.load_idx`` and ``jaxnn.datasets.iter_idx``.

Memory follows the header: the dimensions give the exact number of bytes, nothing past them
is inflated (a gzip stream that goes on is corrupt), a result that cannot fit in memory is
refused before anything is read (:func:`jaxnn.memory.check_memory`), and pixels are converted
to floats in chunks of 4 MiB, so loading costs the result plus a few MiB.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from jaxnn.checks import (
    check_float_dtype,
    check_input_file,
    check_order,
    check_path,
    non_negative_int,
    positive_int,
)
from jaxnn.defaults import STREAM_CHUNK
from jaxnn.memory import check_memory
from jaxnn.names import Order, PathLike

__all__ = ["idx_count", "iter_idx", "load_idx"]



# ---- MNIST IDX files ---------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
_CHUNK = 1 << 22  # read at most 4 MiB at a time, so corrupt headers cannot force huge reads


class _IdxReader:
    """Sequential reader of one IDX file (unsigned-byte data), gzipped or not.

    Compression is detected by the gzip magic bytes `1f 8b`, not by the file name. The header
    is validated on open: magic `00 00 08 <ndim>` with the expected `ndim` (3 for images, 1 for
    labels), then the dimensions. For uncompressed files the size is checked against the
    header at once; for gzipped files truncation and trailing data are found while reading.
    """

    def __init__(self, path: PathLike, kind: Literal["images", "labels"]) -> None:
        check_path(path, kind)
        self.path = Path(path)
        self.kind = kind
        check_input_file(self.path)  # OSError naming the path; a FIFO or device: ValueError
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
        kind = "a gzipped" if self.compressed else "an"
        return ValueError(f"{self.path}: {problem} (reading it as {kind} IDX {self.kind} file)")

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
        """Read exactly `n` bytes into a buffer of that size, in bounded chunks (never more);
        truncation and gzip errors -> ValueError."""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        try:
            while got < n:
                k = self._f.readinto(view[got : got + min(n - got, _CHUNK)])
                if not k:
                    break
                got += k
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            problem = f"corrupt or truncated gzip data while reading {what}: {exc}"
            raise self._error(problem) from exc
        if got < n:
            raise self._error(f"truncated file: needed {n} bytes for {what}, got {got}")
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


def idx_count(images: PathLike, labels: PathLike) -> int:
    """Number of examples in a pair of IDX files, from their headers (validated; nothing else
    is read)."""
    img, lab = _open_idx_pair(images, labels)
    img.close()
    lab.close()
    return int(img.count)


def _pixels_to_X(pixels: np.ndarray, rows: int, cols: int, order: Order, dtype: Any,
                 out: np.ndarray | None = None) -> np.ndarray:
    """uint8 `(k, rows*cols)` row-major pixels -> `dtype` `(k, rows*cols)` in `order`, / 255
    (into `out` when given)."""
    if order == "F":
        pixels = pixels.reshape(-1, rows, cols).transpose(0, 2, 1).reshape(-1, rows * cols)
    X = np.empty(pixels.shape, dtype=dtype) if out is None else out
    np.divide(pixels, 255, out=X, casting="unsafe")
    return X


def _check_size(img: _IdxReader, k: int, dtype: np.dtype, what: str) -> None:
    """`k` examples as `dtype` (plus their int64 labels) must fit in memory."""
    need = k * (img.item_size * dtype.itemsize + 8) + min(k * img.item_size, _CHUNK)
    smaller = ", or pass dtype=np.float32" if dtype.itemsize > 4 else ""
    check_memory(need, f"{img.path}: {what} of {img.dims[1]}x{img.dims[2]} pixels as {dtype}",
                 hint=f"read a slice (offset=, max_examples=) or stream them with "
                 f"iter_idx{smaller}", device="host")


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
            images: 188 MB instead of 376 MB); any other kind is a `ValueError`.
        offset: index of the first example to read.
        max_examples: read at most this many examples (default: all the rest). With
            `offset` this reads a slice without reading the rest of an uncompressed file.

    Returns:
        `(X, y)`: `X` of shape `(m, rows * cols)` with pixels / 255 in `[0, 1]`, `y` int64 `(m,)`.

    Raises:
        FileNotFoundError (and other `OSError`s, naming the file): a file cannot be opened.
        ValueError: bad `order`, `dtype`, `offset` or `max_examples`; corrupt, truncated or
            mismatched files; a result that cannot fit in memory (refused before reading).
    """
    check_order(order)
    dtype = check_float_dtype(dtype)
    img, lab = _open_idx_pair(images, labels)
    with img, lab:
        start, stop = _window(img.count, offset, max_examples)
        k = stop - start
        _check_size(img, k, dtype, f"{k:,} images")
        img.skip(start)
        lab.skip(start)
        X = np.empty((k, img.item_size), dtype=dtype)
        step = max(1, _CHUNK // img.item_size)
        for s in range(0, k, step):
            e = min(k, s + step)
            _pixels_to_X(img.read(e - s), *img.dims[1:], order, dtype, out=X[s:e])
        y = lab.read(k)
        if stop == img.count:
            img.check_end()
            lab.check_end()
    return X, y.ravel().astype(np.int64)


def iter_idx(
    images: PathLike,
    labels: PathLike,
    *,
    batch_size: int = STREAM_CHUNK,
    order: Order = "C",
    dtype: Any = np.float64,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream IDX files in batches: memory holds one batch, never the whole file.

    Yields `(X, y)` batches (as in `load_idx`) of `batch_size` examples, the last one
    possibly smaller. Files are validated as in `load_idx`; corruption found mid-way raises
    `ValueError` when it is reached.
    """
    check_order(order)
    dtype = check_float_dtype(dtype)
    batch_size = positive_int(batch_size, "batch_size")
    img, lab = _open_idx_pair(images, labels)  # validate headers now, not at the first next()
    img.close()
    lab.close()
    _check_size(img, min(batch_size, img.count), dtype, f"batches of {batch_size:,} images")
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
    offset = non_negative_int(offset, "offset")
    if offset > count:
        raise ValueError(f"offset must be in 0..{count} (the number of examples), got {offset}")
    if max_examples is not None:
        max_examples = non_negative_int(max_examples, "max_examples")
    stop = count if max_examples is None else min(count, offset + max_examples)
    return offset, stop
