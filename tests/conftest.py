"""Shared fixtures: the course's small gradient-check problem and the pretrained weights.

Hypothesis draws the same examples on every run (``derandomize``), so that a test run, and CI,
gives the same verdict each time; ``JAXNN_HYPOTHESIS=explore python -m pytest ...`` draws new
random examples instead, to look for new failures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# the command's persistent compilation cache would change JAX's configuration for the whole
# test process and write to the user's cache: off in tests (test_cli checks it in a subprocess)
os.environ.setdefault("JAXNN_COMPILE_CACHE", "0")

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(
    "explore" if os.environ.get("JAXNN_HYPOTHESIS", "").lower() == "explore" else "repeatable"
)

# the course's pretrained 400-25-10 network: $JAXNN_EX4WEIGHTS names a copy; a checkout that
# sits beside the project's shared/ folder finds it there
EX4WEIGHTS = Path(os.environ.get("JAXNN_EX4WEIGHTS") or
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "ex4weights.mat")
EX4WEIGHTS_SKIP = (f"the course's ex4weights.mat was not found at {EX4WEIGHTS}: set "
                   "JAXNN_EX4WEIGHTS to the path of your copy to run this test")


def ex4weights_or_skip() -> Path:
    """The path of the course's ``ex4weights.mat``, or skip the test saying how to provide it."""
    if not EX4WEIGHTS.is_file():
        pytest.skip(EX4WEIGHTS_SKIP)
    return EX4WEIGHTS


def course_debug_problem() -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """``layer_sizes (3, 5, 3)``, ``X = sin(1..15)/10`` column-major ``(5, 3)``, ``y``."""
    X = (np.sin(np.arange(1, 16, dtype=np.float64)) / 10).reshape((5, 3), order="F")
    return (3, 5, 3), X, np.array([1, 2, 0, 1, 2])


@pytest.fixture
def ex4weights_path() -> Path:
    return ex4weights_or_skip()


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    """A 120-example, 6-feature, 3-class problem as an ``.npz`` file for the command."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, X=X, y=y)
    return path
