"""``jaxnn train``: train with a live progress bar, report, and write the run's files.

Files written to the output directory (all atomically): ``weights.npz``, ``weights.mat`` (the
course's layout), ``digits.png`` (sample inputs), ``hidden_units.png``, ``cost.png``,
``confusion.png`` and ``summary.json``. On Ctrl-C the weights reached so far and the summary
(``"interrupted": true``) are written and the exit status is 130.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from jaxnn.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Subcommands,
    UsageError,
    command_words,
    make_console,
    require,
    use_compile_cache,
)
from jaxnn.cli.inputs import Data, class_count, data_digest, data_packages, load_data
from jaxnn.cli.options import (
    METHODS,
    ListOnce,
    add_data_options,
    add_model_options,
    add_training_options,
    fraction,
    minibatch_arguments,
    non_negative,
    positive_int,
    seed_int,
)
from jaxnn.cli.report import cost_text
from jaxnn.cli.run_directory import RunDirectory
from jaxnn.cli.writers import write_json
from jaxnn.defaults import HELD_OUT, HIDDEN, LAM, LEARNING_RATES, MAXITER, METHOD
from jaxnn.names import counted
from jaxnn.rules import NEEDS_TWO_CLASSES

FILES = {
    "weights_npz": "weights.npz",
    "weights_mat": "weights.mat",
    "digits": "digits.png",
    "hidden_units": "hidden_units.png",
    "cost_curve": "cost.png",
    "confusion_matrix": "confusion.png",
    "summary": "summary.json",
}


@dataclass
class Split:
    """Training and held-out examples (the held-out set may be empty), and the rows of the data
    each came from."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    K: int
    rows_train: np.ndarray
    rows_test: np.ndarray


@dataclass
class Outcome:
    """What a training run produced, whether it finished or was interrupted."""

    params: tuple[np.ndarray, ...]
    history: np.ndarray
    cost: float
    n_iter: int
    n_evals: int | None
    converged: bool
    message: str
    seconds: float
    interrupted: bool
    initial_cost: float = float("nan")
    diverged: bool = False  # the cost turned non-finite; params are the last finite ones


# ---- the subcommand: options and the run -------------------------------------------------------


def add_parser(sub: Subcommands) -> None:
    """Add this subcommand to the ``jaxnn`` parser."""
    p = sub.add_parser(
        "train", help="train a network and write weights, pictures and a report",
        description="Train a network (by default the course's 400-25-10 on the bundled mnist5k "
                    "digits, lam 1, L-BFGS-B, 400 iterations), evaluate it on a held-out split "
                    "and write weights (.npz and the course's .mat), PNG pictures and summary.json "
                    "to the output directory. Ctrl-C stops and saves what was reached.")
    add_data_options(p, "mnist5k")
    p.add_argument("--hidden", nargs="+", action=ListOnce, type=positive_int,
                   default=list(HIDDEN), metavar="N",
                   help=f"hidden layer sizes (default: {' '.join(map(str, HIDDEN))})")
    p.add_argument("--lam", type=non_negative, default=LAM,
                   help="regularization strength lambda (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default=METHOD,
                   help="optimizer: L-BFGS-B (scipy's iterations, compiled); scipy's TNC "
                        "(dozens of evaluations per iteration: minutes where L-BFGS-B takes "
                        "seconds), CG, BFGS (small networks only: it keeps a dense n x n "
                        "matrix); compiled: "
                        "optax's lbfgs, the course's fmincg; optax's adam, sgd (default: "
                        "%(default)s)")
    add_training_options(p, iterations=MAXITER)
    add_model_options(p)
    p.add_argument("--seed", type=seed_int, default=0, help="seed for the split and the initial "
                   "weights (default: %(default)s)")
    p.add_argument("--test-size", type=fraction, default=HELD_OUT, metavar="FRACTION",
                   help="held-out fraction, 0 for none (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The ``train`` subcommand; returns the exit status.

    The order is the promise of the command: the weights are saved the moment training ends
    (or is interrupted), before anything else can go wrong; then the summary, evaluation,
    report and pictures. From the first iteration to the last write a Ctrl-C keeps everything
    reached (exit 130), and a run that diverged keeps its last finite parameters (exit 1); a
    run that stopped before its first iteration writes all its files and exits 1."""
    require("rich", "matplotlib", *data_packages(args.data, args.dataset))
    from rich.markup import escape

    console = make_console()
    started = time.perf_counter()
    options = fit_options(args)  # option errors before any file is read or directory made
    use_compile_cache(not args.no_compile_cache)
    data = load_data(args.data, args.dataset, need_labels=True, console=console)
    split = split_data(data, args.test_size, args.seed)
    digest = data_digest(data)  # before training: nothing slow between training and saving
    sizes = (data.X.shape[1], *args.hidden, split.K)
    if args.method == "BFGS":  # its dense n x n matrix: refused before the bar and the files
        from jaxnn.memory import param_count
        from jaxnn.train.scipy_bridge import check_bfgs_memory

        try:
            check_bfgs_memory(param_count(sizes))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    header = (f"[bold]jaxnn train[/]: {'-'.join(map(str, sizes))} network on "
              f"[bold]{escape(data.name)}[/] ({len(split.y_train)} training, "
              f"{counted(len(split.y_test), 'held-out example')}), {args.method}, "
              f"lam={args.lam:g}, {counted(args.iterations, 'iteration')}, {args.dtype}")
    from jaxnn.precision import x64_when  # float64 runs in a scoped x64, as fit's own
    from jaxnn.train.status import interrupted_when

    run_dir = RunDirectory(args.out, FILES.values())
    with run_dir as out, x64_when(args.dtype == "float64"):
        outcome = train(args, options, sizes, split, console, header)
        summary: dict[str, Any] | None = None
        try:
            summary = make_summary(args, data, split, sizes, outcome, out, options, digest)
            run_dir.replace_previous()  # only now: a run that fails to train leaves the last one
            save_weights(run_dir, outcome.params, args.activation, args.output)  # first
            write_summary(run_dir, summary)
            if outcome.interrupted:
                console.print(f"[bold yellow]interrupted[/] {interrupted_when(outcome.n_iter)}: "
                              f"saved the weights and summary to {escape(str(out))}")
                return EXIT_INTERRUPTED
            if outcome.diverged:
                said = escape(command_words(outcome.message))
                console.print(f"[bold red]training diverged[/]: {said}; the last finite "
                              f"parameters are saved in {escape(str(out))}")
                return EXIT_FAILED
            evaluation = evaluate(outcome.params, split, args.activation)
            summary.update(evaluation_summary(evaluation))
            write_summary(run_dir, summary)
            print_report(console, evaluation, outcome)
            write_pictures(run_dir, data, split, outcome, evaluation, summary)
        except KeyboardInterrupt:  # after training: the weights and the summary, then stop
            if summary is None:  # before the summary was made
                summary = make_summary(args, data, split, sizes, outcome, out, options, digest)
            if not run_dir.claimed:  # before this run wrote anything: the last run's files go
                run_dir.replace_previous()  # (again: the first may have been cut short)
            if not all(FILES[k] in run_dir.claimed and (out / FILES[k]).is_file()
                       for k in ("weights_npz", "weights_mat")):
                save_weights(run_dir, outcome.params, args.activation, args.output)
            if not outcome.interrupted:  # training had ended on its own
                summary["message"] = (f"{summary['message']}; then interrupted "
                                      "(KeyboardInterrupt) while the run's files were written")
            summary["interrupted"] = True
            summary["files"] = write_summary(run_dir, summary)
            console.print(f"[bold yellow]interrupted[/]: the weights and summary are saved in "
                          f"{escape(str(out))}")
            return EXIT_INTERRUPTED
        summary["total_seconds"] = round(time.perf_counter() - started, 3)
        summary["files"] = write_summary(run_dir, summary)
    files = ", ".join(summary["files"].values())
    console.print(f"files written to [bold]{escape(str(out))}[/]: {files}")
    console.print(f"total time {time.perf_counter() - started:.1f} s")
    # stopped before its first step (fmincg counts a line search begun as an iteration; the
    # history holds the cost after each one that moved)
    if not len(outcome.history) and not outcome.converged:
        console.print("[bold red]training made no iteration[/]: the weights saved are the "
                      "initial ones (see the reason above)")
        return EXIT_FAILED
    return EXIT_OK


# ---- data and training -------------------------------------------------------------------------


def split_data(data: Data, test_size: float, seed: int, said: str = "--test-size") -> Split:
    """A stratified, seeded held-out split (none when ``test_size`` is 0). ``said``: where
    ``test_size`` comes from, in messages (the option, or a run's summary for ``predict``)."""
    advice = ": give more examples, or --test-size 0 to train on all of them" \
        if said == "--test-size" else ""
    from jaxnn.datasets import train_test_split

    X, y = data.X, data.y
    K = class_count(data)
    rows = np.arange(len(y))
    if test_size == 0:
        return Split(X, y, X[:0], y[:0], K, rows, rows[:0])
    try:  # the split of the row numbers is the split of the examples (it depends on y only)
        rows_train, rows_test, _, _ = train_test_split(rows, y, test_size, seed)
    except ValueError as exc:
        raise UsageError(f"{said} {test_size:g}: {exc}") from exc
    if np.unique(y[rows_train]).size < 2:
        raise UsageError(f"{said} {test_size:g} leaves {counted(len(rows_train), 'example')} to "
                         f"train on, of a single class ({int(y[rows_train[0]])}); "
                         f"{NEEDS_TWO_CLASSES}{advice}")
    if len(rows_test) < K:
        warnings.warn(f"{said} {test_size:g} holds out {counted(len(rows_test), 'example')}"
                      f", fewer than the {K} classes: the held-out accuracy says little",
                      stacklevel=2)
    return Split(X[rows_train], y[rows_train], X[rows_test], y[rows_test], K, rows_train,
                 rows_test)


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`jaxnn.train.fit` from the command line."""
    return {"method": args.method, "maxiter": args.iterations, "grad": args.grad,
            "activation": args.activation, "output": args.output, "dtype": args.dtype,
            "seed": args.seed, **minibatch_arguments(args)}


class ProgressBar:
    """A rich progress bar over iterations with the live cost; also the ``fit`` callback.

    It remembers the last parameters it was shown, so that a Ctrl-C that escapes ``fit``
    (e.g. during compilation) still saves the furthest point reached."""

    def __init__(self, console: Any, total: int, *, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.total, self.iteration, self.cost = total, 0, float("nan")
        self.history: list[float] = []
        self.params: tuple[np.ndarray, ...] | None = None
        self._progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
            TextColumn("cost [bold cyan]{task.fields[cost]}"), TimeElapsedColumn(),
            console=console, transient=False, disable=not enabled, refresh_per_second=8)
        self._task = self._progress.add_task("training", total=total, cost="-")

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, iteration: int, cost: float, params: tuple[np.ndarray, ...]) -> None:
        """The ``fit`` callback: ``(iteration, cost, params)``; never asks to stop."""
        self.history.append(float(cost))
        self.iteration, self.cost, self.params = iteration, float(cost), params
        self._progress.update(self._task, completed=min(iteration, self.total),
                              cost=cost_text(cost))

    def finish(self, n_iter: int, cost: float | None) -> None:
        """Show the final iteration count and cost (None: no iterate's cost to show, "-")."""
        self._progress.update(self._task, completed=min(n_iter, self.total),
                              cost="-" if cost is None else cost_text(cost))

    def interrupted(self, params0: tuple[Any, ...], seconds: float) -> Outcome:
        """The outcome when Ctrl-C escaped ``fit``: the last params seen, else the initial."""
        from jaxnn.train.status import interrupted_message

        params = self.params if self.params is not None else tuple(map(np.asarray, params0))
        return Outcome(params=params, history=np.asarray(self.history), cost=self.cost,
                       n_iter=self.iteration, n_evals=None, converged=False,
                       message=interrupted_message(self.iteration), seconds=seconds,
                       interrupted=True)


def train(args: argparse.Namespace, options: dict[str, Any], sizes: tuple[int, ...],
          split: Split, console: Any, header: str) -> Outcome:
    """Initialize, print ``header`` and fit with a progress bar. From the header on, a Ctrl-C
    yields the params reached (the initial ones if no iteration finished)."""
    from jaxnn.losses import cost
    from jaxnn.model import init_params
    from jaxnn.train.trainer import fit

    params0 = init_params(args.seed, sizes, dtype=args.dtype)

    def initial_cost() -> tuple[float, bool]:
        """The initial weights' cost, and whether a Ctrl-C cut it short: after fit (which
        refuses what the dtype cannot represent), only to report it, so NaN when it cannot be
        had (memory, say) or is interrupted: the weights reached come first."""
        try:
            return float(cost(params0, split.X_train, split.y_train, args.lam,
                              activation=args.activation, output=args.output)), False
        except KeyboardInterrupt:
            return float("nan"), True
        except Exception:  # noqa: BLE001 - not worth the weights
            return float("nan"), False

    progress = ProgressBar(console, args.iterations, enabled=not args.no_progress)
    console.print(header)
    started = time.perf_counter()
    try:
        with progress:
            result = fit(params0, split.X_train, split.y_train, args.lam,
                         callback=progress.update, **options)
            at_start = bool(result.interrupted) and not result.n_iter  # the initial params
            progress.finish(result.n_iter, None if at_start else float(result.cost))
    except KeyboardInterrupt:  # one that fit did not catch (e.g. while compiling)
        outcome = progress.interrupted(params0, time.perf_counter() - started)
        initial, _ = initial_cost()
        return replace(outcome, initial_cost=initial,
                       cost=outcome.cost if outcome.n_iter else initial)
    initial, late = initial_cost()  # late: a Ctrl-C just after training; keep it, then stop
    params = tuple(np.asarray(t) for t in result.params)
    # interrupted before the first iteration: the initial params, whatever fit evaluated
    final = initial if at_start else float(result.cost)
    diverged = bool(result.diverged)  # then params are fit's last finite iterate
    return Outcome(params=params, history=np.asarray(result.history, np.float64), cost=final,
                   n_iter=int(result.n_iter), n_evals=int(result.n_evals),
                   converged=bool(result.converged) and not diverged,
                   message=str(result.message) + ("; then interrupted (KeyboardInterrupt)"
                                                   if late else ""),
                   seconds=float(result.seconds),
                   interrupted=bool(result.interrupted) or late, initial_cost=initial,
                   diverged=diverged)


# ---- evaluation and report -----------------------------------------------------------------------


def evaluate(params: tuple[np.ndarray, ...], split: Split, activation: str) -> dict[str, Any]:
    """Accuracy on both sets and the classification metrics of the held-out set (of the
    training set when there is none)."""
    from jaxnn.cli.report import classification_metrics
    from jaxnn.model import predict

    def labels(X: np.ndarray) -> np.ndarray:
        return np.asarray(predict(params, X, activation=activation), np.int64)

    result: dict[str, Any] = {}

    def score(part: str, pred: np.ndarray, y: np.ndarray) -> None:
        # the count kept for the printed percentage (jaxnn.cli.report.percent)
        right = int(np.count_nonzero(pred == y))
        result[f"{part}_correct"] = (right, int(y.shape[0]))
        result[f"{part}_accuracy"] = right / int(y.shape[0])

    pred_train = labels(split.X_train)
    score("train", pred_train, split.y_train)
    if len(split.y_test):
        pred_test = labels(split.X_test)
        score("test", pred_test, split.y_test)
        result["report_on"] = "held-out"
        result["metrics"] = classification_metrics(split.y_test, pred_test, split.K)
    else:
        result["test_accuracy"] = None
        result["report_on"] = "training"
        result["metrics"] = classification_metrics(split.y_train, pred_train, split.K)
    return result


def print_report(console: Any, evaluation: dict[str, Any], outcome: Outcome) -> None:
    """The per-class table, the confusion matrix, accuracies and time."""
    from jaxnn.cli.report import confusion_table, percent, report_table

    on = evaluation["report_on"]
    metrics = evaluation["metrics"]
    console.print()
    console.print(report_table(metrics, f"Per-class report ({on} set)"))
    console.print()
    console.print(confusion_table(metrics["confusion_matrix"],
                                  f"Confusion matrix ({on} set)"))
    console.print()
    console.print(command_words(outcome.message), markup=False)
    console.print(f"final cost {cost_text(outcome.cost)} after "
                  f"{counted(outcome.n_iter, 'iteration')} "
                  f"({counted(outcome.n_evals, 'evaluation')}) in {outcome.seconds:.1f} s")
    line = f"[bold]training accuracy {percent(*evaluation['train_correct'])}[/]"
    if evaluation["test_accuracy"] is not None:
        line += f", [bold]held-out accuracy {percent(*evaluation['test_correct'])}[/]"
    console.print(line)


# ---- files ---------------------------------------------------------------------------------------


def save_weights(run_dir: RunDirectory, params: tuple[np.ndarray, ...], activation: str,
                 output: str) -> None:
    """``weights.npz`` (jaxnn's layout) and ``weights.mat`` (the course's), each carrying the
    network it holds (layer sizes, activation, output)."""
    from jaxnn.io import save_weights as save

    for name in ("weights_npz", "weights_mat"):
        save(run_dir.claim(FILES[name]), params, activation=activation, output=output)


def write_pictures(run_dir: RunDirectory, data: Data, split: Split, outcome: Outcome,
                   evaluation: dict[str, Any], summary: dict[str, Any]) -> None:
    """``digits.png`` and ``hidden_units.png`` (when rows are images), ``cost.png``,
    ``confusion.png``; the summary lists the pictures a run has."""
    from jaxnn import plot

    if data.image is None:  # rows are not square images: no digit or hidden-unit pictures
        summary["files"] = {k: v for k, v in summary["files"].items()
                            if k not in ("digits", "hidden_units")}
    else:
        shape, order = data.image
        plot.save_png(plot.digit_grid(split.X_train, shape, order), run_dir.claim(FILES["digits"]))
        plot.save_png(plot.hidden_units(
            outcome.params, shape, order,
            title=f"Hidden units after {outcome.n_iter} {summary['method']} iterations, "
                  f"lam {summary['lam']:g}"), run_dir.claim(FILES["hidden_units"]))
    plot.save_png(plot.cost_curve(outcome.history, initial=outcome.initial_cost, log=True,
                                  title=f"Training cost ({summary['method']})"),
                  run_dir.claim(FILES["cost_curve"]))
    on = evaluation["report_on"]
    plot.save_png(plot.confusion_matrix(evaluation["metrics"]["confusion_matrix"],
                                        title=f"Confusion matrix ({on} set)"),
                  run_dir.claim(FILES["confusion_matrix"]))


def write_summary(run_dir: RunDirectory, summary: dict[str, Any]) -> dict[str, str]:
    """Write ``summary.json`` listing, of the run's files (``summary["files"]``), only those
    written so far, and itself: read at any moment, or left by a run killed mid-way, it names
    no file that is not there (each write lists what the run has added since). Returns the
    files it lists."""
    out = run_dir.out
    assert out is not None
    written = {k: v for k, v in summary["files"].items()
               if k == "summary" or (v in run_dir.claimed and (out / v).is_file())}
    write_json(run_dir.claim(FILES["summary"]), {**summary, "files": written})
    return written


def evaluation_summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {k: evaluation[k] for k in ("train_accuracy", "test_accuracy", "report_on",
                                       "metrics")}


def make_summary(args: argparse.Namespace, data: Data, split: Split, sizes: tuple[int, ...],
                 outcome: Outcome, out: Path, options: dict[str, Any],
                 digest: str) -> dict[str, Any]:
    """Everything about the run, for ``summary.json``: the values actually used (defaults
    resolved), what came out, and where; ``digest``: :func:`data_digest` of ``data``."""
    import jax

    from jaxnn import __version__

    files = dict(FILES)
    if outcome.interrupted or outcome.diverged:
        files = {k: v for k, v in files.items() if k in ("weights_npz", "weights_mat", "summary")}
    minibatch = args.method in LEARNING_RATES
    return {
        "jaxnn_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": data.name,
        # absolute paths, so that `predict --run` finds the data from any directory
        "inputs": {"data": [os.path.abspath(p) for p in args.data] if args.data else None,
                   "dataset": args.dataset},
        "data_sha256": digest,
        "layer_sizes": list(sizes),
        "n_train": int(len(split.y_train)),
        "n_test": int(len(split.y_test)),
        "lam": args.lam, "method": args.method, "grad": args.grad,
        "iterations": args.iterations,
        "batch_size": (min(args.batch_size or len(split.y_train), len(split.y_train))
                       if minibatch else None),
        "learning_rate": (options.get("learning_rate", LEARNING_RATES[args.method])
                          if minibatch else None),
        "activation": args.activation,
        "output": args.output, "dtype": args.dtype, "seed": args.seed,
        "test_size": args.test_size,
        "interrupted": outcome.interrupted,
        "diverged": outcome.diverged,
        "converged": outcome.converged,
        "message": outcome.message,
        "initial_cost": outcome.initial_cost,
        "cost": outcome.cost,
        "n_iter": outcome.n_iter,
        "n_evals": outcome.n_evals,
        "train_seconds": round(outcome.seconds, 3),
        "train_accuracy": None, "test_accuracy": None, "report_on": None, "metrics": None,
        "history": outcome.history,
        "platform": {"python": platform.python_version(), "jax": jax.__version__,
                     "backend": jax.default_backend(),
                     "devices": [str(d) for d in jax.devices()]},
        "output_dir": str(out),
        "files": files,
    }
