"""Atomic file writes: a crash or Ctrl-C mid-write leaves any previous file intact."""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` atomically: `write(f)` fills a temporary file that then replaces `path`.

    The temporary file lives in the same directory (so `os.replace` is atomic), is flushed and
    fsynced before the rename, and is removed if `write` raises. The new file keeps the mode of
    the file it replaces, or gets 0o644 when there was none. An `OSError` of the write (no
    space left, an I/O error, a quota) is raised with `path` as its file name, whatever file
    the system named (none, or the temporary file).
    """
    path = Path(path)
    directory = path.parent
    # the writer's pid and host in the name let remove_stale_temps tell a dead writer's leftovers
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer()}.", suffix=TMP_SUFFIX,
                                   dir=directory)
    except OSError as exc:
        raise _named(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from exc
        raise
    _fsync_directory(directory)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name (an error without an errno: as it is)."""
    return exc if exc.errno is None else type(exc)(exc.errno, exc.strerror, str(path))


def remove_stale_temps(path: str | os.PathLike[str], max_age_s: float = 86400.0) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed mid-write left behind (a
    SIGKILL or a power cut skips the cleanup in :func:`atomic_write`): those whose writer was
    a process of this machine that no longer exists, and any older than ``max_age_s`` (the
    only test for a writer on another machine sharing the directory, or a name that does not
    say its writer). Returns the files removed; files that cannot be removed are left."""
    path = Path(path)
    prefix = f".{path.name}."
    host = _writer().partition("@")[2]
    removed = []
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f"{glob.escape(prefix)}*{TMP_SUFFIX}"):
            pid, _, where = tmp.name[len(prefix):].split(".", 1)[0].partition("@")
            try:
                dead = where == host and pid.isdigit() and not process_alive(int(pid))
                stale = dead or time.time() - tmp.stat().st_mtime > max_age_s
                if stale:
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:
                continue
    return removed


def _writer() -> str:
    """``pid@host`` of this process, the host's name with anything but letters and digits
    replaced (the temporary file's name is split at dots)."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    return f"{os.getpid()}@{host}"


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (this one's own pid: True; another
    user's process: True)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone; or a number that is no pid at all
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
