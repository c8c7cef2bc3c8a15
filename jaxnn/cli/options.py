"""Options shared by the ``jaxnn`` subcommands: argument types and the data and model options.

Imports nothing heavy (no JAX, no numpy): the parser is built and ``--help`` answered before
JAX is imported. Number types apply the rules the library applies, from their one home
(:mod:`jaxnn.rules`), in argparse's one-line form.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jaxnn.cli.common import UsageError
from jaxnn.defaults import ACTIVATION, GRAD, LEARNING_RATES, OUTPUT
from jaxnn.names import (
    ACTIVATIONS,
    DTYPES,
    GRADS,
    MANY_METHODS,
    METHODS,
    MINIBATCH_METHODS,
    OUTPUTS,
)
from jaxnn.rules import (
    FRACTION,
    POSITIVE_INT,
    STEP,
    is_bounded,
    is_fraction,
    is_seed,
    is_step,
    number_words,
    seed_range,
)

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
    the words of :mod:`jaxnn.rules` (as ``checks.positive_int`` and ``check_number`` do)."""
    rule = POSITIVE_INT if kind is int else number_words(low, strict)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not is_bounded(value, low, strict):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = rule
    return parse


positive_int = _number(int, 1)
non_negative = _number(float, 0.0)
positive = _number(float, 0.0, strict=True)


def _fraction(text: str, rule: str, zero: bool) -> float:
    """``text`` as a number in ``(0, 1)`` (or 0 too, if ``zero``), refused in the words of
    ``rule`` whatever was wrong (not a number, or out of range)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (is_fraction(value) or (zero and value == 0)):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def fraction(text: str) -> float:
    """``--test-size``: 0 (no held-out set) or a fraction in (0, 1)."""
    return _fraction(text, f"0 or {FRACTION}", zero=True)


def open_fraction(text: str) -> float:
    """``--val-size``: a fraction in (0, 1)."""
    return _fraction(text, FRACTION, zero=False)


def step(text: str) -> float:
    """``--eps``: a finite-difference step in ``(0, 1]``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not is_step(value):
        raise argparse.ArgumentTypeError(f"must be {STEP}, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """``--seed``: an integer in ``0..2**63 - 1`` (it seeds numpy's generators too)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not is_seed(value, numpy=True):
        raise argparse.ArgumentTypeError(f"must be {seed_range(numpy=True)[1]}, got {text!r}")
    return value


def add_data_options(p: argparse.ArgumentParser, default: str | None) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--data", nargs="+", action=ListOnce, metavar="PATH",
                       help="a course .mat file (X, y), an .npz with arrays X and y, or two IDX "
                            "files: IMAGES LABELS (gzipped or not)")
    group.add_argument("--dataset", choices=DATASETS,
                       help=f"a bundled dataset (default: {default})" if default else
                       "a bundled dataset")


def add_model_options(p: argparse.ArgumentParser, from_weights: bool = False) -> None:
    """``--activation`` and ``--output``. ``from_weights``: not given stays None, for commands
    that read the network from a weights file (which then decides)."""
    def default(course: str) -> tuple[str | None, str]:  # the default and its words
        return (None, f"the weights file's, else {course}") if from_weights else (course, course)

    (activation, said), (output, said_output) = default(ACTIVATION), default(OUTPUT)
    p.add_argument("--activation", choices=ACTIVATIONS, default=activation,
                   help=f"hidden-layer activation (default: {said})")
    p.add_argument("--output", choices=OUTPUTS, default=output,
                   help=f"output layer: the course's sigmoid or softmax (default: {said_output})")




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
    p.add_argument("--grad", choices=GRADS, default=GRAD,
                   help="gradient: hand-written backprop or jax.grad (default: %(default)s)")
    p.add_argument("--dtype", choices=DTYPES, default=DTYPES[0],
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
           "seed_int", "step"]
