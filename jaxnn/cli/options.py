"""Options shared by the ``jaxnn`` subcommands: argument types and the data and model options.

Imports nothing heavy (no JAX, no numpy): the parser is built and ``--help`` answered before
JAX is imported. Number types report the same rules the library applies
(:mod:`jaxnn.checks`), in argparse's one-line form.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jaxnn.cli.common import UsageError
from jaxnn.defaults import LEARNING_RATES, MAX_SEED
from jaxnn.names import ACTIVATIONS, GRADS, MANY_METHODS, METHODS, MINIBATCH_METHODS, OUTPUTS

DATASETS = ("mnist5k", "digits")


class ListOnce(argparse.Action):
    """A list option (``nargs="+"``) given at most once: argparse would let a second
    ``--hidden 50`` silently replace ``--hidden 25`` where two layers were meant."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if getattr(namespace, self.dest) is not self.default:
            first = " ".join(map(str, getattr(namespace, self.dest)))
            raise argparse.ArgumentError(self, f"given twice; give all its values after one "
                                               f"{option_string}: {option_string} {first} "
                                               f"{' '.join(map(str, values))}")
        setattr(namespace, self.dest, values)


def _number(kind: type, low: float, *, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: ``kind(text)``, at least ``low`` (above it if ``strict``), refused in
    the words of :mod:`jaxnn.checks` (``positive_int``, ``check_number``)."""
    if kind is int:
        rule = "a positive integer"
    else:
        rule = f"a finite number {'>' if strict else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")) or (
                value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = rule
    return parse


positive_int = _number(int, 1)
non_negative = _number(float, 0.0)
positive = _number(float, 0.0, strict=True)


def _fraction(text: str, rule: str, closed_at_zero: bool) -> float:
    """``text`` as a number in ``[0, 1)`` (``(0, 1)`` unless ``closed_at_zero``), refused in the
    words of ``rule`` whatever was wrong (not a number, or out of range)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ((0 <= value if closed_at_zero else 0 < value) and value < 1):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def fraction(text: str) -> float:
    """``--test-size``: 0 (no held-out set) or a fraction in (0, 1)."""
    return _fraction(text, "0 or a fraction in (0, 1)", closed_at_zero=True)


def open_fraction(text: str) -> float:
    """``--val-size``: a fraction in (0, 1)."""
    return _fraction(text, "a fraction in (0, 1)", closed_at_zero=False)


def seed_int(text: str) -> int:
    """``--seed``: an integer in ``0..2**63 - 1``."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**63 - 1], got {text!r}")
    return value


def add_data_options(p: argparse.ArgumentParser, default: str | None) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--data", nargs="+", action=ListOnce, metavar="PATH",
                       help="a course .mat file (X, y), an .npz with arrays X and y, or two IDX "
                            "files: IMAGES LABELS (gzipped or not)")
    group.add_argument("--dataset", choices=DATASETS,
                       help=f"a bundled dataset (default: {default})" if default else
                       "a bundled dataset")


def add_model_options(p: argparse.ArgumentParser, default: str | None = "sigmoid") -> None:
    """``--activation`` and ``--output``. ``default=None``: not given stays None, for commands
    that read the network from a weights file (which then decides)."""
    when = "sigmoid" if default else "the weights file's, else sigmoid"
    p.add_argument("--activation", choices=ACTIVATIONS, default=default,
                   help=f"hidden-layer activation (default: {when})")
    p.add_argument("--output", choices=OUTPUTS, default=default,
                   help=f"output layer: the course's sigmoid or softmax (default: {when})")




def add_training_options(p: argparse.ArgumentParser, *, iterations: int) -> None:
    """``--iterations``, ``--batch-size``, ``--learning-rate``, ``--grad``, ``--dtype``."""
    p.add_argument("--iterations", type=positive_int, default=iterations, metavar="N",
                   help="maximum iterations: line searches for fmincg, epochs for adam and sgd "
                        "(default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="mini-batch size for adam and sgd: each epoch takes m // N batches "
                        "of N shuffled examples, the m %% N left over sit out that epoch; "
                        "N >= m is one full batch (default: the full training set)")
    p.add_argument("--learning-rate", type=positive, default=None, metavar="LR",
                   help="learning rate for adam and sgd (default: "
                        + ", ".join(f"{v:g} for {k}" for k, v in LEARNING_RATES.items()) + ")")
    p.add_argument("--grad", choices=GRADS, default="backprop",
                   help="gradient: hand-written backprop or jax.grad (default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point precision (default: %(default)s)")
    add_compile_cache_option(p)


def minibatch_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """``batch_size`` and ``learning_rate`` from ``--batch-size`` and ``--learning-rate``, those
    given; a :class:`UsageError` for any other ``--method`` than adam and sgd, which would
    ignore them."""
    given = {name: value for name, value in (("batch_size", args.batch_size),
                                             ("learning_rate", args.learning_rate))
             if value is not None}
    if given and args.method not in MINIBATCH_METHODS:
        flags = " and ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{flags} {'are' if len(given) > 1 else 'is'} only used by --method "
                         f"{' and '.join(MINIBATCH_METHODS)}, not {args.method}: drop it or "
                         f"choose --method {' or '.join(MINIBATCH_METHODS)}")
    return given


def add_compile_cache_option(p: argparse.ArgumentParser) -> None:
    """``--no-compile-cache``: do not keep compiled programs between runs."""
    p.add_argument("--no-compile-cache", action="store_true",
                   help="do not keep compiled programs between runs (kept in the jaxnn cache "
                        "directory, ~/.cache/jaxnn/programs and ~/.cache/jaxnn/xla by default, "
                        "so that a second run of the same shape starts at once; "
                        "JAXNN_COMPILE_CACHE=0 turns it off too)")


__all__ = ["ACTIVATIONS", "DATASETS", "MANY_METHODS", "METHODS", "OUTPUTS",
           "add_compile_cache_option", "add_data_options", "add_model_options",
           "add_training_options", "fraction", "non_negative", "positive", "positive_int",
           "seed_int"]
