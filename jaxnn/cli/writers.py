"""The files a ``jaxnn`` command writes: JSON, CSV and text, atomically, and the check that
an output file can be written, made before any work. The output directory of a run is
:mod:`jaxnn.cli.run_directory`'s."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxnn.cli.common import UsageError
from jaxnn.files.atomic import atomic_write


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically. numpy scalars and arrays become numbers and
    lists, non-finite floats ``null`` (so the file is strict JSON)."""
    write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    """``value`` with numpy types, paths and tuples converted and NaN/inf replaced by None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_csv(path: str | os.PathLike[str], header: Sequence[str],
              columns: Sequence[np.ndarray]) -> None:
    """Write integer columns as CSV with a header row, atomically."""
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack(columns), fmt="%d", delimiter=",",
               header=",".join(header), comments="")
    write_text(path, buffer.getvalue())


def check_output_file(path: str) -> None:
    """Refuse, before any work, an ``--out`` file that cannot be written: an empty name, a
    directory (or a name ending in a separator), or a file whose directory is missing, not a
    directory, or not writable. Only the directory matters: the file is replaced by a rename (see
    :func:`jaxnn.files.atomic.atomic_write`). :func:`write_or_fail` still reports what only
    the write itself finds out."""
    if not path.strip():
        raise UsageError("--out: an empty name; give a file name")
    target = Path(path)
    if path.endswith(("/", os.sep)):
        raise UsageError(f"{path}: ends in {path[-1]}, the name of a directory; give a file name")
    if target.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name")
    parent = target.parent
    if not parent.is_dir():
        reason = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{path}: cannot write (the directory {parent} {reason})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot write (permission denied in {parent})")


def write_or_fail(path: str, write) -> None:  # noqa: ANN001
    """Run ``write()``; a missing or unwritable directory is a :class:`UsageError` naming
    ``path`` (never the temporary file of the atomic write)."""
    try:
        write()
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from exc
