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


def _interrupted_while_loading(signum: int, frame: object) -> None:
    print("jaxnn: interrupted", file=sys.stderr)
    raise SystemExit(128 + signum)  # 130, jaxnn.cli.common.EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(run())
