"""``jaxnn predict``: predictions, accuracy and a per-class report for a weights file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jaxnn.cli.common import EXIT_OK, Subcommands, UsageError, make_console, require
from jaxnn.cli.inputs import Weights, check_fits, data_packages, load_data, load_weights
from jaxnn.cli.options import ACTIVATIONS, OUTPUTS, add_data_options
from jaxnn.cli.writers import check_output_file, write_csv, write_or_fail
from jaxnn.rules import FRACTION, is_fraction, is_seed, seed_range

SPLITS = ("held-out", "test", "training", "all")  # "test" is "held-out" (train's --test-size)


def add_parser(sub: Subcommands) -> None:
    """Add this subcommand to the ``jaxnn`` parser."""
    p = sub.add_parser(
        "predict", help="predictions and accuracy for a weights file",
        description="Predict the labels of a dataset with a weights file (.npz from jaxnn or a "
                    ".mat such as the course's ex4weights.mat) and print the accuracy, a "
                    "per-class report and the confusion matrix. With --run DIR (a directory "
                    "written by 'jaxnn train') the run's weights score its held-out split, the "
                    "examples it did not train on; otherwise every example of the data is "
                    "scored.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", metavar="FILE", help="weights (.mat or .npz)")
    source.add_argument("--run", metavar="DIR", help="a 'jaxnn train' output directory: its "
                        "weights.npz, data, seed and split")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="with --run: which examples to score (default: held-out; test is the "
                        "same split)")
    add_data_options(p, "mnist5k")
    p.add_argument("--activation", choices=ACTIVATIONS, default=None,
                   help="hidden activation, for weights files that do not say (default: the "
                        "file's, else sigmoid)")
    p.add_argument("--output", choices=OUTPUTS, default=None,
                   help="output layer, for weights files that do not say (default: the file's, "
                        "else sigmoid)")
    p.add_argument("--out", metavar="CSV", help="write row,predicted,label lines to this .csv "
                   "file, replacing it if it exists (row: the example's 0-based row in the "
                   "data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Predict labels with ``--weights`` (or a run's); print what was scored, the accuracy, a
    per-class table and the confusion matrix."""
    if args.run is None and args.split is not None:
        raise UsageError("--split needs --run DIR (a 'jaxnn train' output directory)")
    if args.out is not None:
        _check_out(args)
    if args.run is not None:
        weights, data, rows, scored = _run_inputs(args)  # requires what its data needs
    else:
        require("rich", *data_packages(args.data, args.dataset))
        weights = load_weights(args.weights, args.activation, args.output)
        data = load_data(args.data, args.dataset, need_labels=False)
        rows = np.arange(data.X.shape[0])
        scored = (f"all {data.X.shape[0]} examples of {data.name} (if these weights were "
                  "trained on it, its training examples are included)")
    from rich.markup import escape

    from jaxnn.cli.report import classification_metrics, confusion_table, percent, report_table

    check_fits(weights.params, data, weights.path)
    pred = _predicted(weights, data.X)
    out = make_console()
    out.print(f"[bold]{escape(weights.path)}[/] ({weights.sizes}, {weights.activation} hidden "
              f"units, {weights.output} outputs) scoring {escape(scored)}")
    if data.y is not None:
        metrics = classification_metrics(data.y, pred, weights.params[-1].shape[0])
        out.print(report_table(metrics, "Per-class report"))
        out.print(confusion_table(metrics["confusion_matrix"], "Confusion matrix"))
        correct = int(np.sum(pred == data.y))
        out.print(f"[bold]accuracy {percent(correct, pred.shape[0])}[/] "
                  f"({correct} of {pred.shape[0]} correct)")
    else:
        out.print(f"no labels: predicted class counts {np.bincount(pred).tolist()}")
    if args.out is not None:
        header = ["row", "predicted"] + (["label"] if data.y is not None else [])
        columns = [rows, pred] + ([data.y] if data.y is not None else [])
        write_or_fail(args.out, lambda: write_csv(args.out, header, columns))
        out.print(f"predictions written to {escape(args.out)}")
    return EXIT_OK


def _predicted(weights: Weights, X: np.ndarray) -> np.ndarray:
    """The labels ``weights`` predict for ``X``, in float32, or in float64 where float32
    cannot hold the weights (a file's float64 arrays) or the logits they make (an overflow,
    which would make arbitrary labels of inf and NaN); refused where float64 cannot either."""
    import jax

    from jaxnn.model import logits, predict
    from jaxnn.precision import x64_when

    for dtype in (np.float32, np.float64):
        with np.errstate(over="ignore"):
            arrays = tuple(np.asarray(t, dtype) for t in (*weights.params, X))
        if not all(np.isfinite(a).all() for a in arrays):
            continue
        with x64_when(dtype == np.float64):
            params, Xd = arrays[:-1], arrays[-1]
            labels = predict(params, Xd, activation=weights.activation)  # checks, then labels
            z = jax.jit(logits, static_argnames="activation")(params, Xd, weights.activation)
            if bool(jax.numpy.isfinite(z).all()):
                return np.asarray(labels, np.int64)
    raise UsageError(f"{weights.path}: its weights make outputs that overflow float64 on these "
                     "examples, so they predict nothing; scale the weights down")


def _run_inputs(args: argparse.Namespace):  # noqa: ANN202
    """The weights, the examples to score and their description for ``--run DIR``."""
    from jaxnn.cli.inputs import Data, data_digest
    from jaxnn.cli.run_directory import writer_of
    from jaxnn.cli.train import FILES, split_data

    run_dir = Path(args.run)
    summary_path = run_dir / FILES["summary"]
    if (owner := writer_of(run_dir)) is not None:
        raise UsageError(f"{run_dir}: a jaxnn run (process {owner}) is still writing this "
                         "directory; wait for it to finish, then score it")
    try:
        summary = json.loads(summary_path.read_text())
        source, seed, test_size = summary["inputs"], summary["seed"], summary["test_size"]
        if not isinstance(source, dict):
            raise TypeError("inputs")
    except OSError as exc:
        raise UsageError(f"{summary_path}: cannot read the run's summary "
                         f"({exc.strerror or exc}); is {run_dir} a 'jaxnn train' output "
                         "directory?") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{summary_path}: not a summary written by this jaxnn's 'train' "
                         f"(missing or malformed {exc})") from exc
    # the split is remade from these two: values 'train' never records (an edited summary)
    # are the summary's fault, not an option's
    real = isinstance(test_size, int | float) and not isinstance(test_size, bool)
    for key, value, rule, ok in (
            ("seed", seed, seed_range(numpy=True)[1],
             type(seed) is int and is_seed(seed, numpy=True)),
            ("test_size", test_size, f"0 or {FRACTION}",
             real and (test_size == 0 or is_fraction(test_size)))):
        if not ok:
            raise UsageError(f"{summary_path}: not a summary written by this jaxnn's 'train' "
                             f"(its {key} is {json.dumps(value)}, where train records {rule})")
    if args.data or args.dataset:
        raise UsageError("--run uses the run's own data; leave out --data and --dataset")
    require("rich", *data_packages(source.get("data"), source.get("dataset")))
    weights = load_weights(str(run_dir / FILES["weights_npz"]), args.activation, args.output,
                           option=None)
    try:
        data = load_data(source.get("data"), source.get("dataset"), need_labels=True,
                         option=None)
    except UsageError as exc:
        raise UsageError(f"{exc} (the run's data, as {summary_path} records it)") from exc
    recorded = (summary.get("n_train"), summary.get("n_test"))
    if summary.get("data_sha256") not in (None, data_digest(data)):  # older runs: sizes only
        m, had = data.X.shape[0], sum(n for n in recorded if isinstance(n, int))
        count = "the same count, other values" if m == had else \
            f"{m} examples where the run had {had}"
        raise UsageError(f"the run's data has changed since it trained: {data.name} holds "
                         f"other examples than the run's ({count}); restore them, or score "
                         f"these with --weights {run_dir / FILES['weights_npz']} --data ...")
    split = split_data(data, test_size, seed, said=f"{summary_path}: its test_size")
    if recorded != (len(split.y_train), len(split.y_test)):
        raise UsageError(f"the run's data has changed since it trained: {summary_path} records "
                         f"{recorded[0]} training and {recorded[1]} held-out examples, the data "
                         f"now splits into {len(split.y_train)} and {len(split.y_test)}")
    if args.split in (None, "held-out", "test"):
        if not len(split.y_test):
            raise UsageError(f"{run_dir} was trained without a held-out split (--test-size 0); "
                             "use --split training or all")
        X, y, rows, which = split.X_test, split.y_test, split.rows_test, "the held-out split"
    elif args.split == "training":
        X, y, rows, which = split.X_train, split.y_train, split.rows_train, "the training split"
    else:
        X, y, rows, which = data.X, data.y, np.arange(len(data.y)), "both splits"
    scored = (f"{which} of run {run_dir}: {len(y)} examples of {data.name} "
              f"(seed {seed}, test size {test_size:g})")
    return weights, Data(X, y, data.name, data.image), rows, scored


def _check_out(args: argparse.Namespace) -> None:
    """``--out`` is a ``.csv`` file that can be written, so never a weights file or another
    file of a run (none of them is a CSV)."""
    check_output_file(args.out)
    if Path(args.out).suffix.lower() != ".csv":
        raise UsageError(f"--out {args.out}: the predictions are a CSV file; give a name ending "
                         "in .csv")
