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


# ---- cost curve: starts at the initial cost, log scale on request -----------------------------


def test_cost_curve_starts_at_the_initial_cost() -> None:
    history = [3.0, 2.0, 1.5, 1.25]
    line = plot.cost_curve(history, initial=6.5).axes[0].lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(line.get_ydata(), [6.5, 3.0, 2.0, 1.5, 1.25])
    ax = plot.cost_curve(history).axes[0]  # without it: history[i] at iteration i + 1
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3, 4])
    assert ax.get_xlim() == (1.0, 4.0)
    assert plot.cost_curve([], initial=2.0).axes[0].lines[0].get_ydata().tolist() == [2.0]


@pytest.mark.parametrize("initial", [float("nan"), float("inf"), "7", 1 + 2j, [1.0]])
def test_cost_curve_rejects_a_bad_initial_cost(initial: object) -> None:
    with pytest.raises(ValueError, match="initial"):
        plot.cost_curve([1.0, 0.5], initial=initial)  # type: ignore[arg-type]


def test_cost_curve_log_scale() -> None:
    narrow = [6.6, 3.3, 1.0, 0.5]  # spans a factor 13: linear unless asked
    assert plot.cost_curve(narrow).axes[0].get_yscale() == "linear"
    ax = plot.cost_curve(narrow, initial=7.0, log=True).axes[0]
    assert ax.get_yscale() == "log"
    assert ax.lines[0].get_ydata()[0] == 7.0
    wide = np.exp(-np.arange(50.0)) + 1e-3  # a factor 1000: log by default, linear on request
    assert plot.cost_curve(wide).axes[0].get_yscale() == "log"
    assert plot.cost_curve(wide, log=False).axes[0].get_yscale() == "linear"
    # a log scale cannot show a zero or negative cost: the scale stays linear
    assert plot.cost_curve([1.0, 0.0, -1.0], log=True).axes[0].get_yscale() == "linear"


def test_cost_curve_log_ticks_are_plain_numbers() -> None:
    fig = plot.cost_curve(np.linspace(7.0, 0.5, 51), log=True)
    fig.canvas.draw()
    labels = {t.get_text() for t in fig.axes[0].get_yticklabels(minor=True)} | {
        t.get_text() for t in fig.axes[0].get_yticklabels()}
    assert {"1", "2", "5"} <= labels, labels
    assert not any("e" in text or "^" in text for text in labels), labels


# ---- confusion matrix: a few errors stay visible beside hundreds of correct answers -----------


def _cell_colour(fig, i: int, j: int) -> np.ndarray:  # noqa: ANN001
    """The rendered RGB (0..1) of cell (row i, column j), sampled away from its annotation."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    ax = fig.axes[0]
    x, y = ax.transData.transform((j + 0.35, i + 0.35))
    return pixels[int(round(pixels.shape[0] - y)), int(round(x)), :3] / 255.0


def _course_like_confusion() -> np.ndarray:
    cm = np.diag(np.array([495, 490, 470, 466, 480, 460, 488, 475, 450, 470]))
    cm[3, 5], cm[4, 9], cm[8, 3], cm[2, 7] = 1, 5, 12, 30
    return cm


def test_confusion_matrix_single_errors_are_visible() -> None:
    cm = _course_like_confusion()
    fig = plot.confusion_matrix(cm)
    zero, one, five, thirty = (_cell_colour(fig, *cell) for cell in [(0, 1), (3, 5), (4, 9),
                                                                       (2, 7)])
    np.testing.assert_allclose(zero, 1.0, atol=0.01)  # no error: white
    assert np.linalg.norm(one - zero) > 0.25, (one, zero)  # one error: clearly coloured
    # more errors, darker: the scale still orders them (luminance falls)
    luminance = [float(c @ [0.2126, 0.7152, 0.0722]) for c in (zero, one, five, thirty)]
    assert luminance == sorted(luminance, reverse=True), luminance
    assert luminance[1] - luminance[2] > 0.1 and luminance[2] - luminance[3] > 0.1, luminance
    # the diagonal is coloured on its own scale, unlike the errors
    diagonal = _cell_colour(fig, 0, 0)
    assert diagonal[2] > diagonal[0] + 0.2, diagonal  # blue, not red


def test_confusion_matrix_annotates_every_count() -> None:
    cm = _course_like_confusion()
    ax = plot.confusion_matrix(cm, labels=list("abcdefghij")).axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert texts == {(i, j): str(cm[i, j]) for i in range(10) for j in range(10)}
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcdefghij")


def test_confusion_matrix_without_errors_and_of_fractions(tmp_path: Path) -> None:
    _saved(plot.confusion_matrix(np.diag([3, 4])), tmp_path / "perfect.png")
    fractions = np.array([[0.9, 0.1], [0.02, 0.98]])
    fig = plot.confusion_matrix(fractions)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.02", "0.1", "0.9", "0.98"]
    assert np.linalg.norm(_cell_colour(fig, 1, 0) - 1.0) > 0.25


@pytest.mark.parametrize("cm", [[[1, -1], [0, 2]], [[1, np.nan], [0, 2]], [["a", "b"], ["c", "d"]],
                                [[1j, 0], [0, 1]]])
def test_confusion_matrix_rejects_bad_counts(cm: object) -> None:
    with pytest.raises(ValueError, match="cm"):
        plot.confusion_matrix(cm)


def test_sweep_curve_joins_the_points_in_order_of_the_value() -> None:
    """Values given unsorted (3, 0, 1, 0.1) are drawn as one line from left to right, each
    mean beside its own value."""
    from jaxnn.plot import sweep_curve
    from jaxnn.sweep import Curve

    values = np.array([3.0, 0.0, 1.0, 0.1])
    cost = np.array([[0.9, 1.1], [0.1, 0.3], [0.5, 0.7], [0.2, 0.4]])  # mean: 1, .2, .6, .3
    curve = Curve("validation", "lam", values, np.array([0, 1]), cost, cost + 1, 1 - cost,
                  0.5 - cost / 2, np.full((4, 2), 5), np.zeros((4, 2), bool))
    fig = sweep_curve(curve)
    cost_axes, accuracy_axes = fig.axes
    train, val = cost_axes.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [0.0, 0.1, 1.0, 3.0])
    np.testing.assert_allclose(train.get_ydata(), [0.2, 0.3, 0.6, 1.0])
    np.testing.assert_allclose(val.get_ydata(), [1.2, 1.3, 1.6, 2.0])
    np.testing.assert_allclose(accuracy_axes.get_lines()[0].get_ydata(), [0.8, 0.7, 0.4, 0.0],
                               atol=1e-12)
