"""``python -m jaxnn`` and the ``jaxnn`` console script: :func:`jaxnn.cli.main`, with a Ctrl-C
during the loading of the command's own modules (numpy among them, a tenth of a second or
more) answered like any other Ctrl-C: one line and exit status 130, no traceback. From then
on the command handles Ctrl-C itself (``train`` keeps what it reached). An interrupted
command's process ends at once: it does not wait for the computations XLA still runs (a
sweep's whole training is one computation, minutes long)."""

from __future__ import annotations

import os
import signal
import sys


def run() -> int:
    """Load :mod:`jaxnn.cli` with Ctrl-C guarded, then run the command."""
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        from jaxnn.cli import main
        from jaxnn.cli.common import EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    code = main()
    if code == EXIT_INTERRUPTED:  # everything it keeps is written (atomically) and closed
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the interpreter's exit would wait for XLA's computations in flight
    return code


def _interrupted_while_loading(signum: int, frame: object) -> None:
    print("jaxnn: interrupted", file=sys.stderr)
    raise SystemExit(128 + signum)  # 130, jaxnn.cli.common.EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(run())
