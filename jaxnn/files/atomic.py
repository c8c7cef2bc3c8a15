"""Atomic file writes: a crash or Ctrl-C mid-write leaves any previous file intact."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` atomically: `write(f)` fills a temporary file that then replaces `path`.

    The temporary file lives in the same directory (so `os.replace` is atomic), is flushed and
    fsynced before the rename, and is removed if `write` raises. The new file keeps the mode of
    the file it replaces, or gets 0o644 when there was none.
    """
    path = Path(path)
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _mode_for(path: Path) -> int:
    """Permission bits for the replacement of `path`: the old file's, else 0o644."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o644


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform can fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
