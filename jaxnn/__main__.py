"""``python -m jaxnn`` and the ``jaxnn`` console script: :func:`jaxnn.cli.main`, with a Ctrl-C
during the loading of the command's own modules (numpy among them, a tenth of a second or
more) answered like any other Ctrl-C: one line and exit status 130, no traceback. From then
on the command handles Ctrl-C itself (``train`` keeps what it reached)."""

from __future__ import annotations

import signal
import sys


def run() -> int:
    """Load :mod:`jaxnn.cli` with Ctrl-C guarded, then run the command."""
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        from jaxnn.cli import main
    finally:
        signal.signal(signal.SIGINT, previous)
    return main()


def _interrupted_while_loading(signum: int, frame: object) -> None:
    print("jaxnn: interrupted", file=sys.stderr)
    raise SystemExit(128 + signum)  # 130, jaxnn.cli.common.EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(run())
