"""Hostile files: small files that declare or inflate to gigabytes, file-system oddities
(symlink loops, FIFOs, devices, directories), and loaders asked for dtypes they cannot give.

Every case is refused quickly with a clear error naming the file, and memory stays low:
``tracemalloc`` (which sees numpy's buffers and Python's bytes) measures the peak.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import signal
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from jaxnn import datasets
from jaxnn.datasets import iter_idx, load_idx, load_mat, mnist5k
from jaxnn.files import idx as idx_module
from jaxnn.files.mat import read_mat
from jaxnn.io import load_model, load_weights, read_npz, save_weights
from jaxnn.memory import MEMORY_LIMIT_ENV

MiB = 2**20


def peak(call: Callable[[], object]) -> tuple[int, float, object]:
    """`(peak bytes traced, seconds, result or the exception raised)` of `call()`."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: object = call()
    except Exception as exc:  # the caller asserts what it is
        result = exc
    seconds = time.perf_counter() - start
    top = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return top, seconds, result


# ---- crafted files -----------------------------------------------------------------------------


def _element(mdtype: int, payload: bytes) -> bytes:
    if len(payload) <= 4:
        return struct.pack("<I", len(payload) << 16 | mdtype) + payload.ljust(4, b"\0")
    return struct.pack("<II", mdtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


MAT_HEADER = b"MATLAB 5.0 MAT-file, hostile".ljust(116) + b"\0" * 8 + b"\x00\x01IM"


def compressed_mat(path: Path, name: str, rows: int, *, declared: int | None = None,
                   stream: int | None = None) -> Path:
    """A .mat with one compressed double column vector `name` of `rows` zeros.

    `declared`: the length the inner tag declares (default: the true one); `stream`: how many
    bytes of zeros the compressed stream really inflates to after the matrix header (default:
    `rows * 8`). Zeros compress about 1000:1, so the file stays small."""
    head = (_element(6, struct.pack("<II", 6, 0)) + _element(5, struct.pack("<2i", rows, 1))
            + _element(1, name.encode()) + struct.pack("<II", 9, rows * 8))
    data = rows * 8 if stream is None else stream
    size = len(head) + rows * 8 if declared is None else declared
    c = zlib.compressobj(9)
    parts = [c.compress(struct.pack("<II", 14, size) + head)]
    zeros = b"\0" * MiB
    while data:
        parts.append(c.compress(zeros[: min(data, MiB)]))
        data -= min(data, MiB)
    parts.append(c.flush())
    body = b"".join(parts)
    path.write_bytes(MAT_HEADER + struct.pack("<II", 15, len(body)) + body)
    return path


def gzip_idx(path: Path, count: int, rows: int, cols: int, *, stream: int | None = None) -> Path:
    """A gzipped IDX images file whose header declares `count` images of `rows x cols`,
    followed by `stream` zero bytes (default: exactly what the header declares)."""
    data = count * rows * cols if stream is None else stream
    with gzip.GzipFile(path, "wb", compresslevel=9) as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", count, rows, cols))
        zeros = b"\0" * MiB
        while data:
            f.write(zeros[: min(data, MiB)])
            data -= min(data, MiB)
    return path


def gzip_labels(path: Path, count: int) -> Path:
    with gzip.GzipFile(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", count))
        for start in range(0, count, MiB):
            f.write(b"\0" * min(MiB, count - start))
    return path


# ---- .mat: bounded by what the header declares -------------------------------------------------


def test_a_mat_that_inflates_past_its_declared_length_is_refused(tmp_path: Path) -> None:
    """The tag says one 1x1 matrix; the stream goes on for 128 MiB of zeros."""
    path = compressed_mat(tmp_path / "w.mat", "Theta1", 1, stream=128 * MiB)
    assert path.stat().st_size < 200_000
    top, seconds, result = peak(lambda: load_weights(path))
    assert isinstance(result, ValueError), result
    assert str(path) in str(result) and "inflates past the" in str(result)
    assert top < 2 * MiB, top  # the 128 MiB were never inflated
    assert seconds < 2, seconds


def test_a_mat_that_declares_more_than_memory_is_refused_before_inflating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An honest 128 MiB variable on a machine (so capped) with 32 MiB to spare."""
    path = compressed_mat(tmp_path / "w.mat", "Theta1", 16 * MiB)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(32 * MiB))
    top, seconds, result = peak(lambda: load_weights(path))
    assert isinstance(result, ValueError), result
    message = str(result)
    assert message.startswith(f"{path}: variable 1: a compressed variable that declares "
                              "134,217,784 bytes: needs about 128.0 MiB of memory but only "
                              "32.0 MiB is available"), message
    assert top < MiB and seconds < 1, (top, seconds)


def test_an_honest_compressed_variable_loads_with_one_copy(tmp_path: Path) -> None:
    """8 MiB of doubles: inflated once, into the buffer the array then views (no copies)."""
    path = compressed_mat(tmp_path / "w.mat", "Theta1", MiB)
    top, _, variables = peak(lambda: read_mat(path))
    assert isinstance(variables, dict), variables
    theta = variables["Theta1"]
    assert theta.shape == (MiB, 1) and theta.dtype == np.float64 and not theta.any()
    assert theta.flags.writeable
    assert top < 8 * MiB + MiB, top  # the inflated bytes are the array's memory
    with pytest.warns(UserWarning, match="holds only Theta1"):  # no Theta2: said, still read
        top, _, params = peak(lambda: load_weights(path))
    assert isinstance(params, tuple) and params[0].shape == (MiB, 1)
    assert top < 2 * 8 * MiB + 2 * MiB, top  # plus one copy: the label rotation


def test_a_stream_shorter_than_its_tag_is_corrupt(tmp_path: Path) -> None:
    path = compressed_mat(tmp_path / "w.mat", "Theta1", 1000, stream=100)
    with pytest.raises(ValueError, match="cut short: its tag declares") as info:
        load_weights(path)
    assert str(path) in str(info.value)


def test_an_uncompressed_mat_declaring_huge_dimensions(tmp_path: Path) -> None:
    """Dimensions of 2**31 - 1 squared doubles behind 8 bytes of data: refused, no allocation."""
    body = (_element(6, struct.pack("<II", 6, 0)) + _element(5, struct.pack("<2i", 2**31 - 1,
                                                                            2**31 - 1))
            + _element(1, b"X") + _element(9, b"\0" * 8))
    path = tmp_path / "d.mat"
    path.write_bytes(MAT_HEADER + struct.pack("<II", 14, len(body)) + body)
    top, seconds, result = peak(lambda: load_mat(path))
    assert isinstance(result, ValueError), result
    assert str(result).startswith(f"{path}: variable 'X' of shape (2147483647, 2147483647): "
                                  "needs about 32768.0 PiB of memory")
    assert top < MiB and seconds < 1


def test_load_mat_float32_makes_no_float64_copy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 500))  # 8 MB of doubles, Fortran order in the file
    path = tmp_path / "d.mat"
    scipy.io.savemat(path, {"X": X, "y": (np.arange(2000) % 10 + 1.0).reshape(-1, 1)})
    top, _, result = peak(lambda: load_mat(path, dtype=np.float32))
    X32, y = result
    assert X32.dtype == np.float32 and np.array_equal(X32, X.astype(np.float32))
    assert y.tolist()[:3] == [1, 2, 3]
    # the file (8 MB) and the float32 result (4 MB); a float64 copy would add 8 MB
    assert top < X.nbytes + X32.nbytes + 2 * MiB, top
    X64, _ = load_mat(path)
    assert X64.dtype == np.float64 and np.array_equal(X64, X)


# ---- IDX: the header gives the exact byte count ------------------------------------------------


def test_an_idx_that_declares_terabytes_is_refused_before_reading(tmp_path: Path) -> None:
    images = gzip_idx(tmp_path / "img.gz", 2**32 - 1, 28, 28, stream=0)
    labels = gzip_labels(tmp_path / "lab.gz", 0)
    labels.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 2**32 - 1)))
    top, seconds, result = peak(lambda: load_idx(images, labels, dtype=np.float32))
    assert isinstance(result, ValueError), result
    assert str(result).startswith(f"{images}: 4,294,967,295 images of 28x28 pixels as float32:"
                                  " needs about")
    assert "iter_idx" in str(result)  # what to do instead
    assert top < MiB and seconds < 1


def test_an_idx_that_inflates_past_its_header_stops_there(tmp_path: Path) -> None:
    """The header says 10 images; the gzip stream goes on for 128 MiB."""
    images = gzip_idx(tmp_path / "img.gz", 10, 28, 28, stream=128 * MiB)
    labels = gzip_labels(tmp_path / "lab.gz", 10)
    assert images.stat().st_size < 200_000
    top, seconds, result = peak(lambda: load_idx(images, labels))
    assert isinstance(result, ValueError), result
    assert "unexpected data after the 10 images of 28x28" in str(result)
    assert top < 2 * MiB and seconds < 2, (top, seconds)


def test_an_idx_too_large_for_memory_is_refused_before_inflating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = gzip_idx(tmp_path / "img.gz", 100_000, 28, 28)  # 78 MB of pixels, 80 KB on disk
    labels = gzip_labels(tmp_path / "lab.gz", 100_000)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(64 * MiB))
    top, seconds, result = peak(lambda: load_idx(images, labels, dtype=np.float32))
    assert isinstance(result, ValueError), result
    # 100,000 x 784 float32 pixels (299.1 MiB), their int64 labels and a 4 MiB read buffer
    assert "needs about 303.8 MiB of memory but only 64.0 MiB is available" in str(result)
    assert top < MiB and seconds < 1
    X, _ = load_idx(images, labels, max_examples=1000, dtype=np.float32)  # a slice fits
    assert X.shape == (1000, 784)


def test_load_idx_memory_is_the_result_plus_a_chunk(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5000, 28, 28), dtype=np.uint8)
    images = tmp_path / "img.gz"
    images.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 5000, 28, 28)
                                     + pixels.tobytes(), compresslevel=1))
    labels = gzip_labels(tmp_path / "lab.gz", 5000)
    monkeypatch.setattr(idx_module, "_CHUNK", 1 << 16)
    for order in ("C", "F"):
        top, _, (X, y) = peak(lambda o=order: load_idx(images, labels, dtype=np.float32,
                                                       order=o))
        upright = X.reshape(5000, 28, 28) if order == "C" else \
            X.reshape(5000, 28, 28).swapaxes(1, 2)
        assert np.array_equal(np.rint(upright * 255).astype(np.uint8), pixels)
        # X (15.7 MB) and y; not a second copy of the pixels (3.9 MB) or of X
        assert top < X.nbytes + y.nbytes + MiB, (order, top)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64, bool, "complex64", "U3", "x"])
def test_loaders_refuse_dtypes_that_are_not_floating(tmp_path: Path, dtype) -> None:
    images = gzip_idx(tmp_path / "img.gz", 2, 2, 2)
    labels = gzip_labels(tmp_path / "lab.gz", 2)
    matfile = tmp_path / "d.mat"
    scipy.io.savemat(matfile, {"X": np.ones((2, 2)), "y": [[1], [2]]})
    message = "dtype must be a floating dtype such as np.float32 or np.float64"
    with pytest.raises(ValueError, match=message):
        load_idx(images, labels, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        iter_idx(images, labels, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        load_mat(matfile, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        mnist5k(cache_dir=tmp_path, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_loaders_give_the_floating_dtype_asked_for(tmp_path: Path, dtype) -> None:
    images = tmp_path / "img"
    images.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 1, 2) + bytes([0, 51, 102,
                                                                                  255]))
    labels = gzip_labels(tmp_path / "lab.gz", 2)
    X, _ = load_idx(images, labels, dtype=dtype)
    assert X.dtype == dtype and np.array_equal(X, np.array([[0, 0.2], [0.4, 1]], dtype))
    assert next(iter_idx(images, labels, dtype=dtype))[0].dtype == dtype


# ---- .npz: declared sizes checked before reading -----------------------------------------------


def _npz_with(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(shape: tuple[int, ...], data: bytes, dtype: str = "<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return out.getvalue() + data


@pytest.mark.parametrize("loader", [load_weights, load_model, read_npz])
def test_an_npz_declaring_a_terabyte_array_is_refused(tmp_path: Path, loader) -> None:
    path = _npz_with(tmp_path / "w.npz", {
        "format.npy": _npy((), np.array("jaxnn.weights").tobytes(), "<U13"),
        "theta_0.npy": _npy((10**12,), b"\0" * 64)})
    top, seconds, result = peak(lambda: loader(path))
    assert isinstance(result, ValueError), result
    assert str(result).startswith(f"{path}: arrays of 8,000,000,000,0")
    assert "needs about 7.3 TiB of memory" in str(result)
    assert top < MiB and seconds < 1


def test_an_npz_of_deflated_zeros_too_large_for_memory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _npz_with(tmp_path / "w.npz", {"theta_0.npy": _npy((16 * MiB,), b"\0" * 128 * MiB)},
                     compress=True)
    assert path.stat().st_size < 1_000_000
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(32 * MiB))
    top, seconds, result = peak(lambda: load_weights(path))
    assert isinstance(result, ValueError) and "128.0 MiB" in str(result), result
    assert top < MiB and seconds < 1


def test_an_npy_or_a_pickle_named_npz_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    path.write_bytes(_npy((10**12,), b""))  # np.load would try to allocate 8 TB
    with pytest.raises(ValueError, match="not an .npz file .no zip signature."):
        load_weights(path)
    path.write_bytes(b"\x80\x04\x95")  # a pickle
    with pytest.raises(ValueError, match="not an .npz file"):
        read_npz(path)


# ---- the file system: its errors stay OSError naming the path ----------------------------------


def _looped(directory: Path, name: str) -> Path:
    """`directory/name` -> `directory/other-name` -> `directory/name`: a symlink loop."""
    path, other = directory / name, directory / f"other-{name}"
    path.symlink_to(other)
    other.symlink_to(path)
    return path


@pytest.mark.parametrize(("name", "load"), [
    ("w.mat", load_weights), ("w.npz", load_weights), ("w.mat", load_model),
    ("d.mat", load_mat), ("d.npz", read_npz), ("d.mat", read_mat),
    ("images.gz", lambda p: load_idx(p, p)), ("images.gz", lambda p: iter_idx(p, p)),
])
def test_a_symlink_loop_is_an_oserror_naming_the_path(tmp_path: Path, name: str,
                                                       load) -> None:
    path = _looped(tmp_path, name)
    with pytest.raises(OSError) as info:
        load(path)
    assert info.value.errno == errno.ELOOP and info.value.filename == str(path)
    assert not isinstance(info.value, ValueError)


@pytest.mark.parametrize(("name", "load"), [
    ("w.mat", load_weights), ("w.npz", load_weights), ("d.mat", load_mat),
    ("images.gz", lambda p: load_idx(p, p)),
    ("weights", load_weights),  # no suffix: a directory first, not an unsupported suffix
])
def test_a_directory_is_an_is_a_directory_error(tmp_path: Path, name: str, load) -> None:
    path = tmp_path / name
    path.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        load(path)
    assert info.value.filename == str(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize(("name", "load"), [
    ("w.mat", load_weights), ("w.npz", load_weights), ("d.mat", load_mat),
    ("images.gz", lambda p: load_idx(p, p)),
])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, name: str, load) -> None:
    path = tmp_path / name
    os.mkfifo(path)

    def hung(*args):
        raise TimeoutError(f"still waiting on the FIFO {path}")

    previous = signal.signal(signal.SIGALRM, hung)  # a regression fails, it does not hang
    signal.alarm(10)
    try:
        start = time.perf_counter()
        with pytest.raises(ValueError, match="not a regular file") as info:
            load(path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert str(path) in str(info.value) and time.perf_counter() - start < 1


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize(("name", "load"), [
    ("w.mat", load_weights), ("w.npz", load_weights), ("d.mat", load_mat),
    ("images.gz", lambda p: load_idx(p, p)),
])
def test_an_endless_device_is_refused_not_read(tmp_path: Path, name: str, load) -> None:
    path = tmp_path / name
    path.symlink_to("/dev/zero")
    top, seconds, result = peak(lambda: load(path))
    assert isinstance(result, ValueError) and "not a regular file" in str(result), result
    assert top < MiB and seconds < 1


def test_mnist5k_with_an_unusable_cache_dir_warns_and_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = np.zeros(datasets.MNIST5K_SHAPE)
    y = np.arange(5000, dtype=np.int64) % 10
    monkeypatch.setattr(datasets, "_build_mnist5k", lambda: (X, y))
    directory = _looped(tmp_path, "cache")
    with pytest.warns(RuntimeWarning, match="could not cache mnist5k at") as record:
        X2, y2 = mnist5k(cache_dir=directory)
    assert str(directory) in str(record[0].message)
    assert X2 is X and y2 is y
    X32, _ = mnist5k(cache_dir=tmp_path / "ok", dtype=np.float32)
    assert X32.dtype == np.float32
    X32, _ = mnist5k(cache_dir=tmp_path / "ok", dtype=np.float32)  # from the cache
    assert X32.dtype == np.float32 and np.array_equal(X32, X)


def test_mnist5k_ignores_a_cache_that_declares_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = np.zeros(datasets.MNIST5K_SHAPE)
    y = np.arange(5000, dtype=np.int64) % 10
    monkeypatch.setattr(datasets, "_build_mnist5k", lambda: (X, y))
    _npz_with(tmp_path / datasets.MNIST5K_FILE, {"X.npy": _npy((10**12,), b"")})
    top, _, result = peak(lambda: mnist5k(cache_dir=tmp_path))
    assert isinstance(result, tuple) and result[0] is X  # rebuilt, not read
    assert top < X.nbytes + 4 * MiB


def test_save_weights_then_the_memory_rule_still_loads_small_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cap far below the machine's still lets ordinary files through."""
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(MiB))
    params = (np.ones((3, 4)), np.ones((2, 4)))
    for suffix in (".mat", ".npz"):
        save_weights(tmp_path / f"w{suffix}", params, activation="relu")
        assert load_model(tmp_path / f"w{suffix}").activation == "relu"
