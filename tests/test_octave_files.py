"""jaxnn and GNU Octave read each other's files: fixtures written by Octave 7.3.

``tests/data/octave/regenerate.py`` wrote them: jaxnn saved a 6-4-3 network
(``jaxnn_weights.mat``) and Octave loaded it, classified 20 examples with the course's
``predict.m`` formulas, and saved the weights again in its three MAT formats and a data file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

import jaxnn as nn
from jaxnn.datasets import load_mat
from jaxnn.files.mat import read_mat
from jaxnn.io import load_weights

DATA = Path(__file__).resolve().parent / "data" / "octave"
K = 3


def octave_to_class(labels: np.ndarray) -> np.ndarray:
    """The course's labels ``1..K`` (``K`` standing for class 0) as jaxnn's ``0..K-1``."""
    return np.where(labels == K, 0, labels)


@pytest.fixture(scope="module")
def weights() -> tuple[np.ndarray, ...]:
    return load_weights(DATA / "jaxnn_weights.mat")


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return scipy.io.loadmat(DATA / "examples.mat")["X"]


@pytest.fixture(scope="module")
def p_octave() -> np.ndarray:
    """Octave's labels ``1..K`` for the 20 examples."""
    return read_mat(DATA / "octave_predict.mat")["p"].ravel()


def test_octave_classifies_jaxnn_weights_as_jaxnn_does(weights, X, p_octave) -> None:
    assert sorted(set(p_octave.tolist())) == [1, 2, 3]  # every class occurs: a real check
    with nn.x64():
        p_jaxnn = np.asarray(nn.predict(weights, X))
    assert np.array_equal(octave_to_class(p_octave), p_jaxnn)


def test_ravel_params_is_octaves_unrolling(weights) -> None:
    unrolled = read_mat(DATA / "octave_unrolled.mat")["nn_params"].ravel()
    # save_weights stores the last layer in Octave's row order; unroll that layout
    octave_layout = (weights[0], np.roll(weights[1], -1, axis=0))
    with nn.x64():
        assert np.array_equal(np.asarray(nn.ravel_params(octave_layout)), unrolled)
        back = nn.unravel_params(unrolled, (6, 4, 3))
        assert all(np.array_equal(np.asarray(a), b) for a, b in zip(back, octave_layout,
                                                                      strict=True))


@pytest.mark.parametrize("name", ["octave_weights_v7.mat", "octave_weights_v6.mat",
                                  "octave_weights_mat7_binary.mat"])
def test_weights_saved_by_octave_load_exactly(weights, name: str) -> None:
    loaded = load_weights(DATA / name)
    assert [t.shape for t in loaded] == [(4, 7), (3, 5)]
    assert all(np.array_equal(a, b) for a, b in zip(loaded, weights, strict=True))


@pytest.mark.parametrize("name", ["octave_data_v6.mat", "octave_data_v7.mat"])
def test_data_saved_by_octave_loads_with_labels_rotated(X, p_octave, name: str) -> None:
    Xo, y = load_mat(DATA / name)
    assert np.array_equal(Xo, X)
    assert np.array_equal(y, octave_to_class(p_octave))
