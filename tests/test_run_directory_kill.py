"""A run killed outright (``SIGKILL``, a power cut: no ``finally``, no ``__exit__``) at any
moment of its writing leaves a directory the next run takes over: the mark vouches for every
file it wrote, and the summary it left names only files that are there."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jaxnn.cli import main
from jaxnn.cli.common import UsageError
from jaxnn.cli.run_directory import LOCK, MARK, RunDirectory

NAMES = ["weights.npz", "weights.mat", "summary.json"]

# a run that writes the first ``int(argv[2])`` of NAMES through claim(), then is killed
KILLED_WRITER = """
import os, signal, sys
from jaxnn.cli.run_directory import RunDirectory
from jaxnn.files.atomic import atomic_write
names = NAMES
run = RunDirectory(sys.argv[1], names)
with run as out:
    run.replace_previous()
    for name in names[:int(sys.argv[2])]:
        atomic_write(run.claim(name), lambda f: f.write(("killed run's " + name).encode()))
    os.kill(os.getpid(), signal.SIGKILL)
""".replace("NAMES", repr(NAMES))


def killed_run(out: Path, n_files: int) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out), str(n_files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (out / LOCK).exists()  # it never left: its lock is still there


@pytest.mark.parametrize("n_files", [1, 2, 3])
def test_a_run_killed_after_any_file_leaves_a_directory_the_next_run_takes_over(tmp_path,
                                                                                 n_files):
    out = tmp_path / "run"
    killed_run(out, n_files)
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert left == sorted(NAMES[:n_files])
    mark = json.loads((out / MARK).read_text())
    assert mark["writing"] == [NAMES[n_files - 1]]  # the file it was writing when killed
    for name in NAMES[:n_files - 1]:  # the ones before: recorded
        assert mark["files"][name] == hashlib.sha256(
            f"killed run's {name}".encode()).hexdigest()
    run = RunDirectory(str(out), NAMES)
    with run:  # accepted: every file there is the killed run's
        run.replace_previous()
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
        for name in NAMES:
            run.claim(name).write_text(f"the rerun's {name}")
    mark = json.loads((out / MARK).read_text())
    assert sorted(mark) == ["files"] and sorted(mark["files"]) == sorted(NAMES)
    assert mark["files"]["summary.json"] == hashlib.sha256(
        b"the rerun's summary.json").hexdigest()
    assert not (out / LOCK).exists()


def test_after_a_kill_a_file_the_user_puts_there_is_still_the_users(tmp_path):
    """Only the files a killed run wrote count as a run's: the user's file under another of
    its names, or one under the name it was writing that is older than that moment (copied
    with its time kept), is refused and left alone."""
    out = tmp_path / "run"
    killed_run(out, 1)
    (out / "summary.json").write_text('{"notes": "mine"}')
    with pytest.raises(UsageError, match=r"already holds summary.json, which no jaxnn run"):
        RunDirectory(str(out), NAMES).__enter__()
    assert (out / "summary.json").read_text() == '{"notes": "mine"}'
    (out / "summary.json").unlink()
    (out / "weights.npz").write_text("the user's, copied with its old time")
    os.utime(out / "weights.npz", (0, 0))
    with pytest.raises(UsageError, match=r"already holds weights.npz, which no jaxnn run"):
        RunDirectory(str(out), NAMES).__enter__()
    assert (out / "weights.npz").read_text() == "the user's, copied with its old time"


# `jaxnn train` killed by SIGKILL the moment it begins to write a given file
KILLED_TRAIN = """
import os, signal, sys
import jaxnn.cli.train as train
from jaxnn.cli.run_directory import RunDirectory
from jaxnn.cli import main
target, claim = sys.argv[1], RunDirectory.claim
def killing_claim(self, name):
    if name == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return claim(self, name)
RunDirectory.claim = killing_claim
main(sys.argv[2:])
"""


# the small data's rows are not images: its pictures are the cost curve and the confusion matrix
TRAIN_FILES = ["confusion.png", "cost.png", "summary.json", "weights.mat", "weights.npz"]


@pytest.mark.parametrize(("killed_at", "left"), [
    ("weights.mat", ["weights.npz"]),  # after the first file
    ("summary.json", ["weights.mat", "weights.npz"]),  # after the weights, before the summary
    ("cost.png", ["summary.json", "weights.mat", "weights.npz"]),  # before the pictures
    ("confusion.png", ["cost.png", "summary.json", "weights.mat", "weights.npz"]),
])
def test_train_killed_while_writing_is_rerun_into_the_same_directory(tmp_path, small_npz,
                                                                     killed_at, left, capsys):
    out = tmp_path / "run"
    cmd = ["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "2",
           "--no-progress", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", KILLED_TRAIN, killed_at, *cmd],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == left
    if "summary.json" in left:  # the summary it left names only files that are there
        summary = json.loads((out / "summary.json").read_text())
        assert sorted(summary["files"].values()) == ["summary.json", "weights.mat",
                                                     "weights.npz"]
        assert all((out / name).is_file() for name in summary["files"].values())
    assert main(cmd) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["files"].values()) == TRAIN_FILES
    assert summary["total_seconds"] > 0 and not (out / LOCK).exists()


def test_each_summary_train_writes_names_only_the_files_already_written(tmp_path, small_npz,
                                                                       monkeypatch):
    """Read at any moment of the run, summary.json lists itself and files that exist."""
    import jaxnn.cli.train as train

    seen = []
    real = train.write_json

    def spy(path, obj):
        real(path, obj)
        if Path(path).name == "summary.json":
            listed = json.loads(Path(path).read_text())["files"]
            seen.append(sorted(listed.values()))
            assert all((Path(path).parent / n).is_file() for n in listed.values()), listed

    monkeypatch.setattr(train, "write_json", spy)
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "2",
                 "--no-progress", "--out", str(out)]) == 0
    weights = ["summary.json", "weights.mat", "weights.npz"]
    assert seen == [weights, weights, TRAIN_FILES]
