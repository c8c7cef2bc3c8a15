"""Warnings that point at the user's line: the one home of the rule that finds it."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside the jaxnn
    package (the user's call of ``fit``, ``load_model``, the estimator, a sweep: at any depth
    in jaxnn), so that the warning names the user's file and line and Python's filters
    (``-W``, ``warnings.filterwarnings(module=...)``) see the user's module."""
    frame, level = sys._getframe(1), 1  # level 1: the function that called warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)  # + 1: this function's own frame
