"""The course's own data file, ``ex4data1.mat``, with its pretrained ``ex4weights.mat``.

The data file is not redistributable: these tests run when ``$JAXNN_EX4DATA`` names a user's
copy (and ``../shared/data/ex4weights.mat`` is present), and skip otherwise. The costs are the
course's published values (ARCHITECTURE.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import jaxnn as nn
from jaxnn.datasets import load_mat

EX4DATA = os.environ.get("JAXNN_EX4DATA", "")

pytestmark = pytest.mark.skipif(
    not EX4DATA or not Path(EX4DATA).is_file(),
    reason="set JAXNN_EX4DATA to a copy of the course's ex4data1.mat to run these tests",
)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return load_mat(EX4DATA)


@pytest.fixture
def weights(ex4weights_path: Path) -> tuple[np.ndarray, ...]:
    return nn.load_weights(ex4weights_path)


def test_ex4data1_layout(data) -> None:
    X, y = data
    assert X.shape == (5000, 400) and X.dtype == np.float64
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, 500))


@pytest.mark.parametrize(("lam", "expected"), [(0.0, 0.287629), (1.0, 0.383770),
                                               (3.0, 0.576051)])
def test_course_costs_of_the_pretrained_weights(data, weights, lam: float,
                                                expected: float) -> None:
    X, y = data
    with nn.x64():
        J = float(nn.cost(weights, X, y, lam))
        J_backprop = float(nn.backprop(weights, X, y, lam)[0])
    assert J == pytest.approx(expected, abs=5e-7)
    assert J_backprop == pytest.approx(J, rel=1e-12)


def test_pretrained_weights_classify_the_course_digits(data, weights) -> None:
    X, y = data
    with nn.x64():
        assert float(nn.accuracy(weights, X, y)) >= 0.97
