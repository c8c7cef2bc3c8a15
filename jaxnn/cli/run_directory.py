"""The output directory of one ``jaxnn train`` or ``jaxnn sweep`` run: made, locked against a
second run, and never holding the user's files where the run writes (see
:class:`RunDirectory`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import stat
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jaxnn.cli.common import UsageError
from jaxnn.cli.writers import write_json
from jaxnn.files.atomic import process_alive, remove_stale_temps

LOCK = ".jaxnn-run.lock"
LOCK_BLANK_S = 5.0  # a lock without a pid this young is a run starting; older, a crashed one
MARK = ".jaxnn-run"  # stays: the digests of the files runs left here (JSON)
# in the mark while a run writes: the names whose file it may be writing now (its other files
# are recorded as it claims the next); a run killed mid-way leaves them, and its files count
WRITING = "writing"
# the file each run wrote last before runs marked their directory, by which it shows what it
# wrote: {name: (the keys it holds, its run's other files; None: the names its "files" lists)}
BEFORE_THE_MARK = {"summary.json": (("jaxnn_version", "files"), None),  # train's summary
                   **{f"sweep_{kind}.json": (("kind", "param", "values", "settings"),
                                             (f"sweep_{kind}.png",))
                      for kind in ("validation", "learning")}}
MTIME_SLACK_S = 2.0  # file systems that keep modification times to 2 s (FAT)


# ---- making the output directory --------------------------------------------------------------


def output_dir(path: str | None, default_parent: str = "runs") -> tuple[Path, list[Path]]:
    """Create the output directory: ``path``, or ``runs/<timestamp>`` (made unique); return it
    and the directories this made, deepest first."""
    if path is not None and not path.strip():
        raise UsageError("--out: an empty name; give a directory (or leave --out out for "
                         f"{default_parent}/<timestamp>)")
    made: list[Path] = []
    out = Path(default_parent if path is None else path)
    option = "" if path is None else "--out "  # named when the user gave it
    try:
        _make_directories(out, made)
        if path is None:  # a directory of its own: mkdir is atomic, so two runs never share one
            out = _new_directory(out, time.strftime("%Y%m%d-%H%M%S"))
            made.insert(0, out)
    except OSError as exc:
        raise UsageError(f"{option}{out}: cannot create the output directory "
                         f"({exc.strerror})") from exc
    if not out.is_dir():
        raise UsageError(f"{option}{out}: exists and is not a directory")
    if not os.access(out, os.W_OK):
        raise UsageError(f"{option}{out}: the output directory is not writable")
    return out, made


def writer_of(directory: Path) -> int | None:
    """The process id of the live jaxnn run writing ``directory`` (its lock's owner), if one
    is."""
    lock = directory / LOCK
    owner = _lock_owner(lock) if _is_regular(lock) else None
    return owner if owner is not None and process_alive(owner) else None


def refuse_a_runs_file(path: str) -> None:
    """Refuse a single-file ``--out`` (``show``'s picture) that is a file a ``train`` or
    ``sweep`` run left in its directory: replacing it would silently change the run's record,
    and the next run there would take the new file for the user's and refuse to reuse the
    directory. (``predict`` writes only CSV files, which runs never write.)"""
    target = Path(path)
    out = target.parent
    try:
        recorded, damaged = _runs_files(out)
    except UsageError:  # a mark that is not a file
        recorded, damaged = {}, True
    if damaged:  # the runs' summaries' lists, as for a directory from before the mark
        recorded = {**_vouched_before_the_mark(out), **recorded}
    if target.name in recorded:  # even once deleted: a later run there still owns the name
        raise UsageError(f"--out {path}: is a file of the jaxnn run in {out} (its record lists "
                         "it); write elsewhere, e.g. --out with another name or directory")


def _new_directory(parent: Path, stamp: str) -> Path:
    """Make ``parent/stamp``, or ``parent/stamp-2``, ``-3``, ... for the first name free."""
    k = 1
    while True:
        out = parent / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            os.mkdir(out)
            return out
        except FileExistsError:
            k += 1


def _make_directories(path: Path, made: list[Path]) -> None:
    """``mkdir -p path``, adding to the front of ``made`` each directory this call created (so
    deepest first). Only what ``mkdir`` itself made counts: a name like ``new/../mine`` that
    resolves to an existing directory once ``new`` exists is never taken for one made."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    except FileNotFoundError:
        if path.parent == path:
            raise
        _make_directories(path.parent, made)
        try:
            os.mkdir(path)
        except FileExistsError:
            return
    made.insert(0, path)


# ---- one run's claim on it: the lock, the files written, the mark --------------------------------


class RunDirectory:
    """``with RunDirectory(path, names) as out:``: the output directory of one run, owned by
    it.

    Entering creates the directory (see :func:`output_dir`) and takes its lock, a file made
    with ``O_EXCL`` that holds the owner's process id: a second run into a directory that a
    live run holds is refused with a :class:`UsageError` (the two would mix their files); a
    lock left by a dead run is taken over. The directory's ``.jaxnn-run`` mark records the
    SHA-256 of each file that runs left under their names. A file under ``names`` that it
    does not record, that changed since, or that cannot be read is the user's: the run is
    refused and the files are left alone. A directory from before the mark (no mark, or an
    older run's empty one) has its files vouched for by the file each run wrote last
    (:data:`BEFORE_THE_MARK`): that file and the files it names count as a run's if none
    was written after it; the mark then records them, and nothing else. :meth:`replace_previous`,
    called when the run is about to write, removes what a previous run left under ``names``
    and its writers' temporary files, so the directory never shows one run's pictures beside
    another run's summary, and a run that fails before writing leaves the previous one whole
    (and a directory it made, none). Each file is then written to :meth:`claim`'s path,
    which keeps aside what appeared there meanwhile and updates the mark (atomically) to
    record the files this run has written so far and to name the ones it may be writing
    now: a run killed at any moment (``SIGKILL``, a power cut) leaves a mark that vouches for
    every file it wrote, each whole since files are written atomically (see
    :func:`_vouched_writing`). Leaving records this run's files in the mark (a run that wrote
    nothing leaves the mark as it was) and releases the lock."""

    def __init__(self, path: str | None, names: Sequence[str] = ()) -> None:
        self.path, self.names = path, tuple(names)
        self.out: Path | None = None
        self.made: list[Path] = []  # the directories this run made, deepest first
        self.replaced = False  # replace_previous() ran: this run has begun to write
        self.claimed: set[str] = set()  # the names this run has written (see claim())
        self.recorded: dict[str, str] = {}  # the mark: {name: sha256} of the runs' files
        self.writing: set[str] = set()  # the names claimed whose file may be being written
        self.written: dict[str, str] = {}  # {name: sha256} of this run's files, once written
        self.entered: dict[str, str | None] = {}  # the previous run's files' digests

    def __enter__(self) -> Path:
        out, self.made = output_dir(self.path)
        lock, locked = out / LOCK, False
        try:
            for _ in range(2):
                try:
                    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    self._judge_lock(lock)  # a live run's lock: refused
                    with contextlib.suppress(FileNotFoundError):
                        lock.unlink()  # a dead run's lock (what it left is judged as the rest)
                    continue
                locked = True
                with os.fdopen(fd, "w") as f:
                    f.write(f"{os.getpid()}\n")
                break
            else:  # pragma: no cover - another run took the stale lock at the same moment
                raise UsageError(f"{out}: another jaxnn run is starting in this directory")
            self.entered = {n: _digest(out / n) for n in self.names
                            if os.path.lexists(out / n)}
            recorded, damaged = _runs_files(out)
            _refuse_the_users(out, self.entered, recorded, damaged)
        except BaseException:  # refused, failed or interrupted: nothing of this run is left
            if locked:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
            _remove_empty(self.made)
            raise
        # the mark is written when the run writes (see claim() and __exit__)
        self.out, self.recorded = out, recorded
        return out

    @staticmethod
    def _judge_lock(lock: Path) -> None:
        """Refuse a lock that is not a dead run's: a special file, a live run's, or one
        still without its pid (a run starting)."""
        out = lock.parent
        if not _is_regular(lock):
            raise UsageError(f"{lock}: is not a jaxnn lock file (a directory, a link or "
                             "another special file); move it away or choose another --out")
        owner = writer_of(out)
        if owner is not None:
            raise UsageError(f"{out}: another jaxnn run (process {owner}) is writing this "
                             "directory; wait for it or choose another --out")
        if _lock_owner(lock) is None and _age(lock) < LOCK_BLANK_S:  # its pid not yet written
            raise UsageError(f"{out}: another jaxnn run is starting in this directory; wait "
                             "for it or choose another --out")

    def replace_previous(self) -> None:
        """Remove the files a previous run left under ``names``, and the temporary files of
        their interrupted writes (this run holds the lock: no live writer is left). A file
        changed since the run began (the user edited the previous summary, say) is kept
        under another name, with a warning."""
        assert self.out is not None, "replace_previous() inside the with block"
        self.replaced = True
        for name in self.names:
            path = self.out / name
            if os.path.lexists(path) and (not _is_regular(path)
                                          or _digest(path) != self.entered.get(name)):
                self._keep_aside(path, "changed while this run trained")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            # the writers' temporaries whose process is gone (never a file that only looks
            # like one: a name that does not say its writer, or a writer still alive)
            remove_stale_temps(path, max_age_s=math.inf)

    def claim(self, name: str) -> Path:
        """The path to write ``name`` to now. Whatever is there that this run did not write
        (the user's, made since :meth:`replace_previous`), or that is not a regular file, is
        kept under another name, with a warning, instead of being written over.

        The mark then records the files this run claimed before that are now written (whole:
        each is written atomically, before the next is claimed) and names ``name``, with
        those claimed but not yet written, as being written: it is the run's if it is killed
        before it records it (:func:`_vouched_writing`)."""
        assert self.out is not None and self.replaced, "claim() after replace_previous()"
        path = self.out / name
        if os.path.lexists(path) and (name not in self.claimed or not _is_regular(path)):
            self._keep_aside(path, "appeared while this run wrote its files")
        self.claimed.add(name)
        self.written.pop(name, None)  # written again (the summary): digested again
        self.writing = {n for n in self.writing if not _is_regular(self.out / n)} | {name}
        self._record(self.writing)
        return path

    def _keep_aside(self, path: Path, why: str) -> None:
        kept = path.with_name(f"{path.name}.kept-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, kept)
        warnings.warn(f"{path} {why}; kept it as {kept.name}", stacklevel=3)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 *_: object) -> None:
        if self.out is None:
            return
        if not self.replaced:  # it wrote nothing: the mark stays as it was
            with contextlib.suppress(FileNotFoundError):
                (self.out / LOCK).unlink()
            if exc_type is not None:  # and a run that failed leaves no directory it made
                _remove_empty(self.made)
            return
        failed = self._failed_write(exc)
        try:
            with contextlib.suppress(*((OSError,) if failed else ())):  # a full disk, say
                self._record()
        finally:
            with contextlib.suppress(FileNotFoundError):
                (self.out / LOCK).unlink()
        if failed is not None:
            name = failed[0]
            kept = sorted(n for n in self.written if n != name)
            raise UsageError(
                f"{self.out / name}: cannot write ({failed[1].strerror or failed[1]}); "
                + (f"{self.out} keeps the files written before it: {', '.join(kept)}" if kept
                   else "no file of this run was written")) from failed[1]

    def _failed_write(self, exc: BaseException | None) -> tuple[str, OSError] | None:
        """``(name, exc)`` when ``exc`` is the failure to write one of this run's files (no
        space left, an I/O error, a quota): :func:`jaxnn.files.atomic.atomic_write` names the
        file it was writing, whatever the system said."""
        if not isinstance(exc, OSError) or exc.filename is None:
            return None
        where = os.path.realpath(os.fsdecode(exc.filename))
        for name in self.claimed:
            if os.path.realpath(self.out / name) == where:
                return name, exc
        return None

    def _record(self, writing: set[str] | None = None) -> None:
        """Write the mark (atomically): the SHA-256 of each file under ``names`` now, beside
        what it recorded of other commands' files (this run holds the lock: no one else
        writes it). While the run writes (``writing``, the names it may be writing now), only
        the files it has claimed are its: the mark records those and names ``writing``. Each
        of this run's files is read once, when it is first recorded as written."""
        assert self.out is not None
        for name in self.names:
            self.recorded.pop(name, None)
            digest = self.written.get(name)
            if digest is None and (writing is None or name in self.claimed):
                digest = _digest(self.out / name)
                if digest is not None and name in self.claimed and name not in (writing or ()):
                    self.written[name] = digest
            if digest is not None:
                self.recorded[name] = digest
        mark: dict[str, Any] = {"files": dict(sorted(self.recorded.items()))}
        if writing is not None:
            mark[WRITING] = sorted(writing)
        write_json(self.out / MARK, mark)


# ---- reading what earlier runs left --------------------------------------------------------------


def _refuse_the_users(out: Path, entered: dict[str, str | None],
                      recorded: dict[str, str], damaged: bool) -> None:
    """Refuse files under a run's names that the mark does not vouch for: unreadable ones
    (no digest to compare), then the user's (unrecorded or changed since)."""
    unreadable = [n for n, digest in entered.items() if digest is None
                  and _is_regular(out / n)]
    if unreadable:
        raise UsageError(f"{out}: cannot read {', '.join(unreadable)} to tell whether a jaxnn "
                         "run wrote it; make it readable, move it away or choose another --out")
    theirs = [n for n, digest in entered.items() if digest is None or recorded.get(n) != digest]
    if theirs:
        them = "them" if len(theirs) > 1 else "it"
        why = (f" ({MARK}, the record of what runs wrote here, cannot be read)" if damaged
               else "")
        raise UsageError(f"{out}: already holds {', '.join(theirs)}, which no jaxnn run wrote "
                         f"(or which changed since){why}; move {them} away or choose another "
                         "--out")


def _remove_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (deepest first) while they are empty."""
    try:
        for directory in directories:
            directory.rmdir()
    except OSError:  # not empty: something else is there now
        pass


def _vouched_before_the_mark(out: Path) -> dict[str, str]:
    """``{name: sha256}`` of the files that runs from before the mark wrote here, by the file
    each run wrote last (:data:`BEFORE_THE_MARK`): it and the files it names, each a plain
    file written no later than it (a file the user put there afterwards is the user's)."""
    vouched: dict[str, str] = {}
    for name, (keys, others) in BEFORE_THE_MARK.items():
        text = _read_text(out / name)
        try:
            written = json.loads(text) if text is not None else None
            last = (out / name).lstat().st_mtime
        except (OSError, ValueError):
            continue
        if not (isinstance(written, dict) and all(k in written for k in keys)):
            continue
        if others is None:
            listed = written["files"]
            others = [v for v in listed.values() if isinstance(v, str)] \
                if isinstance(listed, dict) else []
        for n in {name, *others}:
            path = out / n
            if Path(n).name != n or n.startswith("."):
                continue
            digest = _digest(path)
            if digest is not None and path.lstat().st_mtime <= last + MTIME_SLACK_S:
                vouched[n] = digest
    return vouched


def _vouched_writing(out: Path, writing: list[str]) -> dict[str, str]:
    """``{name: sha256}`` of the files a run killed while it wrote left under the names its
    mark says it was writing (see :meth:`RunDirectory.claim`): each is whole (written
    atomically) and the run's if it is a plain file written after that mark (whatever was
    under the name before was kept aside by the claim)."""
    try:
        marked = (out / MARK).lstat().st_mtime
    except OSError:
        return {}
    vouched: dict[str, str] = {}
    for n in writing:
        path = out / n
        if Path(n).name != n or n.startswith("."):
            continue
        digest = _digest(path)
        with contextlib.suppress(OSError):
            if digest is not None and path.lstat().st_mtime >= marked - MTIME_SLACK_S:
                vouched[n] = digest
    return vouched


def _runs_files(out: Path) -> tuple[dict[str, str], bool]:
    """``({name: sha256}, damaged)``: the files runs left in ``out`` (the mark's record, those
    vouched for from before the mark, and those of a run killed while it wrote), and whether
    the mark is damaged (not JSON of the expected shape: it records nothing)."""
    recorded, before_the_mark, writing = _read_mark(out)
    damaged, recorded = recorded is None, recorded or {}
    if before_the_mark:
        recorded = {**_vouched_before_the_mark(out), **recorded}
    recorded.update(_vouched_writing(out, writing))  # a run killed while it wrote
    return recorded, damaged


def _read_mark(out: Path) -> tuple[dict[str, str] | None, bool, list[str]]:
    """The mark's ``({name: sha256}, from_before_the_mark, writing)``: ``({}, True, [])``
    without a mark or with an older run's empty one (or one that said ``legacy``), whose
    files are then judged by :func:`_vouched_before_the_mark`; ``(None, False, [])`` for a
    mark that is not JSON of the expected shape (it records nothing); one that is not a
    regular UTF-8 file is a :class:`UsageError`. ``writing``: the names a run killed while
    it wrote may have been writing (:func:`_vouched_writing`)."""
    mark = out / MARK
    if not os.path.lexists(mark):
        return {}, True, []
    text = _read_text(mark)
    if text is None:
        raise UsageError(f"{mark}: is not a jaxnn mark file (a directory, a link or another "
                         "special file, or unreadable); move it away or choose another --out")
    if not text.strip():
        return {}, True, []
    try:
        mark = json.loads(text)
        files = mark["files"]
    except (ValueError, TypeError, KeyError):
        return None, False, []
    if not isinstance(files, dict):
        return None, False, []
    writing = mark.get(WRITING)
    writing = [n for n in writing if isinstance(n, str)] if isinstance(writing, list) else []
    return {str(k): str(v) for k, v in files.items()}, bool(mark.get("legacy")), writing


def _open_regular(path: Path) -> io.BufferedReader | None:
    """``path`` opened for reading if it is a regular file; None for anything else: missing,
    unreadable, a directory, a symbolic link (runs write none), or a FIFO or device, whose
    reading could block or never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _read_regular(path: Path, read: Callable[[io.BufferedReader], Any]) -> Any:
    """``read(f)`` of the regular file at ``path``; None when it is not one (see
    :func:`_open_regular`) or cannot be read."""
    f = _open_regular(path)
    if f is None:
        return None
    with f:
        try:
            return read(f)
        except (OSError, UnicodeDecodeError):
            return None


def _read_text(path: Path) -> str | None:
    """The regular file's text, None when it is not one or is not UTF-8."""
    return _read_regular(path, lambda f: f.read().decode())


def _digest(path: Path) -> str | None:
    """The regular file's SHA-256, None for anything else (see :func:`_open_regular`)."""
    return _read_regular(path, lambda f: hashlib.file_digest(f, "sha256").hexdigest())


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _lock_owner(lock: Path) -> int | None:
    try:
        return int((_read_text(lock) or "").split()[0])
    except (ValueError, IndexError):
        return None
