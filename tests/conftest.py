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

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(
    "explore" if os.environ.get("JAXNN_HYPOTHESIS", "").lower() == "explore" else "repeatable"
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EX4WEIGHTS = SHARED_DATA / "ex4weights.mat"


def course_debug_problem() -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """``layer_sizes (3, 5, 3)``, ``X = sin(1..15)/10`` column-major ``(5, 3)``, ``y``."""
    X = (np.sin(np.arange(1, 16, dtype=np.float64)) / 10).reshape((5, 3), order="F")
    return (3, 5, 3), X, np.array([1, 2, 0, 1, 2])


@pytest.fixture
def ex4weights_path() -> Path:
    if not EX4WEIGHTS.exists():
        pytest.skip(f"the course's ex4weights.mat is not at {EX4WEIGHTS} (../shared is absent)")
    return EX4WEIGHTS
