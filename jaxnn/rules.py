"""The rules on plain numbers, with their words: one home for each.

:mod:`jaxnn.checks` applies them to the library's arguments and :mod:`jaxnn.cli.options` to the
command's options, so that both refuse a value in the same words. Kept free of heavy imports
(no JAX, no numpy), like :mod:`jaxnn.names`: the command checks its options before JAX is
imported.
"""

from __future__ import annotations

import math

from jaxnn.defaults import MAX_SEED

POSITIVE_INT = "a positive integer"
NON_NEGATIVE_INT = "an integer >= 0"
FRACTION = "a fraction in (0, 1)"
#: why labels of one class are refused
NEEDS_TWO_CLASSES = "a classifier needs examples of at least two"
#: a central difference's step: a larger one approximates no derivative, and its squares and
#: exponentials overflow
STEP = "a finite-difference step in (0, 1]"


def number_words(low: float | None = None, strict: bool = False) -> str:
    """``"a finite number >= 0"``: the words of :func:`is_bounded`'s rule."""
    return "a finite number" + ("" if low is None else f" {'>' if strict else '>='} {low:g}")


def is_bounded(value: float, low: float | None = None, strict: bool = False) -> bool:
    """Whether ``value`` is finite and at least ``low`` (above it when ``strict``); an int is
    finite however large (``math.isfinite`` cannot take one past the largest float)."""
    return (isinstance(value, int) or math.isfinite(value)) and (
        low is None or (value > low if strict else value >= low))


def is_step(value: float) -> bool:
    """Whether ``value`` is a finite-difference step (:data:`STEP`)."""
    return is_bounded(value, 0, strict=True) and value <= 1


def is_fraction(value: float) -> bool:
    """Whether ``value`` lies in ``(0, 1)`` (a share of the examples held out)."""
    return 0 < value < 1


def seed_range(numpy: bool = False) -> tuple[int, str]:
    """The smallest seed and the words of the seed rule: ``0..2**63 - 1`` where the seed feeds
    numpy's generators (which refuse negative seeds), ``-2**63..2**63 - 1`` for a JAX key."""
    low, low_text = (0, "0") if numpy else (-MAX_SEED - 1, "-2**63")
    return low, f"an integer in [{low_text}, 2**63 - 1]"


def is_seed(value: int, numpy: bool = False) -> bool:
    """Whether the integer ``value`` is a seed (:func:`seed_range`)."""
    return seed_range(numpy)[0] <= value <= MAX_SEED
