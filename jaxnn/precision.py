"""A scoped switch for float64: JAX's x64 mode on inside a ``with`` block, restored after.

jaxnn never changes JAX's global configuration; float64 work (gradient checks, ``--dtype
float64`` training) runs inside :func:`x64`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager

import jax
import numpy as np

from jaxnn.checks import check_flag


@contextlib.contextmanager
def x64(enabled: bool = True) -> Iterator[None]:
    """Context manager: JAX's 64-bit mode set to ``enabled`` (True or False) for the block,
    then restored."""
    enabled = check_flag(enabled, "enabled")
    if hasattr(jax, "enable_x64"):  # jax >= 0.6
        with jax.enable_x64(enabled):
            yield
    else:  # pragma: no cover - older jax
        from jax.experimental import disable_x64, enable_x64

        with enable_x64() if enabled else disable_x64():
            yield


def x64_enabled() -> bool:
    """Whether JAX's 64-bit mode is on here (globally or in a :func:`x64` block)."""
    return bool(jax.config.read("jax_enable_x64"))


def x64_when(want64: bool | None) -> AbstractContextManager:
    """:func:`x64` for the block if ``want64`` and x64 is not already on; else nothing (the
    precision rule of ``fit``, ``fit_many``, the estimator and the sweeps: float64 only when
    asked for, and never switched off)."""
    return x64() if want64 and not x64_enabled() else contextlib.nullcontext()


def training_dtype(want64: bool | None, inputs: object) -> np.dtype:
    """The dtype a training runs in: the inputs' (already canonical) for ``want64`` None,
    else float64 or float32 as asked (:func:`jaxnn.checks.check_dtype`)."""
    return np.dtype(inputs) if want64 is None else np.dtype(np.float64 if want64 else np.float32)
