"""The ``jaxnn`` command: ``train``, ``gradcheck``, ``predict``, ``show`` and ``sweep``.

``main(argv)`` parses the arguments, runs a subcommand and returns the exit status:

* 0: done;
* 1: a check failed (``gradcheck`` found gradients that disagree);
* 2: a user error (missing or malformed file, bad option value, missing optional package),
  printed as one line without a traceback;
* 130: interrupted with Ctrl-C (``train`` saves the weights it reached first).

The subcommands live in ``jaxnn._cli_train``, ``jaxnn._cli_commands`` and ``jaxnn._cli_sweep``;
rich, matplotlib and scikit-learn are imported only when a subcommand needs them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from jaxnn._cli_common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    missing_extra,
    missing_module,
)

__all__ = ["main", "build_parser"]

METHODS = ("L-BFGS-B", "TNC", "CG", "BFGS", "lbfgs", "adam", "sgd")
ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("sigmoid", "softmax")
DATASETS = ("mnist5k", "digits")


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (one line, exit 2) instead of
    printing the usage block and exiting; subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- option types --------------------------------------------------------------------------------


def _number(kind: type, low: float | None = None, *, strict: bool = False,
            what: str = "") -> Callable[[str], float]:
    """An argparse type: ``kind(text)``, at least ``low`` (above it if ``strict``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what or kind.__name__}") from None
        if kind is float and value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value <= low if strict else value < low):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = what or kind.__name__
    return parse


positive_int = _number(int, 1, what="a positive integer")
seed_int = _number(int, 0, what="an integer >= 0")
non_negative = _number(float, 0.0, what="a number >= 0")
positive = _number(float, 0.0, strict=True, what="a positive number")


def _fraction(text: str) -> float:
    """``--test-size``: 0 (no held-out set) or a fraction in (0, 1)."""
    value = non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be 0 or a fraction in (0, 1), got {text}")
    return value


# ---- parser --------------------------------------------------------------------------------------


def _add_data_options(p: argparse.ArgumentParser, default: str | None) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--data", nargs="+", metavar="PATH",
                       help="a course .mat file (X, y), an .npz with arrays X and y, or two IDX "
                            "files: IMAGES LABELS (gzipped or not)")
    group.add_argument("--dataset", choices=DATASETS,
                       help=f"a bundled dataset (default: {default})" if default else
                       "a bundled dataset")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid",
                   help="hidden-layer activation (default: %(default)s)")
    p.add_argument("--output", choices=OUTPUTS, default="sigmoid",
                   help="output layer: the course's sigmoid or softmax (default: %(default)s)")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a network and write weights, pictures and a report",
        description="Train a network (by default the course's 400-25-10 on the bundled mnist5k "
                    "digits, lam 1, L-BFGS, 400 iterations), evaluate it on a held-out split and "
                    "write weights (.npz and the course's .mat), PNG pictures and summary.json "
                    "to the output directory. Ctrl-C stops and saves what was reached.")
    _add_data_options(p, "mnist5k")
    p.add_argument("--hidden", nargs="+", type=positive_int, default=[25], metavar="N",
                   help="hidden layer sizes (default: 25)")
    p.add_argument("--lam", type=non_negative, default=1.0,
                   help="regularization strength lambda (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default="L-BFGS-B",
                   help="optimizer: scipy's L-BFGS-B, TNC, CG, BFGS (small networks only: it "
                        "keeps a dense n x n matrix); optax's lbfgs, adam, sgd "
                        "(default: %(default)s)")
    p.add_argument("--iterations", type=positive_int, default=400, metavar="N",
                   help="maximum iterations (epochs for adam and sgd) (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="mini-batch size for adam and sgd")
    p.add_argument("--learning-rate", type=positive, default=None, metavar="LR",
                   help="learning rate for adam and sgd")
    p.add_argument("--grad", choices=("backprop", "autodiff"), default="backprop",
                   help="gradient: hand-written backprop or jax.grad (default: %(default)s)")
    _add_model_options(p)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point precision (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for the split and the initial "
                   "weights (default: %(default)s)")
    p.add_argument("--test-size", type=_fraction, default=0.2, metavar="FRACTION",
                   help="held-out fraction, 0 for none (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_lazy("jaxnn._cli_train", "run_train"))


def _gradcheck_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcheck", help="compare numerical, hand-written and automatic gradients",
        description="Compare the numerical gradient (central differences), the hand-written "
                    "backprop and jax.grad, in float64. By default on the course's small 3-5-3 "
                    "network at lam 0 and 3; --full checks the 400-25-10 network on mnist5k "
                    "(about a minute on two cores; --examples N is faster). Exit status 0 if "
                    "every relative difference is below --tol, 1 otherwise.")
    p.add_argument("--full", action="store_true", help="the 400-25-10 network on data")
    p.add_argument("--examples", type=positive_int, metavar="N",
                   help="with --full: check on N random examples")
    p.add_argument("--weights", metavar="FILE", help="with --full: check at these weights "
                   "(.mat or .npz) instead of random ones")
    _add_data_options(p, None)
    p.add_argument("--hidden", nargs="+", type=positive_int, default=[25], metavar="N",
                   help="with --full: hidden layer sizes (default: 25)")
    p.add_argument("--lam", nargs="+", type=non_negative, metavar="LAM",
                   help="one or more lambdas (default: 0 3; with --full: 1)")
    p.add_argument("--eps", type=positive, default=1e-4, help="finite-difference step "
                   "(default: %(default)g)")
    p.add_argument("--tol", type=positive, default=1e-9, help="largest relative difference "
                   "that passes (default: %(default)g)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for random weights and examples")
    _add_model_options(p)
    p.set_defaults(func=_lazy("jaxnn._cli_commands", "run_gradcheck"))


def _predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predictions and accuracy for a weights file",
        description="Predict the labels of a dataset with a weights file (.npz from jaxnn or a "
                    ".mat such as the course's ex4weights.mat) and print the accuracy and a "
                    "per-class report.")
    p.add_argument("--weights", required=True, metavar="FILE", help="weights (.mat or .npz)")
    _add_data_options(p, "mnist5k")
    p.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid",
                   help="hidden activation the weights were trained with (default: %(default)s)")
    p.add_argument("--out", metavar="CSV", help="write index,predicted,label rows to this file")
    p.set_defaults(func=_lazy("jaxnn._cli_commands", "run_predict"))


def _show_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show", help="picture of the hidden units of a weights file",
        description="Draw each first-layer hidden unit (a row of Theta1 without its bias) as an "
                    "image, as in the course's figure, and write it as a PNG.")
    p.add_argument("--weights", required=True, metavar="FILE", help="weights (.mat or .npz)")
    p.add_argument("--out", default="hidden_units.png", metavar="PNG",
                   help="picture to write (default: %(default)s)")
    p.add_argument("--shape", metavar="HxW", help="image size (default: square; 400 inputs are "
                   "the course's 20x20)")
    p.add_argument("--order", choices=("C", "F"), help="pixel order: F column-major (the "
                   "course's, default for 400 inputs) or C row-major (default otherwise)")
    p.add_argument("--no-title", action="store_true", help="no title above the picture")
    p.set_defaults(func=_lazy("jaxnn._cli_commands", "run_show"))


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand function imported on first call (keeps ``jaxnn --help`` fast)."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    return run


def build_parser() -> ArgumentParser:
    """The ``jaxnn`` argument parser with every subcommand."""
    from jaxnn import __version__

    parser = ArgumentParser(
        prog="jaxnn",
        description="The classic neural-network exercise (ex4) in JAX: train, check gradients, "
                    "predict and draw hidden units.")
    parser.add_argument("--version", action="version", version=f"jaxnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_train_parser, _gradcheck_parser, _predict_parser, _show_parser):
        add(sub)
    from jaxnn._cli_sweep import register as add_sweep_parser

    add_sweep_parser(sub)
    parser.set_defaults(commands=tuple(sub.choices))
    return parser


# ---- entry point ---------------------------------------------------------------------------------


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxnn`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "jaxnn" + (f" {argv[0]}" if argv and not argv[0].startswith("-") else "")
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return exc.code if isinstance(exc.code, int) else 0
        if getattr(args, "func", None) is None:
            raise UsageError(f"choose a command: {', '.join(args.commands)} "
                             "(see 'jaxnn --help')")
        return int(args.func(args) or 0)
    except UsageError as exc:
        return _fail(prog, str(exc))
    except ImportError as exc:
        if missing_module(exc) is None:
            raise
        return _fail(prog, str(missing_extra(exc)))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(prog, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `jaxnn predict ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
