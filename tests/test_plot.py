"""Tests of jaxnn.plot: the image mosaic, layouts, and that every figure saves as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxnn import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_image_grid_places_column_major_tiles_like_display_data() -> None:
    images = np.arange(1, 2 * 6 + 1, dtype=float).reshape(2, 6)  # two 2x3 images
    mosaic = plot.image_grid(images, (2, 3), "F", ncols=2, pad=1)
    assert mosaic.shape == (1 + 1 * (2 + 1), 1 + 2 * (3 + 1))
    first = images[0].reshape((2, 3), order="F") / 6
    np.testing.assert_allclose(mosaic[1:3, 1:4], first)
    np.testing.assert_allclose(mosaic[1:3, 5:8], images[1].reshape((2, 3), order="F") / 12)
    assert np.all(mosaic[0] == -1) and np.all(mosaic[:, 4] == -1)  # borders


def test_image_grid_scales_each_image_and_fills_the_last_row() -> None:
    images = np.array([[0.0, 0.0, 0.0, 0.0], [-4.0, 2.0, 1.0, 0.0], [1, 1, 1, 1]])
    mosaic = plot.image_grid(images, (2, 2), "C", pad=0)  # 2 columns, 2 rows
    assert mosaic.shape == (4, 4)
    np.testing.assert_allclose(mosaic[:2, :2], 0.0)  # an all-zero image stays zero
    np.testing.assert_allclose(mosaic[:2, 2:], [[-1.0, 0.5], [0.25, 0.0]])
    np.testing.assert_allclose(mosaic[2:, 2:], -1.0)  # empty slot
    assert mosaic.min() >= -1 and mosaic.max() <= 1


@pytest.mark.parametrize(
    ("images", "shape", "order"),
    [(np.ones((2, 5)), (2, 2), "C"), (np.ones(4), (2, 2), "C"), (np.ones((0, 4)), (2, 2), "C"),
     (np.ones((1, 4)), (2, 2), "X")],
)
def test_image_grid_rejects_bad_input(images: np.ndarray, shape: tuple[int, int],
                                      order: str) -> None:
    with pytest.raises(ValueError):
        plot.image_grid(images, shape, order)  # type: ignore[arg-type]


def test_image_layout() -> None:
    assert plot.image_layout(400) == ((20, 20), "F")
    assert plot.image_layout(64) == ((8, 8), "C")
    assert plot.image_layout(784) == ((28, 28), "C")
    assert plot.image_layout(16, "mat") == ((4, 4), "F")
    assert plot.image_layout(10) is None


def _saved(fig, path: Path) -> bytes:  # noqa: ANN001
    plot.save_png(fig, path)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return data


def test_every_figure_saves_as_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 400))
    params = (rng.normal(size=(25, 401)), rng.normal(size=(10, 26)))
    _saved(plot.digit_grid(X, n=12, title="digits"), tmp_path / "d.png")
    _saved(plot.digit_grid(X[:, :64], (8, 8), "C", seed=None), tmp_path / "d8.png")
    _saved(plot.hidden_units(params), tmp_path / "h.png")
    _saved(plot.hidden_units(params[0], title="units"), tmp_path / "h1.png")
    _saved(plot.cost_curve(np.exp(-np.arange(50.0)) + 1e-3), tmp_path / "c.png")
    _saved(plot.cost_curve([]), tmp_path / "empty.png")
    _saved(plot.confusion_matrix(rng.integers(0, 50, (10, 10))), tmp_path / "cm.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["d.png", "d8.png", "h.png", "h1.png", "c.png", "empty.png", "cm.png"])


def test_figure_checks() -> None:
    with pytest.raises(ValueError):
        plot.confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError):
        plot.hidden_units(np.ones(5))
    with pytest.raises(ValueError):
        plot.digit_grid(np.ones(5))
