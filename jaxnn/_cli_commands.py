"""``jaxnn gradcheck``, ``jaxnn predict`` and ``jaxnn show``.

Each ``run_*`` takes the parsed ``argparse.Namespace`` and returns the exit status.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from jaxnn._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    check_fits,
    load_data,
    load_weights,
    require,
    write_csv,
)

SMALL_SIZES = (3, 5, 3)


def console():  # noqa: ANN201 - rich is optional, so no annotation at import time
    """A rich console on standard output (resolved when writing, so capture works)."""
    from rich.console import Console

    return Console(highlight=False)


# ---- gradcheck -----------------------------------------------------------------------------------


def course_problem() -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The course's ``checkNNGradients`` problem: a 3-5-3 network with ``debug_params``,
    ``X = sin(1..15)/10`` column-major ``(5, 3)`` and ``y = [1, 2, 0, 1, 2]``."""
    from jaxnn.model import debug_params
    from jaxnn.precision import x64

    X = (np.sin(np.arange(1, 16, dtype=np.float64)) / 10).reshape((5, 3), order="F")
    with x64():
        params = tuple(np.asarray(t) for t in debug_params(SMALL_SIZES, np.float64))
    return params, X, np.array([1, 2, 0, 1, 2])


def full_problem(args: argparse.Namespace) -> tuple[tuple[np.ndarray, ...], np.ndarray,
                                                       np.ndarray]:
    """The 400-25-10 network on mnist5k (or ``--data``), random or ``--weights``, optionally
    on ``--examples N`` of the examples."""
    from jaxnn.model import init_params

    data = load_data(args.data, args.dataset, need_labels=True)
    X, y = data.X, data.y
    if args.examples is not None:
        if not 1 <= args.examples <= X.shape[0]:
            raise UsageError(f"--examples must be in 1..{X.shape[0]}, got {args.examples}")
        rows = np.random.default_rng(args.seed).permutation(X.shape[0])[: args.examples]
        X, y = X[rows], y[rows]
    if args.weights:
        params = load_weights(args.weights)
        check_fits(params, data, args.weights)
    else:
        sizes = (X.shape[1], *args.hidden, int(y.max()) + 1)
        params = tuple(np.asarray(t, np.float64) for t in init_params(args.seed, sizes))
    return params, X, y


def run_gradcheck(args: argparse.Namespace) -> int:
    """Compare numerical, hand-written and automatic gradients; 0 if they agree, 1 if not."""
    require("gradcheck", "rich")
    from jaxnn.gradcheck import check_gradients

    if args.eps <= 0 or args.tol <= 0:
        raise UsageError("--eps and --tol must be positive")
    if args.full:
        params, X, y = full_problem(args)
        lams = args.lam if args.lam is not None else [1.0]
    else:
        if args.weights or args.data or args.dataset or args.examples is not None:
            raise UsageError("--weights, --data, --dataset and --examples need --full")
        params, X, y = course_problem()
        lams = args.lam if args.lam is not None else [0.0, 3.0]
    if any(lam < 0 for lam in lams):
        raise UsageError(f"--lam must be >= 0, got {lams}")
    out, ok = console(), True
    sizes = "-".join(str(n) for n in (params[0].shape[1] - 1, *(t.shape[0] for t in params)))
    for lam in lams:
        model = "" if (args.activation, args.output) == ("sigmoid", "sigmoid") else \
            f", {args.activation}/{args.output}"
        out.print(f"[bold]Gradient check[/]: {sizes} network{model}, {X.shape[0]} examples, "
                  f"lam={lam:g}, eps={args.eps:g}, float64")
        started = time.perf_counter()
        report = check_gradients(params, X, y, lam, eps=args.eps, activation=args.activation,
                                 output=args.output)
        out.print(f"cost J = {report.cost:.6f}; checked in "
                  f"{time.perf_counter() - started:.1f} s")
        ok &= _print_gradcheck(out, report, args.tol)
    return EXIT_OK if ok else EXIT_FAILED


def _print_gradcheck(out, report, tol: float) -> bool:  # noqa: ANN001
    from jaxnn._cli_report import gradient_tables

    for table in gradient_tables(report):
        out.print(table)
    passed = report.passed(tol)
    if passed:
        out.print(f"[bold green]PASS[/]: both relative differences are below {tol:g}\n")
    else:
        out.print(f"[bold red]FAIL[/]: a relative difference is above {tol:g}: the gradients "
                  "disagree\n")
    return passed


# ---- predict -------------------------------------------------------------------------------------


def run_predict(args: argparse.Namespace) -> int:
    """Predict labels for ``--data`` with ``--weights``; print accuracy and a per-class table."""
    require("predict", "rich", "sklearn")
    from rich.markup import escape

    from jaxnn._cli_report import classification_metrics, report_table
    from jaxnn.model import predict

    params = load_weights(args.weights)
    data = load_data(args.data, args.dataset, need_labels=False)
    check_fits(params, data, args.weights)
    pred = np.asarray(predict(params, data.X, activation=args.activation), dtype=np.int64)
    out = console()
    sizes = "-".join(str(n) for n in (params[0].shape[1] - 1, *(t.shape[0] for t in params)))
    out.print(f"[bold]{escape(args.weights)}[/] ({sizes}) on [bold]{escape(data.name)}[/]: "
              f"{pred.shape[0]} examples")
    if data.y is not None:
        metrics = classification_metrics(data.y, pred, params[-1].shape[0])
        out.print(report_table(metrics, "Per-class report"))
        correct = int(np.sum(pred == data.y))
        out.print(f"[bold]accuracy {100 * metrics['accuracy']:.2f}%[/] "
                  f"({correct} of {pred.shape[0]} correct)")
    else:
        out.print(f"no labels: predicted class counts {np.bincount(pred).tolist()}")
    if args.out:
        header = ["index", "predicted"] + (["label"] if data.y is not None else [])
        columns = [np.arange(pred.shape[0]), pred] + ([data.y] if data.y is not None else [])
        _write(args.out, lambda: write_csv(args.out, header, columns))
        out.print(f"predictions written to {escape(args.out)}")
    return EXIT_OK


def _write(path: str, write) -> None:  # noqa: ANN001
    """Run ``write()``; a missing or unwritable directory is a UsageError."""
    try:
        write()
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError) as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from exc


# ---- show ----------------------------------------------------------------------------------------


def image_shape(text: str | None, n_in: int, order: str | None) -> tuple[tuple[int, int], str]:
    """The image layout for ``n_in`` inputs: ``--shape HxW`` and ``--order``, or the default."""
    from jaxnn.plot import image_layout

    if text:
        try:
            h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise UsageError(f"--shape must look like 20x20, got {text!r}") from None
        if h < 1 or w < 1 or h * w != n_in:
            raise UsageError(f"--shape {text} has {h * w} pixels but the weights take {n_in} "
                             "inputs")
        return (h, w), order or "C"
    layout = image_layout(n_in)
    if layout is None:
        raise UsageError(f"the weights take {n_in} inputs, not a square image: pass --shape HxW")
    return layout[0], order or layout[1]


def run_show(args: argparse.Namespace) -> int:
    """Write the hidden-unit picture of a weights file."""
    require("show", "matplotlib")
    from jaxnn.plot import hidden_units, save_png

    params = load_weights(args.weights)
    shape, order = image_shape(args.shape, params[0].shape[1] - 1, args.order)
    out = Path(args.out)
    title = None if args.no_title else f"Hidden units of {Path(args.weights).name}"
    fig = hidden_units(params, shape, order, title=title)
    _write(str(out), lambda: save_png(fig, out))
    print(f"wrote {out}: {params[0].shape[0]} hidden units as {shape[0]}x{shape[1]} images "
          f"({'column' if order == 'F' else 'row'}-major)")
    return EXIT_OK
