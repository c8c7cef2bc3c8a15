"""``jaxnn predict``: predictions, accuracy and a per-class report for a weights file."""

from __future__ import annotations

import argparse

import numpy as np

from jaxnn.cli.common import EXIT_OK, require
from jaxnn.cli.inputs import check_fits, load_data, load_weights
from jaxnn.cli.options import ACTIVATIONS, add_data_options
from jaxnn.cli.report import console
from jaxnn.cli.writers import write_csv, write_or_fail


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add this subcommand to the ``jaxnn`` parser."""
    p = sub.add_parser(
        "predict", help="predictions and accuracy for a weights file",
        description="Predict the labels of a dataset with a weights file (.npz from jaxnn or a "
                    ".mat such as the course's ex4weights.mat) and print the accuracy and a "
                    "per-class report.")
    p.add_argument("--weights", required=True, metavar="FILE", help="weights (.mat or .npz)")
    add_data_options(p, "mnist5k")
    p.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid",
                   help="hidden activation the weights were trained with (default: %(default)s)")
    p.add_argument("--out", metavar="CSV", help="write index,predicted,label rows to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Predict labels for ``--data`` with ``--weights``; print accuracy and a per-class table."""
    require("predict", "rich", "sklearn")
    from rich.markup import escape

    from jaxnn.cli.report import classification_metrics, report_table
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
        write_or_fail(args.out, lambda: write_csv(args.out, header, columns))
        out.print(f"predictions written to {escape(args.out)}")
    return EXIT_OK
