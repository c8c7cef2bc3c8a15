"""Pictures: grids of digits, hidden units as images, cost curves, confusion matrices, and the
validation and learning curves of :mod:`jaxnn.sweep`.

Every function returns a :class:`matplotlib.figure.Figure` built directly (with an Agg canvas),
so nothing here touches pyplot or matplotlib's global backend; :func:`save_png` writes a figure
atomically. matplotlib is optional (``pip install 'jaxnn[plot]'``) and imported only when a
function here is called.

Images are rows of ``X`` (or of ``Theta1[:, 1:]``) reshaped to ``shape`` in ``order``: the
course's 20x20 digits (and :func:`jaxnn.datasets.mnist5k`) are column-major (``order="F"``,
Octave's ``X(:)``), scikit-learn's 8x8 digits and MNIST IDX files row-major (``order="C"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxnn.checks import check_order, check_seed
from jaxnn.extras import require
from jaxnn.files.atomic import atomic_write
from jaxnn.names import Order, PathLike

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


__all__ = [
    "image_grid",
    "image_layout",
    "pixel_order",
    "digit_grid",
    "hidden_units",
    "cost_curve",
    "sweep_curve",
    "confusion_matrix",
    "save_png",
]



# --- a figure -------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    """A new Figure with its own Agg canvas (no pyplot, no global backend change)."""
    require("jaxnn.plot", "matplotlib", extra="plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


# --- digit images ---------------------------------------------------------------------------------


def image_layout(
    n_features: int, source: str | None = None
) -> tuple[tuple[int, int], Order] | None:
    """The image shape and pixel order for rows of ``n_features`` values, or None if not square.

    400 features are taken to be the course's column-major 20x20 digits; other square sizes
    (64 for scikit-learn's digits, 784 for MNIST) row-major. ``source`` ``"mat"`` (a course
    data file) forces column-major.
    """
    side = math.isqrt(n_features)
    if side * side != n_features:
        return None
    return (side, side), pixel_order(n_features, source)


def pixel_order(n_features: int, source: str | None = None) -> Order:
    """The pixel order rows of ``n_features`` values are taken to have, whatever the image's
    shape: column-major (``"F"``) for the course's 400 features or a course data file
    (``source`` ``"mat"``), row-major (``"C"``) otherwise."""
    return "F" if (n_features == 400 or source == "mat") else "C"


def image_grid(
    images: Any,
    shape: tuple[int, int],
    order: Order = "C",
    *,
    ncols: int | None = None,
    pad: int = 1,
) -> np.ndarray:
    """Tile the rows of ``images`` ``(n, h*w)`` into one 2-D mosaic, like the course's
    ``displayData``.

    Each image is reshaped to ``shape`` in ``order`` and divided by its largest absolute value,
    so it lies in ``[-1, 1]``; the ``pad``-pixel borders between images are ``-1`` (black in a
    gray map over ``[-1, 1]``). ``ncols`` defaults to ``round(sqrt(n))``.

    Returns:
        float64 array of shape ``(pad + nrows * (h + pad), pad + ncols * (w + pad))``.
    """
    images = np.asarray(images, dtype=np.float64)
    h, w = shape
    if images.ndim != 2 or images.shape[0] == 0 or images.shape[1] != h * w:
        raise ValueError(
            f"images must be a non-empty 2-D array of shape (n, {h * w}) for {h}x{w} images, "
            f"got shape {images.shape}"
        )
    check_order(order)
    n = images.shape[0]
    ncols = ncols or max(1, round(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    mosaic = -np.ones((pad + nrows * (h + pad), pad + ncols * (w + pad)))
    for i, row in enumerate(images):
        scale = np.max(np.abs(row))
        tile = row.reshape(shape, order=order) / (scale if scale > 0 else 1.0)
        top, left = pad + (i // ncols) * (h + pad), pad + (i % ncols) * (w + pad)
        mosaic[top : top + h, left : left + w] = tile
    return mosaic


def _mosaic_figure(mosaic: np.ndarray, title: str | None, size: float) -> Figure:
    """A figure showing ``mosaic`` in gray over ``[-1, 1]``, no axes, about ``size`` inches."""
    rows, cols = mosaic.shape
    scale = size / max(rows, cols)
    fig = _figure(max(cols * scale, 1.0), max(rows * scale, 1.0) + (0.4 if title else 0))
    ax = fig.add_axes((0, 0, 1, 1 - (0.4 / fig.get_figheight() if title else 0)))
    ax.imshow(mosaic, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11, y=0.995, va="top")
    return fig


def digit_grid(
    X: Any,
    shape: tuple[int, int] = (20, 20),
    order: Order = "F",
    *,
    n: int = 100,
    seed: int | None = 0,
    title: str | None = None,
    size: float = 6.0,
) -> Figure:
    """``n`` examples of ``X`` ``(m, h*w)`` (chosen at random with ``seed``; the first ``n`` if
    ``seed`` is None) as a square grid of images, as in the course's first figure."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (m, h*w), got shape {X.shape}")
    k = min(int(n), X.shape[0])
    if seed is None:
        rows = np.arange(k)
    else:
        rng = np.random.default_rng(check_seed(seed, numpy=True))
        rows = rng.choice(X.shape[0], size=k, replace=False)
    return _mosaic_figure(image_grid(X[rows], shape, order), title, size)


def hidden_units(
    params: Sequence[Any] | Any,
    shape: tuple[int, int] = (20, 20),
    order: Order = "F",
    *,
    title: str | None = None,
    size: float = 6.0,
) -> Figure:
    """The first hidden layer's units as images: row ``j`` of ``Theta1[:, 1:]`` (the weights
    from every input pixel into unit ``j``), as in the course's figure of what the network
    learned. ``params`` is the tuple of Thetas or ``Theta1`` alone."""
    theta1 = params[0] if isinstance(params, list | tuple) else params
    theta1 = np.asarray(theta1, dtype=np.float64)
    if theta1.ndim != 2 or theta1.shape[1] < 2:
        raise ValueError(f"Theta1 must be 2-D (units, 1 + inputs), got shape {theta1.shape}")
    return _mosaic_figure(image_grid(theta1[:, 1:], shape, order), title, size)


# --- curves ---------------------------------------------------------------------------------------


def _minor_label(value: float, _position: object = None) -> str:
    """The label of a minor tick on a log axis: ``2``, ``3`` or ``5`` times a power of ten."""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa) in (2, 3, 5) and abs(mantissa - round(mantissa)) < 1e-6 \
        else ""


def cost_curve(
    history: Any,
    *,
    initial: float | None = None,
    title: str | None = "Training cost",
    log: bool | None = None,
    xlabel: str = "iteration",
) -> Figure:
    """The cost per iteration: ``history[i]`` ``(n,)`` is drawn at iteration ``i + 1``.

    ``initial``, the cost before the first iteration (at the starting parameters, as
    :func:`jaxnn.cost` gives it; :class:`jaxnn.FitResult` does not record it), is drawn at
    iteration 0, so the curve starts where training started. ``log`` True puts the cost on a
    log scale, False on a linear one; None (default) chooses log when the cost spans more than a
    factor of 20. A log scale needs every finite cost positive: otherwise the scale stays linear.
    """
    cost = np.asarray(history, dtype=np.float64).ravel()
    start = 1
    if initial is not None:
        from jaxnn.checks import check_number

        cost = np.concatenate([[check_number(initial, "initial")], cost])
        start = 0
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    if cost.size:
        iterations = np.arange(start, start + cost.size)
        ax.plot(iterations, cost, color="tab:blue", lw=1.5, marker="o" if cost.size <= 60 else None,
                ms=2.5)
        ax.set_xlim(start, max(iterations[-1], start + 1))
    finite = cost[np.isfinite(cost)]
    positive = finite.size > 0 and bool(np.all(finite > 0))
    if log is None:
        log = positive and finite.size > 1 and finite.max() / finite.min() > 20
    if log and positive:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log")
        # plain numbers (0.5, 2, 0.001) rather than 5x10^-1; within about a decade the minor
        # ticks 2, 3 and 5 (times a power of ten) are labelled too
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        few_decades = np.log10(finite.max() / finite.min()) < 1.5
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label) if few_decades
                                     else NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cost J (log scale)" if ax.get_yscale() == "log" else "cost J")
    ax.grid(True, which="both" if ax.get_yscale() == "log" else "major", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def sweep_curve(curve: Any, title: str | None = None) -> Figure:
    """Two panels, cost and accuracy against the swept value of a :class:`jaxnn.sweep.Curve`:
    training and validation means over the seeds, with a band of one standard deviation, the
    points joined in increasing order of the value (the curve keeps the order given)."""
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2)
    order = np.argsort(curve.values, kind="stable")  # values given in any order: one line
    x = np.asarray(curve.values)[order]
    for ax, what in zip(axes, ("cost", "accuracy"), strict=True):
        for split, color in (("train", "tab:blue"), ("val", "tab:orange")):
            metric = f"{split}_{what}"
            mean, std = curve.mean(metric)[order], curve.std(metric)[order]
            label = {"train": "training", "val": "validation"}[split]
            ax.plot(x, mean, "o-", color=color, label=label)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)
        ax.set_xlabel("lambda" if curve.param == "lam" else "training examples m")
        ax.set_ylabel("cost (data loss, no penalty)" if what == "cost" else "accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend()
        if curve.param == "lam" and np.any(x > 0):
            positive = x[x > 0]
            if np.any(x == 0):
                ax.set_xscale("symlog", linthresh=float(positive.min()))
            elif positive.max() / positive.min() > 20:
                ax.set_xscale("log")
    n_seeds = len(curve.seeds)
    fig.suptitle(title or f"{curve.kind} curve ({n_seeds} seed{'s' * (n_seeds > 1)} per point, "
                          f"layers {tuple(curve.settings.get('layer_sizes', ()))})")
    fig.tight_layout()
    return fig


# --- the confusion matrix -------------------------------------------------------------------------


def _truncated(name: str, low: float = 0.2) -> Any:
    """Matplotlib's colour map ``name`` without its palest ``low`` part (so the smallest
    positive value is visibly coloured, not white)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    base = colormaps[name]
    return ListedColormap(base(np.linspace(low, 1.0, 256)), name=f"{name}_from_{low:g}")


def _one_two_five(low: float, high: float) -> list[float]:
    """The values 1, 2, 5 times a power of ten in ``[low, high]`` (``[high]`` if none)."""
    first = math.floor(math.log10(low))
    ticks = [m * 10.0**e for e in range(first, math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5)]
    return [t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)] or [high]


def _dark(rgba: Sequence[float]) -> bool:
    """Whether text on a cell of colour ``rgba`` should be white (relative luminance < 0.5)."""
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5


def confusion_matrix(
    cm: Any,
    labels: Sequence[Any] | None = None,
    *,
    title: str | None = "Confusion matrix",
) -> Figure:
    """A heat map of the confusion matrix ``cm`` ``(K, K)`` (rows: true class, columns:
    predicted), each cell annotated with its count.

    The diagonal (correct) and the off-diagonal cells (errors) are coloured on scales of their
    own, so that a handful of errors stays visible beside hundreds of correct answers: the
    diagonal in blue, linear from 0 to its largest count; the errors in red on a log scale from
    the smallest to the largest error, every positive error at least a clear pink; cells with no
    error stay white. ``cm`` holds non-negative finite counts (or fractions).
    """
    from matplotlib.colors import LogNorm, Normalize

    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {cm.shape}")
    if not np.issubdtype(cm.dtype, np.number) or np.iscomplexobj(cm):
        raise ValueError(f"cm must hold real numbers, got dtype {cm.dtype}")
    if not (np.all(np.isfinite(cm)) and np.all(cm >= 0)):
        raise ValueError("cm must hold non-negative finite counts")
    K = cm.shape[0]
    labels = [str(c) for c in (labels if labels is not None else range(K))]
    values = cm.astype(np.float64)
    diagonal = np.eye(K, dtype=bool)
    errors = np.where(~diagonal & (values > 0), values, np.nan)

    side = min(max(4.0, 0.5 * K + 1.5), 14.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    top = float(values[diagonal].max()) or 1.0
    correct_map = _truncated("Blues")
    # the diagonal gets no colour bar: its counts are written on it
    ax.imshow(np.where(diagonal, values, np.nan), cmap=correct_map, norm=Normalize(0.0, top),
              interpolation="nearest")
    error_map = _truncated("Reds", 0.25)
    error_norm = None
    if np.any(np.isfinite(errors)):
        high = float(np.nanmax(errors))
        low = min(float(np.nanmin(errors)), high / 10)  # a single error value draws mid-red
        error_norm = LogNorm(low, high)
        image = ax.imshow(errors, cmap=error_map, norm=error_norm, interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ticks = _one_two_five(low, high)
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        bar.ax.minorticks_off()
        bar.set_label("errors (off-diagonal cells), log scale")
    ax.set_xticks(range(K), labels)
    ax.set_yticks(range(K), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if K <= 30:
        integral = bool(np.all(values == np.round(values)))
        for (i, j), value in np.ndenumerate(values):
            if i == j:
                rgba = correct_map(Normalize(0.0, top)(value))
            elif value > 0 and error_norm is not None:
                rgba = error_map(error_norm(value))
            else:
                rgba = (1.0, 1.0, 1.0, 1.0)
            text = f"{value:.0f}" if integral else f"{value:.2g}"
            color = "white" if _dark(rgba) else ("0.6" if value == 0 else "black")
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --- files ----------------------------------------------------------------------------------------


def save_png(fig: Figure, path: PathLike, *, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically (a crash leaves any old file intact)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
