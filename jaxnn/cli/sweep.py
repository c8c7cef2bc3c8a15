"""``jaxnn sweep lam|size``: a validation or learning curve from the command line (a table, a
PNG plot and a JSON file); the curves themselves are in :mod:`jaxnn.sweep`."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from jaxnn.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Subcommands,
    UsageError,
    make_console,
    require,
    use_compile_cache,
)
from jaxnn.cli.inputs import class_count, data_packages, load_data
from jaxnn.cli.options import (
    MANY_METHODS,
    ListOnce,
    add_data_options,
    add_model_options,
    add_training_options,
    minibatch_arguments,
    non_negative,
    open_fraction,
    positive_int,
    seed_int,
)
from jaxnn.cli.run_directory import RunDirectory
from jaxnn.cli.writers import write_json
from jaxnn.defaults import (
    HELD_OUT,
    HIDDEN,
    LAM,
    LEARNING_CURVE_SIZES,
    MANY_MAXITER,
    MANY_METHOD,
    SEEDS,
)
from jaxnn.names import counted


def add_parser(subparsers: Subcommands) -> None:
    """Add ``jaxnn sweep lam`` and ``jaxnn sweep size`` to the ``jaxnn`` command's parser."""
    p = subparsers.add_parser(
        "sweep", help="validation curve over lambda, or learning curve over training-set size",
        description="Train many networks at once (jaxnn.parallel.fit_many, several seeds per "
                    "point) and report training and validation cost (data loss, no penalty) "
                    "and accuracy: over lambda ('sweep lam') or over the training-set size "
                    "('sweep size'). Prints a table and writes sweep_validation.png and "
                    "sweep_validation.json ('lam') or sweep_learning.png and "
                    "sweep_learning.json ('size') to --out.")
    p.add_argument("kind", choices=("lam", "size"), metavar="{lam,size}",
                   help="lam: validation curve over --values lambdas; size: learning curve "
                        "over --values training-set sizes")
    p.add_argument("--values", nargs="+", action=ListOnce, metavar="V",
                   help="lambdas (default: 0 0.001 0.003 ... 3 10), or training-set sizes: "
                        "counts of examples (2, 3, ...) or fractions of the training set, 1 "
                        "being all of it (default: 0.1 0.25 0.5 1)")
    add_data_options(p, "mnist5k")
    p.add_argument("--hidden", nargs="+", action=ListOnce, type=positive_int,
                   default=list(HIDDEN), metavar="N",
                   help=f"hidden layer sizes (default: {' '.join(map(str, HIDDEN))})")
    p.add_argument("--lam", type=non_negative, default=None,
                   help=f"with 'size': the fixed lambda (default: {LAM:g})")
    p.add_argument("--seeds", type=positive_int, default=SEEDS, metavar="S",
                   help="networks (initial seeds 0..S-1) per point (default: %(default)s)")
    p.add_argument("--method", choices=MANY_METHODS, default=MANY_METHOD,
                   help="fit_many method (default: %(default)s)")
    add_training_options(p, iterations=MANY_MAXITER)
    add_model_options(p)
    p.add_argument("--val-size", type=open_fraction, default=HELD_OUT, metavar="FRACTION",
                   help="held-out validation fraction (default: %(default)s)")
    p.add_argument("--split-seed", type=seed_int, default=0, help="seed of the train/validation "
                   "split (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<timestamp>)")
    p.set_defaults(func=run)


def _parse_values(kind: str, texts: list[str] | None) -> list[float] | list[int | float] | None:
    """``--values`` as the library takes them, checked by its rules before any data is read
    (:func:`jaxnn.sweep.check_lams`, :func:`jaxnn.sweep.check_sizes`): lambdas, or sizes, where
    a whole number above 1 written without a point is a count (``1`` is all of the training
    set, as in the default)."""
    if texts is None:
        return None
    from jaxnn.checks import check_number
    from jaxnn.sweep import check_lams, check_sizes

    values: list[Any] = []
    for t in texts:
        try:
            v = float(t)
        except ValueError:
            raise UsageError(f"--values: {t!r} is not a number") from None
        count = kind == "size" and math.isfinite(v) and v > 1 and v.is_integer() and "." not in t
        values.append(int(v) if count else v)
    try:
        if kind == "lam":
            for t, v in zip(texts, values, strict=True):  # each named as it was typed
                check_number(v, f"--values {t}", low=0.0)
            check_lams(values)
        else:
            check_sizes(values)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return values


def run(args: argparse.Namespace) -> int:
    """The ``jaxnn sweep`` command: run the sweep, print a table, write the PNG and JSON."""
    require("rich", "matplotlib", *data_packages(args.data, args.dataset))
    from rich.table import Table

    from jaxnn.datasets import held_out_count
    from jaxnn.plot import save_png, sweep_curve
    from jaxnn.sweep import DEFAULT_LAMS, check_lams, learning_curve, validation_curve

    console = make_console()
    values = _parse_values(args.kind, args.values)
    if args.kind == "lam" and args.lam is not None:
        raise UsageError("--lam is the fixed lambda of 'sweep size'; 'sweep lam' tries the "
                         "lambdas of --values")
    if args.kind == "lam" and values:  # each one the networks' dtype holds, and distinct there
        try:
            check_lams(values, args.dtype)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    use_compile_cache(not args.no_compile_cache)
    common = dict(hidden=args.hidden, seeds=args.seeds, maxiter=args.iterations,
                  method=args.method, val_fraction=args.val_size, split_seed=args.split_seed,
                  activation=args.activation, output=args.output, dtype=args.dtype,
                  **minibatch_arguments(args))
    data = load_data(args.data, args.dataset, need_labels=True)
    class_count(data)  # labels from 0, at least two classes: as jaxnn train's
    try:  # the split's rule in the option's words, before the directory is made
        n_val = held_out_count(args.val_size, data.X.shape[0], "--val-size", "validation")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    kind = "validation" if args.kind == "lam" else "learning"
    files = (f"sweep_{kind}.png", f"sweep_{kind}.json")
    run_dir = RunDirectory(args.out, files)
    with run_dir:  # one sweep at a time in a directory, never over the user's files
        console.print(f"[bold]jaxnn sweep {args.kind}[/] on {data.name}: {data.X.shape[0]} "
                      f"examples ({data.X.shape[0] - n_val} to train, {n_val} to validate), "
                      f"{counted(args.seeds, 'seed')} per point, "
                      f"{counted(args.iterations, args.method + ' iteration')}")
        try:
            if args.kind == "lam":
                curve = validation_curve(data.X, data.y, values or DEFAULT_LAMS, **common)
            else:
                curve = learning_curve(data.X, data.y, values or LEARNING_CURVE_SIZES,
                                       lam=LAM if args.lam is None else args.lam, **common)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        console.print(_table(curve, Table))
        record = {**curve.to_dict(), "data": data.name}
        png_name, json_name = files
        js = png = None
        try:  # the numbers first (the picture takes a second or more to draw)
            run_dir.replace_previous()
            write_json(run_dir.claim(json_name), record)
            js = run_dir.out / json_name
            save_png(sweep_curve(curve, title=f"{kind} curve on {data.name}"),
                     run_dir.claim(png_name))
            png = run_dir.out / png_name
        except KeyboardInterrupt:  # after the sweep: its numbers are kept, then stop
            if js is None:
                if not run_dir.claimed:  # (again: the first may have been cut short)
                    run_dir.replace_previous()
                write_json(js := run_dir.claim(json_name), record)
            drawn = png_name in run_dir.claimed and (run_dir.out / png_name).is_file()
            console.print(f"[bold yellow]interrupted[/]: the sweep's numbers are saved in "
                          f"{os.fspath(js)}" + ("" if drawn else " (no picture)"))
            return EXIT_INTERRUPTED
    if curve.best is not None:
        console.print(f"lowest mean validation cost at lambda = {curve.best:g} (marked *)")
    console.print(f"sweep time {curve.seconds:.1f} s")
    console.print(f"files written: {os.fspath(png)}, {os.fspath(js)}")
    if curve.diverged.all():  # nothing in the table was trained: as train's exit 1
        console.print("every network diverged: see the warning above")
        return EXIT_FAILED
    return EXIT_OK


def _table(curve: Any, Table: Any) -> Any:  # noqa: N803 - the rich class, imported lazily
    from jaxnn.sweep import METRICS

    head = "lambda" if curve.param == "lam" else "m (train)"
    table = Table(title=f"{curve.kind} curve: mean ± std over {len(curve.seeds)} seed(s); "
                        "cost = data loss (no penalty)")
    table.add_column(head, justify="right")
    for name in ("train cost", "val cost", "train acc", "val acc"):
        table.add_column(name, justify="right")
    best = curve.best
    for i, v in enumerate(curve.values):
        cells = [f"{v:g}" + (" *" if best is not None and v == best else "")]
        for metric in METRICS:
            mean, std = curve.mean(metric)[i], curve.std(metric)[i]
            if "cost" in metric:
                cells.append(f"{mean:.4f}±{std:.4f}")
            else:
                cells.append(f"{100 * mean:.2f}±{100 * std:.2f}%")
        table.add_row(*cells)
    return table
