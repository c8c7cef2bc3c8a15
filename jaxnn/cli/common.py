"""What every ``jaxnn`` subcommand shares: user errors, exit statuses, optional packages.

Everything that can go wrong because of what the user typed or pointed at becomes a
:class:`UsageError`, which :func:`jaxnn.cli.main` prints as one line (exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from jaxnn import extras

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM: stopped as a Ctrl-C stops it, by a SIGTERM


class Subcommands(Protocol):
    """What each subcommand's ``add_parser`` is given: the object
    ``ArgumentParser.add_subparsers()`` returns (its class is private to argparse)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class UsageError(Exception):
    """A problem with the command line or the files it names: printed as one line, exit 2."""


def require(*modules: str) -> None:
    """Raise :class:`UsageError` naming *every* optional package of ``modules`` that is missing
    (or too old) and the extra that brings them all (:func:`jaxnn.extras.require`); the line
    it is printed on names the command."""
    try:
        extras.require("this command", *modules, extra="all")
    except ImportError as exc:
        raise UsageError(str(exc)) from None


def missing_extra(exc: ImportError) -> UsageError | None:
    """A one-line :class:`UsageError` for an optional package that failed to import, or None
    when ``exc`` is about none of jaxnn's optional packages (a real bug, not to be hidden)."""
    name = extras.missing_package(exc)
    if name is None:
        return None
    return UsageError(f"missing optional package {name}: {extras.install_hint('all')}")


# ---- the command's own JAX settings ------------------------------------------------------------

COMPILE_CACHE_ENV = "JAXNN_COMPILE_CACHE"  # "0": no persistent compilation cache
_OFF = ("0", "false", "no", "off")  # what turns it off (in any case)


def use_compile_cache(enabled: bool = True) -> Path | None:
    """Keep compiled programs in the jaxnn cache directory (see
    :func:`jaxnn.datasets.default_cache_dir`), so that a second ``jaxnn train`` of the same
    shape loads them instead of compiling them again: the training loops in ``programs``
    (:func:`jaxnn.set_program_cache`: loaded without tracing), every other program in ``xla``
    (JAX's persistent compilation cache).

    The command's choice for itself: the library never changes JAX's configuration. Off with
    ``enabled=False`` (``--no-compile-cache``) or ``JAXNN_COMPILE_CACHE=0`` (or false, no, off,
    in any case; another value than those and 1, true, yes, on is a :class:`UsageError`);
    a cache directory that cannot be made leaves it off, with a warning. Returns
    the directory holding both, or None."""
    setting = os.environ.get(COMPILE_CACHE_ENV, "1").strip().lower()
    if setting not in (*_OFF, "", "1", "true", "yes", "on"):
        raise UsageError(f"{COMPILE_CACHE_ENV}={os.environ[COMPILE_CACHE_ENV]!r}: give 0 (or "
                         "false, no, off) to keep no compiled programs, 1 (or true, yes, on) "
                         "to keep them")
    if not enabled or setting in _OFF:
        return None
    import jax

    from jaxnn.datasets import default_cache_dir
    from jaxnn.saved_programs import set_program_cache

    root = default_cache_dir()
    try:
        (root / "xla").mkdir(parents=True, exist_ok=True)
        (root / "programs").mkdir(exist_ok=True)
    except OSError as exc:
        warnings.warn(f"no compilation cache in {root} ({exc.filename or root}: "
                      f"{exc.strerror or exc}): every program is compiled afresh; set "
                      "XDG_CACHE_HOME to a writable directory, or pass --no-compile-cache",
                      stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(root / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    set_program_cache(root / "programs")
    return root


class StandardOutput(io.TextIOBase):
    """Standard output (or error) that outlives its reader: once the program reading it has
    gone (``jaxnn train | head -1``, ``2>&1 | head``), what the command prints there is
    dropped and the command goes on to the end, writing its files, instead of stopping at its
    next line or warning. So it does when the stream cannot be written (``> /dev/full``, a
    full disk under a redirection): ``failed`` keeps the error, which the command reports
    once it has done its work (:func:`jaxnn.cli.main`)."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream, self.gone = stream, False
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except OSError as exc:
                self._reader_gone(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError as exc:
                self._reader_gone(exc)

    def _reader_gone(self, exc: OSError) -> None:
        self.gone = True
        if not isinstance(exc, BrokenPipeError):  # not a reader that left: a failure
            self.failed = exc
        with contextlib.suppress(AttributeError, OSError, ValueError):  # no real descriptor
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())  # what is still buffered goes nowhere too
            os.close(null)

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"


@contextlib.contextmanager
def standard_output() -> Iterator[tuple[StandardOutput, StandardOutput]]:
    """``sys.stdout`` and ``sys.stderr`` as :class:`StandardOutput` for the command's
    duration; yields the two."""
    previous = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = StandardOutput(previous[0]), StandardOutput(previous[1])
    try:
        yield sys.stdout, sys.stderr
    finally:
        sys.stdout, sys.stderr = previous


def make_console():  # noqa: ANN201 - rich is optional, so no annotation at import time
    """A rich console on standard output. On a terminal it wraps at the terminal's width;
    piped to a file or another program it neither wraps text nor pads lines with spaces."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)

    class PlainConsole(Console):
        def print(self, *objects, **kw) -> None:  # noqa: ANN002, ANN003
            with self.capture() as captured:
                super().print(*objects, **kw)
            text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
            self.file.write(text)
            self.file.flush()

    return PlainConsole(highlight=False, soft_wrap=True, width=160)


def command_words(message: str) -> str:
    """A library message in the command's words: ``fit(method='BFGS')`` reads ``--method
    BFGS``, ``dtype='float64'`` ``--dtype float64``, ``lam=1e+300`` ``--lam 1e+300``, and
    ``layer_sizes`` the ``--hidden`` layers."""
    for pattern, words in _COMMAND_WORDS:
        message = pattern.sub(words, message)
    return message


# each a word of its own (after a space, a parenthesis or the start), never part of a path
_COMMAND_WORDS = [(re.compile(r"(?<![^\s(])" + pattern), words) for pattern, words in (
    (r"fit\(method='([\w-]+)'\)", r"--method \1"),
    (r"method='([\w-]+)'", r"--method \1"),
    (r"dtype='(float32|float64)'", r"--dtype \1"),
    (r"with batch_size\b", "with --batch-size N"),
    (r"lam=([-+.\w]+)(?=[\s,;)]|$)", r"--lam \1"),
    (r"init_params: layer_sizes\b", "the network's layer sizes"),
    (r"pass zero_based=True", "save the labels as 1..K, or the data as an .npz file (labels "
                              "0..K-1)"),
    (r"reduce layer_sizes\b", "use fewer or smaller --hidden layers"),
    (r"read a slice \(offset=, max_examples=\) or stream them with iter_idx(, or pass "
     r"dtype=np\.float32)?", "use fewer examples, or stream the files from Python "
                             "(jaxnn.stream.fit_stream)"),
    (r"params are\b", "the weights are"),
    (r"^sizes: ", "--values: "),  # jaxnn.sweep.learning_curve's sizes, sweep size's --values
    (r"^lams: ", "--values: "),  # jaxnn.sweep.validation_curve's lams, sweep lam's --values
    (r"^lams=", "--values "),
)]
