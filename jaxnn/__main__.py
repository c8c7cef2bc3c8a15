"""``python -m jaxnn`` and the ``jaxnn`` console script: :func:`jaxnn.cli.main`, with a Ctrl-C
during the loading of the command's own modules (numpy among them, a tenth of a second or
more) answered like any other Ctrl-C: one line and exit status 130, no traceback. From then
on the command handles Ctrl-C itself (``train`` keeps what it reached). Once the command
returns, everything it keeps is written (atomically) and closed, and the process ends at
once: the interpreter's own exit would wait for the computations XLA still runs (an
interrupted sweep's whole training is one computation, minutes long), tear XLA down (about a
second), and answer a Ctrl-C in that second with a traceback from its shutdown code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import NoReturn


def run() -> NoReturn:
    """Load :mod:`jaxnn.cli` with Ctrl-C guarded, then run the command."""
    _standard_streams()
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        from jaxnn.cli import main
        from jaxnn.cli.common import EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        code = main()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: nothing to stop
    except KeyboardInterrupt:  # in the instant between the command's end and the line above
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(OSError, ValueError):  # standard error may be gone too
            print("jaxnn: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream
            stream.flush()
    os._exit(code)


def _standard_streams() -> None:
    """Standard input, output or error that the caller closed (``jaxnn train >&-``) opened on
    the null device: what the command prints there goes nowhere, as when a reader has left,
    and no file that the command or XLA opens later takes descriptor 0, 1 or 2 (the command's
    lines would land in it). Python leaves ``sys.stdout`` None for a closed descriptor 1."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:  # closed: the lowest free descriptor is this one
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - for the process


def _interrupted_while_loading(signum: int, frame: object) -> None:
    print("jaxnn: interrupted", file=sys.stderr)
    raise SystemExit(128 + signum)  # 130, jaxnn.cli.common.EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(run())
