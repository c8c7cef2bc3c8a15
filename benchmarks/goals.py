"""The benchmarks' verdicts on their goals. A smoke run (``--smoke``: tiny sizes, a check that
every path of a script runs) judges none: its figures say nothing about a goal."""

from __future__ import annotations

#: the first line of every smoke run's report
SMOKE = "smoke run: tiny sizes, so no goal is judged; run without --smoke to measure"


def verdict(ok: bool, smoke: bool) -> str:
    """``met`` or ``NOT met``; in a smoke run neither."""
    return "not judged (smoke run)" if smoke else ("met" if ok else "NOT met")
