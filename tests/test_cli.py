"""End-to-end tests of the ``jaxnn`` command: every subcommand on small settings, the files it
writes, exit statuses, and user errors reported as one line without a traceback.

Most runs call ``jaxnn.cli.main`` in-process (one JAX start-up for the whole file); a few start
``python -m jaxnn`` to check the real entry point, Ctrl-C, and what ``import jaxnn`` imports.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import sklearn.metrics
from conftest import EX4WEIGHTS, ex4weights_or_skip

import jaxnn
from jaxnn.cli import main
from jaxnn.extras import install_hint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAIN_FILES = ("weights.npz", "weights.mat", "digits.png", "hidden_units.png", "cost.png",
               "confusion.png", "summary.json")


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: ``(exit status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def run_module(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m jaxnn ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "jaxnn", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env())


def _env() -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "COLUMNS": "100"}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_valid_png(path: Path, min_side: int = 100) -> None:
    import matplotlib.image

    width, height = png_size(path)
    assert width >= min_side and height >= min_side
    assert matplotlib.image.imread(path).shape[:2] == (height, width)  # decodes


def assert_user_error(code: int, err: str, *words: str) -> None:
    """Exit status 2 and one line on stderr, naming ``words``, without a traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxnn"), err
    for word in words:
        assert word in lines[0], err


def write_idx(images: Path, labels: Path, X: np.ndarray, y: np.ndarray, side: int) -> None:
    """MNIST IDX files (gzipped): uint8 images ``(m, side, side)`` and labels."""
    pixels = np.clip(np.round(X * 255), 0, 255).astype(np.uint8)
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">4BIII", 0, 0, 8, 3, X.shape[0], side, side) + pixels.tobytes())
    with gzip.open(labels, "wb") as f:
        f.write(struct.pack(">4BI", 0, 0, 8, 1, y.shape[0]) + y.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """One short training run on the bundled 8x8 digits: ``(output dir, status, stdout)``."""
    out = tmp_path_factory.mktemp("train") / "run"
    code, stdout, err = run(["train", "--dataset", "digits", "--iterations", "5", "--out",
                             str(out), "--seed", "1"])
    assert code == 0, err
    return out, code, stdout


@pytest.fixture(scope="module")
def ex4weights() -> Path:
    return ex4weights_or_skip()


# ---- help ---------------------------------------------------------------------------------------


def test_help_lists_every_subcommand() -> None:
    code, out, _ = run(["--help"])
    assert code == 0
    for command in ("train", "gradcheck", "predict", "show"):
        assert command in out
    for command in ("train", "gradcheck", "predict", "show"):
        code, out, _ = run([command, "--help"])
        assert code == 0 and "usage: jaxnn " + command in out


def test_sweep_is_a_subcommand() -> None:
    code, out, _ = run(["--help"])
    assert code == 0 and "sweep" in out
    code, out, _ = run(["sweep", "--help"])
    assert code == 0 and "usage: jaxnn sweep" in out
    code, _, err = run(["sweep"])
    assert_user_error(code, err, "required: {lam,size}")  # the usage line's name


def test_no_command_is_a_user_error() -> None:
    code, _, err = run([])
    assert_user_error(code, err, "choose a command")


# ---- train --------------------------------------------------------------------------------------


def test_train_writes_valid_files(digits_run: tuple[Path, int, str]) -> None:
    out, _, _ = digits_run
    for name in TRAIN_FILES:
        assert (out / name).is_file(), name
    for name in ("digits.png", "hidden_units.png", "cost.png", "confusion.png"):
        assert_valid_png(out / name)
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [".jaxnn-run"]  # the run's mark; no temporary files, no lock left


def test_train_weights_reload_in_both_formats(digits_run: tuple[Path, int, str]) -> None:
    out, _, _ = digits_run
    npz, mat = jaxnn.load_weights(out / "weights.npz"), jaxnn.load_weights(out / "weights.mat")
    assert [t.shape for t in npz] == [(25, 65), (10, 26)]
    for a, b in zip(npz, mat, strict=True):
        np.testing.assert_array_equal(a, b)
    summary = json.loads((out / "summary.json").read_text())
    X, y = jaxnn.datasets.digits()
    assert jaxnn.accuracy(npz, X, y) == pytest.approx(
        (summary["train_accuracy"] * summary["n_train"] + summary["test_accuracy"]
         * summary["n_test"]) / len(y), abs=1e-6)


def test_train_summary_json(digits_run: tuple[Path, int, str]) -> None:
    out, _, _ = digits_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layer_sizes"] == [64, 25, 10]
    assert summary["data"] == "digits"
    assert (summary["n_train"], summary["n_test"]) == (1437, 360)
    assert summary["method"] == "L-BFGS-B" and summary["lam"] == 1.0
    assert summary["interrupted"] is False
    assert 1 <= summary["n_iter"] <= 5 and len(summary["history"]) == summary["n_iter"]
    assert 0 <= summary["train_accuracy"] <= 1 and 0 <= summary["test_accuracy"] <= 1
    metrics = summary["metrics"]
    assert len(metrics["per_class"]) == 10
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 360
    assert np.trace(cm) / 360 == pytest.approx(summary["test_accuracy"])
    assert set(summary["files"].values()) == set(TRAIN_FILES)


def test_train_prints_report(digits_run: tuple[Path, int, str]) -> None:
    _, _, stdout = digits_run
    for text in ("64-25-10", "Per-class report", "Confusion matrix", "training accuracy",
                 "held-out accuracy", "macro avg", "files written to"):
        assert text in stdout, text


def test_train_and_predict_print_one_percentage(digits_run: tuple[Path, int, str],
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same predictions give the same printed accuracy in ``train`` and ``predict``, each
    rounded from the exact count (a half up): 829 of 4000 through ``100 * 0.20725`` printed
    20.72% in one and 20.73% in the other."""
    from jaxnn.cli.report import percent

    assert [percent(829, 4000), percent(4880, 5000), percent(1, 3), percent(2, 3),
            percent(1, 8), percent(0, 7), percent(7, 7)] == [
        "20.73%", "97.60%", "33.33%", "66.67%", "12.50%", "0.00%", "100.00%"]
    out, _, stdout = digits_run
    summary = json.loads((out / "summary.json").read_text())
    for split, words, fraction, m in (
            ("training", "training accuracy", summary["train_accuracy"], summary["n_train"]),
            ("held-out", "held-out accuracy", summary["test_accuracy"], summary["n_test"])):
        printed = percent(round(fraction * m), m)
        assert f"{words} {printed}" in " ".join(stdout.split())
        code, text, err = run(["predict", "--run", str(out), "--split", split])
        assert code == 0, err
        assert f"accuracy {printed} ({round(fraction * m)} of {m} correct)" in text
    # train prints from the count: 829 of 4000 (a half at the third decimal) as 20.73%
    import jaxnn.cli.train

    real = jaxnn.cli.train.evaluate

    def counted_829(*args, **kw):
        return {**real(*args, **kw), "train_correct": (829, 4000), "train_accuracy": 0.20725}

    monkeypatch.setattr(jaxnn.cli.train, "evaluate", counted_829)
    code, stdout, err = run(["train", "--dataset", "digits", "--hidden", "3", "--iterations",
                             "1", "--no-progress", "--out", str(tmp_path / "r")])
    assert code == 0, err
    assert "training accuracy 20.73%" in stdout
    assert percent(np.int64(829), np.int64(4000)) == "20.73%"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_are_scikit_learns(seed: int) -> None:
    """The report's numpy figures against scikit-learn's own, with classes that are rarely or
    never predicted, a class that never occurs but is predicted (support 0, precision 0) and
    one that neither occurs nor is predicted."""
    metrics_lib = pytest.importorskip("sklearn.metrics")
    from jaxnn.cli.report import classification_metrics

    rng = np.random.default_rng(seed)
    K, m = 8, 60
    y_true = rng.integers(0, K - 2, m)  # classes K-2 and K-1 never occur
    y_pred = np.where(rng.random(m) < 0.6, y_true, rng.integers(0, 3, m))  # 3..K-3 rarely
    y_pred[:2] = K - 2  # predicted, never true
    got = classification_metrics(y_true, y_pred, K)
    labels = np.arange(K)
    p, r, f, s = metrics_lib.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    per_class = got["per_class"]
    assert [row["class"] for row in per_class] == list(range(K))
    np.testing.assert_allclose([row["precision"] for row in per_class], p, rtol=1e-12)
    np.testing.assert_allclose([row["recall"] for row in per_class], r, rtol=1e-12)
    np.testing.assert_allclose([row["f1"] for row in per_class], f, rtol=1e-12)
    assert [row["support"] for row in per_class] == s.tolist()
    for avg in ("macro", "weighted"):
        want = metrics_lib.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0)[:3]
        values = got["averages"][avg]
        np.testing.assert_allclose([values["precision"], values["recall"], values["f1"]],
                                   want, rtol=1e-12)
    assert got["confusion_matrix"] == metrics_lib.confusion_matrix(
        y_true, y_pred, labels=labels).tolist()
    assert got["accuracy"] == metrics_lib.accuracy_score(y_true, y_pred)
    with pytest.raises(ValueError, match="y_pred has a label 9, but there are only 8 classes"):
        classification_metrics(y_true, np.maximum(y_pred, 9), K)
    with pytest.raises(ValueError, match="y_pred has 1 label but y_true has 60; they must match"):
        classification_metrics(y_true, y_pred[:1], K)
    with pytest.raises(ValueError, match="y_true must hold whole-number class labels"):
        classification_metrics(y_true + 0.5, y_pred, K)
    with pytest.raises(ValueError, match="y_true is empty"):
        classification_metrics(y_true[:0], y_pred[:0], K)


def test_the_command_needs_scikit_learn_only_for_the_digits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without scikit-learn, train, predict, sweep and gradcheck run on other data, and each
    names scikit-learn (and the pip command) at once when asked for the digits."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "sklearn"
                        else real(name, *a))
    for module in [m for m in sys.modules if m.split(".")[0] == "sklearn"] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, module, None)  # importing it fails
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, X=rng.random((60, 9)), y=rng.integers(0, 3, 60))
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--iterations", "2", "--no-progress",
                 "--out", str(run)]) == 0
    assert main(["predict", "--run", str(run)]) == 0
    assert main(["predict", "--weights", str(run / "weights.npz"), "--data", str(data)]) == 0
    capsys.readouterr()
    for argv in (["train", "--dataset", "digits"],
                 ["predict", "--weights", str(run / "weights.npz"), "--dataset", "digits"],
                 ["sweep", "lam", "--dataset", "digits"],
                 ["gradcheck", "--full", "--dataset", "digits"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"jaxnn {argv[0]}: error: this command needs the optional package(s) " \
            "scikit-learn: " in err, err
        assert install_hint("all") in err and "Traceback" not in err, err
    # every missing package in one message, before any file is read
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in ("sklearn", "rich")
                        else real(name, *a))
    assert main(["predict", "--weights", str(tmp_path / "missing.npz"), "--dataset",
                 "digits"]) == 2
    assert "needs the optional package(s) rich, scikit-learn" in capsys.readouterr().err


def test_train_npz_float64_without_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((60, 16))
    y = np.arange(60) % 3
    X[np.arange(60), y] += 2  # separable
    data = tmp_path / "small.npz"
    np.savez(data, X=X, y=y)
    out = tmp_path / "out"
    code, stdout, err = run(["train", "--data", str(data), "--hidden", "4", "3", "--dtype",
                             "float64", "--test-size", "0", "--iterations", "5",
                             "--no-progress", "--out", str(out)])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layer_sizes"] == [16, 4, 3, 3]
    assert summary["dtype"] == "float64" and summary["test_accuracy"] is None
    assert summary["report_on"] == "training" and summary["n_test"] == 0
    assert [t.shape for t in jaxnn.load_weights(out / "weights.npz")] == [(4, 17), (3, 5),
                                                                          (3, 4)]
    assert_valid_png(out / "hidden_units.png")  # 16 features: 4x4 images
    assert "held-out accuracy" not in stdout


def test_train_adam_on_non_image_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = tmp_path / "tabular.npz"
    np.savez(data, X=rng.random((50, 7)), y=rng.integers(0, 2, 50))
    out = tmp_path / "out"
    code, _, err = run(["train", "--data", str(data), "--hidden", "3", "--method", "adam",
                        "--iterations", "3", "--batch-size", "10", "--learning-rate", "0.01",
                        "--test-size", "0.2", "--out", str(out)])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "adam" and summary["n_iter"] == 3
    assert "digits" not in summary["files"] and "hidden_units" not in summary["files"]
    assert not (out / "digits.png").exists()
    for name in summary["files"].values():
        assert (out / name).is_file()
    assert_valid_png(out / "cost.png")


def test_train_interrupted_saves_what_it_reached(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from jaxnn.cli import train as cli_train

    update = cli_train.ProgressBar.update

    def interrupt_at_second_call(self, iteration, cost, params):  # noqa: ANN001
        update(self, iteration, cost, params)  # after each compiled segment of 25 iterations
        if iteration == 50:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_train.ProgressBar, "update", interrupt_at_second_call)
    out = tmp_path / "out"
    code, stdout, _ = run(["train", "--dataset", "digits", "--iterations", "80", "--out",
                           str(out)])
    assert code == 130
    assert "interrupted" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["n_iter"] == 50
    assert len(jaxnn.load_weights(out / "weights.npz")) == 2
    assert not (out / "cost.png").exists()


def test_train_interrupted_before_anything_was_evaluated(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while the loop compiles: the initial weights are saved, the bar shows no cost
    (not NaN), and the summary's cost is the initial weights' own."""
    from jaxnn.train import compiled

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(compiled, "_minibatch_init", interrupted)
    out = tmp_path / "out"
    code, stdout, _ = run(["train", "--dataset", "digits", "--method", "adam", "--iterations",
                           "3", "--out", str(out)])
    assert code == 130 and "0/3 cost - " in stdout and "nan" not in stdout, stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_iter"] == summary["n_evals"] == 0 and summary["cost"] is not None
    assert summary["message"].endswith("before the first iteration; params are the initial ones")
    from jaxnn.datasets import digits, train_test_split

    params, initial = jaxnn.load_weights(out / "weights.npz"), jaxnn.init_params(0, (64, 25, 10))
    assert all(np.array_equal(a, b) for a, b in zip(params, initial, strict=True))
    X_train, _, y_train, _ = train_test_split(*digits(), test_size=0.2, seed=0)  # the command's
    assert summary["cost"] == summary["initial_cost"] == pytest.approx(
        float(jaxnn.cost(initial, X_train, y_train, 1.0)), rel=1e-6)


def test_train_interrupted_in_tncs_first_iteration_records_the_initial_cost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TNC evaluates many times before its first iteration ends: those are no iterate's cost
    from jaxnn.train import objective

    call, calls = objective.ScipyObjective.__call__, []

    def interrupted_at_the_eighth(self, theta):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return call(self, theta)

    monkeypatch.setattr(objective.ScipyObjective, "__call__", interrupted_at_the_eighth)
    out = tmp_path / "out"
    code, stdout, _ = run(["train", "--dataset", "digits", "--method", "TNC", "--iterations",
                           "3", "--out", str(out)])
    assert code == 130 and "0/3 cost - " in stdout and "before the first iteration" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_iter"] == 0 and summary["n_evals"] == 7
    assert summary["cost"] == summary["initial_cost"] > 2, summary


@pytest.mark.parametrize("where", ["initial cost", "summary", "replacing the last run"])
def test_a_ctrl_c_between_training_and_the_first_file_still_saves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Training ended; a Ctrl-C lands before the weights are written (while the initial cost
    is computed, the summary made, or the previous run's files removed): the weights reached
    and a summary saying so are written all the same, exit 130."""
    import jaxnn.losses
    from jaxnn.cli import train as cli_train
    from jaxnn.cli.run_directory import RunDirectory

    target = {"initial cost": (jaxnn.losses, "cost"),
              "summary": (cli_train, "make_summary"),
              "replacing the last run": (RunDirectory, "replace_previous")}[where]
    real, calls = getattr(*target), []

    def interrupted_once(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(*target, interrupted_once)
    code, stdout, _ = run(["train", "--dataset", "digits", "--iterations", "3", "--hidden", "3",
                           "--no-progress", "--out", str(out)])
    assert code == 130 and calls and "interrupted" in stdout, stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["n_iter"] == 3, summary
    assert "interrupted (KeyboardInterrupt)" in summary["message"], summary["message"]
    saved = jaxnn.load_weights(out / "weights.npz")
    assert [t.shape for t in saved] == [(3, 65), (10, 4)]
    assert all(np.array_equal(a, b) for a, b in zip(
        saved, jaxnn.load_weights(out / "weights.mat"), strict=True))
    assert not np.array_equal(saved[0], jaxnn.init_params(0, (64, 3, 10))[0])  # trained
    assert sorted(summary["files"]) == ["summary", "weights_mat", "weights_npz"]


def test_a_ctrl_c_escaping_fit_records_the_initial_cost(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import jaxnn.train.trainer

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - while compiling, say
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxnn.train.trainer, "fit", interrupted)
    out = tmp_path / "out"
    code, stdout, _ = run(["train", "--dataset", "digits", "--iterations", "3", "--out",
                           str(out)])
    assert code == 130 and "0/3 cost - " in stdout and "before the first iteration" in stdout
    summary = json.loads((out / "summary.json").read_text())
    from jaxnn.datasets import digits, train_test_split

    X_train, _, y_train, _ = train_test_split(*digits(), test_size=0.2, seed=0)
    expected = float(jaxnn.cost(jaxnn.init_params(0, (64, 25, 10)), X_train, y_train, 1.0))
    assert summary["cost"] == summary["initial_cost"] == pytest.approx(expected, rel=1e-6)


def test_a_mistyped_option_is_named_with_the_option_it_resembles() -> None:
    # before argparse's complaint of a missing required option the typo was meant to give
    code, _, err = run(["predict", "--wieghts", "w.npz"])
    assert_user_error(code, err, "unrecognized option --wieghts; did you mean --weights? "
                      "(see 'jaxnn predict --help')")
    code, _, err = run(["train", "--iterations", "2", "--lamda", "3"])
    assert_user_error(code, err, "unrecognized option --lamda; did you mean --lam?")
    code, _, err = run(["--verison"])
    assert_user_error(code, err, "jaxnn: error: unrecognized option --verison; did you mean "
                      "--version? (see 'jaxnn --help')")
    code, _, err = run(["gradcheck", "--ful", "--weigths", "w.npz"])  # --ful: an abbreviation
    assert_user_error(code, err, "unrecognized option --weigths; did you mean --weights?")
    code, _, err = run(["train", "--bogus", "1"])  # nothing like it: no guess
    assert_user_error(code, err, "jaxnn train: error: unrecognized option --bogus (see ")
    code, _, err = run(["train", "--seed", "-1"])  # a negative value is not an option
    assert_user_error(code, err, "argument --seed: must be an integer")
    code, _, err = run(["train", "stray"])  # not an option: argparse's own words
    assert_user_error(code, err, "unrecognized arguments: stray")
    code, _, err = run(["--wieghts", "w.npz", "predict"])  # before the command: the typo
    assert_user_error(code, err, "jaxnn: error: unrecognized option --wieghts (see")
    # argparse's other complaints name the token they are about: they stay as they are
    code, _, err = run(["train", "--lam", "x", "--help"])
    assert_user_error(code, err, "argument --lam: must be a finite number >= 0, got 'x'")
    code, _, err = run(["trian", "--weights", "w.npz"])
    assert_user_error(code, err, "argument COMMAND: invalid choice: 'trian'",
                      "; did you mean train? (see 'jaxnn --help')")
    for argv, meant in ((["train", "--method", "l-bfgs-b"], "L-BFGS-B"),  # any case
                        (["train", "--activation", "Tanh"], "tanh"),
                        (["predict", "--run", "r", "--split", "heldout"], "held-out")):
        code, _, err = run(argv)
        assert_user_error(code, err, f"invalid choice: '{argv[-1]}'", f"; did you mean {meant}?")
    code, _, err = run(["train", "--method", "newton"])  # nothing close: argparse's words
    assert_user_error(code, err, "invalid choice: 'newton'")
    assert "did you mean" not in err
    code, _, err = run(["predict", "--out", "-x.csv"])
    assert_user_error(code, err, "argument --out: expected one argument")
    code, _, err = run(["predict", "--out", "-a b.csv", "--dataset", "digits"])  # a value
    assert_user_error(code, err, "one of the arguments --weights --run is required")


def test_a_mistyped_option_is_found_in_a_coloured_help(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.14 colours argparse's help in a terminal: the options are read without colours
    from jaxnn.cli import ArgumentParser

    for method in ("format_help", "format_usage"):
        plain = getattr(ArgumentParser, method)
        monkeypatch.setattr(ArgumentParser, method, lambda self, plain=plain: re.sub(
            r"(--?[A-Za-z][\w-]*)", "\x1b[1;36m\\1\x1b[0m", plain(self)))
    code, _, err = run(["predict", "--wieghts", "w.npz"])
    assert_user_error(code, err, "unrecognized option --wieghts; did you mean --weights?")
    code, _, err = run(["train", "--lam", "x"])
    assert_user_error(code, err, "argument --lam: must be a finite number >= 0, got 'x'")


def test_a_directory_given_as_a_weights_file(tmp_path: Path) -> None:
    for argv in (["predict", "--weights", str(tmp_path), "--dataset", "digits"],
                 ["show", "--weights", str(tmp_path), "--out", str(tmp_path / "h.png")],
                 ["gradcheck", "--full", "--weights", str(tmp_path)]):
        code, _, err = run(argv)
        assert_user_error(code, err, f"{tmp_path}: is a directory, not a weights file")


def test_train_interrupted_while_saving_still_saves_the_weights_and_summary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C just after the first weights file is written: the command still writes the
    other weights file and a summary saying it was interrupted, then exits 130."""
    import jaxnn.io

    save, calls = jaxnn.io.save_weights, []

    def interrupted_after_the_first(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        save(*args, **kwargs)
        calls.append(args[0])
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(jaxnn.io, "save_weights", interrupted_after_the_first)
    out = tmp_path / "out"
    code, stdout, _ = run(["train", "--dataset", "digits", "--iterations", "2", "--hidden", "2",
                           "--no-progress", "--out", str(out)])
    assert code == 130 and "interrupted" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert sorted(summary["files"].values()) == ["summary.json", "weights.mat", "weights.npz"]
    for name in ("weights.npz", "weights.mat"):
        assert len(jaxnn.load_weights(out / name)) == 2


def test_train_default_output_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["train", "--dataset", "digits", "--iterations", "1", "--hidden", "2",
                        "--no-progress"])
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "summary.json").is_file()


def test_runs_started_in_the_same_second_get_directories_of_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default directory is taken by an exclusive mkdir (a name checked first and made
    after could be made by another run in between, and the second run was refused by the
    lock): each call gets the next free name, and only what it made is listed."""
    import time

    from jaxnn.cli.run_directory import output_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261203-170000")
    first, made1 = output_dir(None)
    (tmp_path / "runs" / "20261203-170000-2").mkdir()  # another run's, made meanwhile
    second, made2 = output_dir(None)
    assert first == Path("runs/20261203-170000") and made1 == [first, Path("runs")]
    assert second == Path("runs/20261203-170000-3") and made2 == [second]


# ---- predict ------------------------------------------------------------------------------------


def test_predict_course_weights_on_mnist5k(ex4weights: Path, tmp_path: Path) -> None:
    csv = tmp_path / "preds.csv"
    code, out, err = run(["predict", "--weights", str(ex4weights), "--out", str(csv)])
    assert code == 0, err
    assert "accuracy 97.60%" in out  # the course's weights on the 5000 mnist5k digits
    rows = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64)
    assert csv.read_text().splitlines()[0] == "row,predicted,label"
    assert rows.shape == (5000, 3) and np.array_equal(rows[:, 0], np.arange(5000))
    assert np.mean(rows[:, 1] == rows[:, 2]) == pytest.approx(0.976)


def test_predict_reads_mat_npz_and_idx_data(digits_run: tuple[Path, int, str],
                                           tmp_path: Path) -> None:
    weights = digits_run[0] / "weights.npz"
    X, y = jaxnn.datasets.digits()
    X, y = X[:100], y[:100]
    expected = np.mean(np.asarray(jaxnn.predict(jaxnn.load_weights(weights), X)) == y)
    mat = tmp_path / "data.mat"
    scipy.io.savemat(mat, {"X": X, "y": np.where(y == 0, 10, y)[:, None]})  # Octave labels
    npz = tmp_path / "data.npz"
    np.savez(npz, X=X, y=y)
    pred = np.asarray(jaxnn.predict(jaxnn.load_weights(weights), X))
    for data in ([str(mat)], [str(npz)]):
        code, out, err = run(["predict", "--weights", str(weights), "--data", *data])
        assert code == 0, err
        assert f"accuracy {100 * expected:.2f}%" in out
        lines = out.split("Confusion matrix\n", 1)[1].splitlines()[2:12]  # true class k: row k
        printed = [[int(v) for v in line.split("│")[1:]] for line in lines]
        assert printed == sklearn.metrics.confusion_matrix(y, pred, labels=range(10)).tolist()
    images, labels = tmp_path / "img.idx3-ubyte.gz", tmp_path / "lab.idx1-ubyte.gz"
    write_idx(images, labels, X, y, 8)
    code, out, err = run(["predict", "--weights", str(weights), "--data", str(images),
                          str(labels)])
    assert code == 0, err
    assert "100 examples" in out and "accuracy" in out


def test_predict_run_scores_the_runs_splits_by_their_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`predict --run` from another directory finds data given by a relative path, and its CSV
    names each example's row in the data: the held-out rows (`--split test` the same) and the
    training rows partition the data, and the labels and accuracy are those rows'."""
    rng = np.random.default_rng(3)
    X, y = rng.random((90, 6)), rng.integers(0, 3, 90)
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "data.npz", X=X, y=y)
    monkeypatch.chdir(tmp_path / "a")
    assert main(["train", "--data", "data.npz", "--iterations", "3", "--no-progress",
                 "--out", "run"]) == 0
    summary = json.loads((tmp_path / "a" / "run" / "summary.json").read_text())
    monkeypatch.chdir(tmp_path)
    read = {}
    for split in ("held-out", "test", "training", "all"):
        csv = tmp_path / f"{split}.csv"
        assert main(["predict", "--run", "a/run", "--split", split, "--out", str(csv)]) == 0
        assert csv.read_text().splitlines()[0] == "row,predicted,label"
        read[split] = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64)
        assert np.array_equal(read[split][:, 2], y[read[split][:, 0]])
    held, train = read["held-out"], read["training"]
    assert np.array_equal(read["test"], held)
    assert len(held) == summary["n_test"] and len(train) == summary["n_train"]
    assert sorted([*held[:, 0], *train[:, 0]]) == list(range(90))
    assert np.array_equal(read["all"][:, 0], np.arange(90))
    assert np.mean(held[:, 1] == held[:, 2]) == pytest.approx(summary["test_accuracy"])
    assert np.mean(train[:, 1] == train[:, 2]) == pytest.approx(summary["train_accuracy"])
    assert len(summary["data_sha256"]) == 64
    np.savez(tmp_path / "a" / "data.npz", X=X[::-1], y=y[::-1])  # the same count, reordered
    code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
    assert_user_error(code, err, "the run's data has changed", "the same count, other values",
                      f"--weights {tmp_path / 'a' / 'run' / 'weights.npz'}")
    np.savez(tmp_path / "a" / "data.npz", X=X, y=y)  # restored: scored again
    assert main(["predict", "--run", "a/run", "--out", str(tmp_path / "again.csv")]) == 0
    assert np.array_equal(np.loadtxt(tmp_path / "again.csv", delimiter=",", skiprows=1,
                                     dtype=np.int64), held)
    np.savez(tmp_path / "a" / "data.npz", X=X[:80], y=y[:80])  # the data changed since
    code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
    assert_user_error(code, err, "the run's data has changed", "(80 examples where the run "
                      "had 90)")
    np.savez(tmp_path / "a" / "data.npz", X=X, y=y + 1)  # labels no longer from 0: changed
    code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
    assert_user_error(code, err, "the run's data has changed", "the same count, other values")
    del summary["data_sha256"]  # a run from before the digest: its split's sizes are checked
    (tmp_path / "a" / "run" / "summary.json").write_text(json.dumps(summary))
    np.savez(tmp_path / "a" / "data.npz", X=X[:80], y=y[:80])
    code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
    assert_user_error(code, err, "the run's data has changed", "72 training and 18 held-out",
                      "64 and 16")
    np.savez(tmp_path / "a" / "data.npz", X=X, y=y)
    (tmp_path / "a" / "data.npz").unlink()
    code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
    assert_user_error(code, err, "data.npz: no such file", "the run's data, as",
                      "summary.json records it")
    assert "--data" not in err  # the run's file, not one the user gave
    np.savez(tmp_path / "a" / "data.npz", X=X, y=y)
    seeds, sizes = "an integer in [0, 2**63 - 1]", "0 or a fraction in (0, 1)"
    for key, value, said, rule in (
            ("seed", -5, "-5", seeds), ("seed", 2.5, "2.5", seeds), ("seed", "7", '"7"', seeds),
            ("seed", True, "true", seeds), ("seed", float("inf"), "Infinity", seeds),
            ("test_size", 7, "7", sizes), ("test_size", "0.2", '"0.2"', sizes)):
        (tmp_path / "a" / "run" / "summary.json").write_text(json.dumps({**summary,
                                                                         key: value}))
        code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
        assert_user_error(code, err, f"summary.json: not a summary written by this jaxnn's "
                                     f"'train' (its {key} is {said}, where train records "
                                     f"{rule})")
        assert "--test-size" not in err  # an option the user did not give (before)
    (tmp_path / "a" / "run" / "summary.json").write_text(json.dumps({**summary, "inputs": 3}))
    code, _, err = run(["predict", "--run", str(tmp_path / "a" / "run")])
    assert_user_error(code, err, "summary.json: not a summary written by this jaxnn's 'train' "
                                 "(missing or malformed inputs)")


def test_predict_scores_weights_past_float32_in_float64(digits_run: tuple[Path, int, str],
                                                         tmp_path: Path) -> None:
    """Weights beyond float32's range (a .mat file's float64 arrays) are scored in float64,
    where they are finite (before: refused in the library's words, "params[0] ... inside
    `with jaxnn.x64():`", which name neither the file nor an option of the command)."""
    params = [np.asarray(t, np.float64) for t in jaxnn.load_weights(digits_run[0] / "weights.npz")]
    params[0] = params[0] * 1e40  # entries past 3.4e38
    path = tmp_path / "wide.mat"
    jaxnn.save_weights(path, params)  # float64, as written (the course's row order)
    X, y = jaxnn.datasets.digits()
    with jaxnn.x64():
        expected = np.asarray(jaxnn.predict(params, np.asarray(X, np.float64)))
    assert np.mean(expected == y) > 0.1  # the saturated hidden units still tell some apart
    csv = tmp_path / "p.csv"
    code, out, err = run(["predict", "--weights", str(path), "--dataset", "digits", "--out",
                          str(csv)])
    assert code == 0, err
    rows = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64)
    np.testing.assert_array_equal(rows[:, 1], expected)
    correct = int(np.sum(expected == y))
    assert f"({correct} of {len(y)} correct)" in out
    # weights within float32's range whose logits overflow it (inf - inf: NaN, arbitrary
    # labels) are scored in float64 too; past float64 they are refused
    params[0] = params[0] / 10
    jaxnn.save_weights(path, params)
    assert np.abs(params[0]).max() < np.finfo(np.float32).max
    with jaxnn.x64():
        expected = np.asarray(jaxnn.predict(params, np.asarray(X, np.float64)))
    code, _, err = run(["predict", "--weights", str(path), "--dataset", "digits", "--out",
                        str(csv)])
    assert code == 0, err
    rows = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64)
    np.testing.assert_array_equal(rows[:, 1], expected)
    params[1] = np.full_like(params[1], 1e307)  # finite in float64, 26 of them summed not
    jaxnn.save_weights(path, params)
    code, _, err = run(["predict", "--weights", str(path), "--dataset", "digits"])
    assert_user_error(code, err, f"{path}: its weights make outputs that overflow float64 on "
                                 "these examples, so they predict nothing; scale the weights down")


def test_a_run_that_made_no_iteration_exits_1(tmp_path: Path) -> None:
    """A lam so large that the first line search overflows float32 stops after 0 iterations:
    its files are written, its reason printed, and the exit status says it failed (before:
    0, neither converged nor diverged)."""
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--dataset", "digits", "--hidden", "3", "--lam", "1e30",
                             "--iterations", "5", "--no-progress", "--out", str(out)])
    text = " ".join(stdout.split())
    assert code == 1, err
    assert "stopped after 0 iterations: the gradient is too large for float32" in text
    assert re.search(r"final cost \d\.\d{5}e\+\d\d after 0 iterations", text), text  # not 27 digits
    assert text.endswith("training made no iteration: the weights saved are the initial ones "
                         "(see the reason above)")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_iter"] == 0 and not summary["converged"] and not summary["diverged"]
    assert set(summary["files"].values()) == set(TRAIN_FILES)


def test_predict_without_labels(digits_run: tuple[Path, int, str], tmp_path: Path) -> None:
    npz = tmp_path / "unlabelled.npz"
    np.savez(npz, X=jaxnn.datasets.digits()[0][:20])
    csv = tmp_path / "p.csv"
    code, out, err = run(["predict", "--weights", str(digits_run[0] / "weights.mat"),
                          "--data", str(npz), "--out", str(csv)])
    assert code == 0, err
    assert "no labels" in out
    assert csv.read_text().splitlines()[0] == "row,predicted"


def test_an_unwritable_output_file_is_refused_before_any_work(
        digits_run: tuple[Path, int, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """predict and show check --out first: no report, no picture, then an error."""
    weights = str(digits_run[0] / "weights.npz")
    locked = tmp_path / "locked"  # read-only, as this process sees it (tests may run as root)
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: access(path, mode, **kw) and (
        Path(path) != locked and Path(path).parent != locked or not mode & os.W_OK))
    cases = [(["predict", "--weights", weights, "--dataset", "digits", "--out",
               str(tmp_path / "no" / "p.csv")], ["p.csv", "does not exist"]),
             (["predict", "--weights", weights, "--dataset", "digits", "--out",
               str(locked / "p.csv")], ["p.csv", "permission denied"]),
             (["predict", "--run", str(digits_run[0]), "--out", str(tmp_path)],
              ["is a directory"]),
             (["predict", "--run", str(digits_run[0]), "--out", weights],  # never a run's file
              ["weights.npz: the predictions are a CSV file; give a name ending in .csv"]),
             (["predict", "--weights", weights, "--out", str(digits_run[0] / "summary.json")],
              ["summary.json: the predictions are a CSV file"]),
             (["show", "--weights", weights, "--out", str(locked / "units.png")],
              ["units.png", "permission denied"]),
             (["show", "--weights", weights, "--out", str(tmp_path)], ["is a directory"]),
             (["show", "--weights", weights, "--out", weights[:-len(".npz")]],  # not a PNG name
              ["the picture is a PNG; give a name ending in .png"]),
             (["show", "--weights", weights, "--out", f"{tmp_path / 'new'}/"],
              ["new/: ends in /, the name of a directory; give a file name"]),
             (["predict", "--run", str(digits_run[0]), "--out", ""],
              ["--out: an empty name; give a file name"]),
             (["show", "--weights", weights, "--out", " "],
              ["--out: an empty name; give a file name"]),
             (["show", "--weights", weights, "--out", f"{weights}/units.png"],
              ["units.png", "weights.npz is not a directory"])]
    for argv, words in cases:
        code, out, err = run(argv)
        assert_user_error(code, err, *words)
        assert out == "", out  # refused before the report
    assert list(locked.iterdir()) == [] and not (tmp_path / "new").exists()
    assert not Path(weights[:-len(".npz")]).exists()
    assert len(jaxnn.load_weights(weights)) == 2 and "jaxnn_version" in json.loads(
        (digits_run[0] / "summary.json").read_text())


# ---- show ---------------------------------------------------------------------------------------


def test_show_course_weights(ex4weights: Path, tmp_path: Path) -> None:
    png = tmp_path / "hidden.png"
    code, out, err = run(["show", "--weights", str(ex4weights), "--out", str(png)])
    assert code == 0, err
    assert "25 hidden units as 20x20" in out
    assert_valid_png(png, min_side=300)


def test_show_trained_weights_and_shape_option(digits_run: tuple[Path, int, str],
                                              tmp_path: Path) -> None:
    weights = str(digits_run[0] / "weights.npz")
    png = tmp_path / "h.png"
    code, out, err = run(["show", "--weights", weights, "--out", str(png), "--no-title"])
    assert code == 0, err
    assert "8x8" in out and "row-major" in out
    assert_valid_png(png)
    code, out, err = run(["show", "--weights", weights, "--out", str(png), "--shape", "4x16"])
    assert code == 0 and "4x16 images (row-major)" in out, err
    code, _, err = run(["show", "--weights", weights, "--out", str(png), "--shape", "5x5"])
    assert_user_error(code, err, "--shape", "64")
    code, _, err = run(["show", "--weights", weights, "--out", str(tmp_path / "h.jpg")])
    assert_user_error(code, err, "h.jpg", "ending in .png")
    assert not (tmp_path / "h.jpg").exists()


def test_show_keeps_the_course_pixel_order_for_any_shape(tmp_path: Path) -> None:
    # 400 inputs are the course's column-major digits, as --order's help says, whatever
    # --shape; a network without hidden layers draws its rows as units, not hidden units
    weights, png = tmp_path / "w.npz", tmp_path / "h.png"
    jaxnn.save_weights(weights, jaxnn.init_params(0, (400, 3, 10)))
    code, out, err = run(["show", "--weights", str(weights), "--out", str(png), "--shape",
                          "10x40"])
    assert code == 0 and "3 hidden units as 10x40 images (column-major)" in out, err
    code, out, err = run(["show", "--weights", str(weights), "--out", str(png), "--shape",
                          "10x40", "--order", "C"])
    assert code == 0 and "10x40 images (row-major)" in out, err
    jaxnn.save_weights(weights, jaxnn.init_params(0, (400, 4)))
    code, out, err = run(["show", "--weights", str(weights), "--out", str(png)])
    assert code == 0 and "wrote" in out and "4 units as 20x20 images (column-major)" in out, err


def test_show_and_predict_never_replace_a_runs_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a run's directory, show's default picture is the run's own hidden_units.png: it
    is refused (the run's file unchanged), so that a later train there still reuses it."""
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--iterations", "2", "--no-progress", "--out",
                 str(run_dir)]) == 0
    picture = (run_dir / "hidden_units.png").read_bytes()
    monkeypatch.chdir(run_dir)
    code, _, err = run(["show", "--weights", "weights.npz"])
    assert_user_error(code, err, "--out hidden_units.png", "a file of the jaxnn run in",
                      "its record lists it")
    mark = (run_dir / ".jaxnn-run").read_text()
    (run_dir / ".jaxnn-run").write_text("{bad")  # a damaged mark: summary.json's list counts
    code, _, err = run(["show", "--weights", "weights.npz"])
    assert_user_error(code, err, "--out hidden_units.png", "a file of the jaxnn run in")
    (run_dir / ".jaxnn-run").write_text(mark)
    code, _, err = run(["predict", "--run", ".", "--out", "summary.json"])
    assert_user_error(code, err, "summary.json", "ending in .csv")  # runs write no CSV
    assert (run_dir / "hidden_units.png").read_bytes() == picture
    code, out, err = run(["show", "--weights", "weights.npz", "--out", "units.png"])
    assert code == 0, err  # a name of the user's own: written
    assert_valid_png(run_dir / "units.png")
    (run_dir / "units.csv").write_text("mine\n")
    assert main(["predict", "--run", ".", "--out", "units.csv"]) == 0  # the user's: replaced
    assert (run_dir / "units.csv").read_text().startswith("row,predicted,label")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "digits", "--iterations", "2", "--no-progress", "--out",
                 str(run_dir)]) == 0  # the run's files untouched: the directory is reused
    assert (run_dir / "units.png").is_file() and (run_dir / "units.csv").is_file()


# ---- gradcheck ----------------------------------------------------------------------------------


def test_gradcheck_course_network_passes() -> None:
    code, out, err = run(["gradcheck"])
    assert code == 0, err
    assert out.count("PASS") == 2  # lam 0 and lam 3
    assert "3-5-3" in out and "numerical" in out and "autodiff" in out
    assert "Theta1" in out and "Theta2" in out


def test_gradcheck_fails_with_status_1_below_tolerance() -> None:
    code, out, _ = run(["gradcheck", "--lam", "1", "--tol", "1e-30"])
    assert code == 1
    assert "FAIL" in out


def test_gradcheck_full_on_a_subsample() -> None:
    code, out, err = run(["gradcheck", "--full", "--dataset", "digits", "--examples", "20",
                          "--hidden", "4"])
    assert code == 0, err
    assert "64-4-10 network" in out and "20 examples" in out and "PASS" in out
    # a sample too small to hold every class still checks the data's network: 10 outputs
    # (before: as many as the sample's largest label, "64-4-5" or so)
    for seed in ("0", "1", "2"):
        code, out, err = run(["gradcheck", "--full", "--dataset", "digits", "--examples", "2",
                              "--hidden", "4", "--seed", seed])
        assert code == 0 and "64-4-10 network, 2 examples" in " ".join(out.split()), err


# ---- user errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--lam", "-1"], ["--lam", ">= 0"]),
        (["train", "--iterations", "0"], ["--iterations"]),
        (["train", "--iterations", "many"], ["--iterations"]),
        (["train", "--test-size", "1.5"], ["--test-size"]),
        (["train", "--test-size", "0.2%"], ["argument --test-size: must be 0 or a fraction in "
                                            "(0, 1), got 0.2%"]),
        (["train", "--hidden", "0"], ["--hidden"]),
        (["train", "--seed", "-1"], ["--seed"]),
        (["train", "--method", "newton"], ["--method", "newton"]),
        (["train", "--dataset", "cifar"], ["--dataset"]),
        (["train", "--dataset", "digits", "--batch-size", "8"],
         ["--batch-size is only used by --method adam and sgd, not L-BFGS-B: drop it or "
          "choose --method adam or sgd"]),
        (["train", "--method", "fmincg", "--learning-rate", "0.1"], ["not fmincg"]),
        (["train", "--data", "a.npz", "--dataset", "digits"], ["not allowed"]),
        (["train", "--bogus"], ["unrecognized option --bogus (see 'jaxnn train --help')"]),
        (["--bogus"], ["jaxnn: error: unrecognized option --bogus (see 'jaxnn --help')"]),
        (["--bogus", "train"], ["unrecognized option --bogus (see 'jaxnn --help')"]),
        (["predict"], ["--weights"]),
        (["gradcheck", "--examples", "5"], ["--full"]),
        (["gradcheck", "--hidden", "4"], ["--hidden need --full (without it, the course's "
                                          "3-5-3 network)"]),
        (["gradcheck", "--full", "--weights", "w.npz", "--hidden", "4"],
         ["--hidden sizes random weights; --weights brings its own layers"]),
        (["train", "--dataset", "digits", "--lam", "1e300"],
         ["--lam 1e+300 is not representable in float32"]),
        (["gradcheck", "--eps", "0"], ["--eps"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_bad_options(argv: list[str], words: list[str], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv)
    assert_user_error(code, err, *words)
    assert not (tmp_path / "runs").exists()  # no output directory for a run that never started


def test_missing_and_malformed_files(tmp_path: Path, digits_run: tuple[Path, int, str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    weights = str(digits_run[0] / "weights.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not a zip file")
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"\x00\x01" * 100)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, features=np.ones((3, 3)))
    cases = [
        (["predict", "--weights", str(tmp_path / "none.mat")],
         [f"--weights {tmp_path / 'none.mat'}: no such file"]),
        (["predict", "--weights", str(text)], ["notes.npz"]),
        (["predict", "--weights", str(garbage)], ["garbage.mat"]),
        (["predict", "--weights", str(tmp_path / "w.txt")], ["w.txt"]),
        (["predict", "--weights", weights, "--data", str(tmp_path / "d.npz")],
         [f"--data {tmp_path / 'd.npz'}: no such file"]),
        (["predict", "--weights", weights, "--data", str(text)], ["notes.npz", "not an .npz file"]),
        (["predict", "--weights", weights, "--data", str(wrong)], ["no array X"]),
        (["predict", "--weights", weights, "--data", str(garbage)], ["garbage.mat"]),
        (["predict", "--weights", weights, "--data", "a", "b", "c"], ["--data"]),
        (["predict", "--weights", str(EX4WEIGHTS) if EX4WEIGHTS.exists() else weights,
          "--dataset", "digits" if EX4WEIGHTS.exists() else "mnist5k"], ["inputs"]),
        (["show", "--weights", weights, "--out", str(tmp_path / "no" / "dir.png")], ["dir.png"]),
        (["train", "--data", str(wrong)], ["no array X"]),
        (["train", "--dataset", "digits", "--out", str(text)],
         [f"--out {text}: exists and is not a directory"]),
    ]
    cases.append((["predict", "--weights", weights],  # the digits' network, mnist5k's default
                  ["expects 64 inputs per example but mnist5k has 400 features; --dataset "
                   "digits has 64"]))
    jaxnn.save_weights(tmp_path / "five.npz", jaxnn.init_params(0, (5, 3, 2)))
    cases.append((["predict", "--weights", str(tmp_path / "five.npz"), "--dataset", "digits"],
                  ["has 64 features; give --data with examples of 5 features"]))
    images, labels = tmp_path / "empty-images.gz", tmp_path / "empty-labels.gz"
    write_idx(images, labels, np.zeros((0, 4, 4), np.uint8), np.zeros(0, np.uint8), 4)
    for command in (["train"], ["sweep", "lam"], ["predict", "--weights", weights]):
        cases.append(([*command, "--data", str(images), str(labels)],  # was "--val-size 0.2
                      [f"{images} + {labels}: no examples in the data"]))  # gives 0 of 0"
    for argv, words in cases:
        code, _, err = run(argv)
        assert_user_error(code, err, *words)


def test_malformed_data_contents(tmp_path: Path, digits_run: tuple[Path, int, str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    weights = str(digits_run[0] / "weights.npz")  # 64 inputs, 10 classes
    X = np.random.default_rng(0).random((6, 64))

    def npz(name: str, **arrays: np.ndarray) -> str:
        np.savez(tmp_path / name, **arrays)
        return str(tmp_path / name)

    nan = X.copy()
    nan[1, 2] = np.nan
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
    (tmp_path / "table.csv").write_text("1,2,3\n")
    cases = [
        (npz("strings.npz", X=np.array([["a"] * 4] * 3)), ["X must be a non-empty numeric"]),
        (npz("nan.npz", X=nan, y=np.zeros(6)), ["nan.npz", "NaN"]),
        (npz("short_y.npz", X=X, y=np.zeros(5)), ["y has 5 labels but X has 6 rows"]),
        (npz("half_y.npz", X=X, y=np.full(6, 0.5)), ["whole-number class labels"]),
        (npz("negative_y.npz", X=X, y=-np.ones(6)), ["negative labels"]),
        (npz("big_y.npz", X=X, y=np.full(6, 12)), ["labels up to 12", "10 outputs"]),
        (str(tmp_path / "folder.npz"), ["folder.npz", "directory"]),
        (str(tmp_path / "train-images-idx3-ubyte"), ["two files"]),
        (str(tmp_path / "table.csv"), ["table.csv", "unsupported"]),
    ]
    for data, words in cases:
        code, _, err = run(["predict", "--weights", weights, "--data", data])
        assert_user_error(code, err, *words)


def test_missing_optional_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a))
    code, _, err = run(["show", "--weights", str(tmp_path / "w.npz")])
    assert_user_error(code, err, "matplotlib", install_hint("all"))


# ---- the real entry point -----------------------------------------------------------------------


def test_module_entry_point_user_error_has_no_traceback(tmp_path: Path) -> None:
    proc = run_module("predict", "--weights", str(tmp_path / "missing.mat"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"jaxnn predict: error: --weights {tmp_path / 'missing.mat'}: "
                                   "no such file")


def test_import_jaxnn_does_not_import_optional_packages() -> None:
    code = ("import sys, jaxnn, jaxnn.cli, jaxnn.plot; jaxnn.cli.build_parser(); "
            "print(sorted(m for m in ('matplotlib', 'rich', 'sklearn', 'mlxtend') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_cleanly_and_saves(tmp_path: Path, signum: int, status: int) -> None:
    """A Ctrl-C, and a SIGTERM (kill, a job scheduler) alike: the run stops where it is and
    saves what it reached; the exit status tells which signal it was."""
    rng = np.random.default_rng(0)
    data = tmp_path / "noise.npz"
    np.savez(data, X=rng.random((500, 100)), y=rng.integers(0, 10, 500))
    out = tmp_path / "out"
    proc = subprocess.Popen(  # a million epochs of 500 adam steps: far from done in 2 s
        [sys.executable, "-m", "jaxnn", "train", "--data", str(data), "--method", "adam",
         "--batch-size", "1", "--hidden", "50", "--iterations", "1000000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline().startswith("jaxnn train:")  # training is about to start
        import time

        time.sleep(2.0)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    # in training, not while writing the pictures
    assert re.search(r"interrupted (after [0-9,]+ iterations?|before the first iteration): "
                     "saved the weights and summary", stdout), stdout
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["n_iter"] < 1000000
    assert [t.shape for t in jaxnn.load_weights(out / "weights.npz")] == [(50, 101), (10, 51)]
    assert [t.shape for t in jaxnn.load_weights(out / "weights.mat")] == [(50, 101), (10, 51)]


def test_library_warnings_are_one_line_on_the_command(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "wide.npz"
    np.savez(data, X=rng.random((40, 60)), y=rng.integers(0, 3, 40))
    assert main(["train", "--data", str(data), "--method", "BFGS", "--hidden", "40",
                 "--iterations", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "BFGS" in line]
    assert err == ["jaxnn train: warning: --method BFGS multiplies 2,563 x 2,563 matrices in "
                   "every iteration (about 7e+10 operations), which is slow for 2,563 "
                   "parameters; --method L-BFGS-B (the default) does the same job in O(n) "
                   "memory and time"]


def test_labels_that_leave_classes_without_an_example_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Labels used as codes (0, 1000, 5000) made a network of 5001 outputs and a report of
    5001 x 5001 cells (minutes, gigabytes): refused when most class numbers have no example; a
    few without one (a sample of the digits without a 7) are a warning; a held-out split that
    leaves one class to train on is refused like sweep's."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = rng.random((40, 6))
    np.savez("codes.npz", X=X, y=np.arange(40) % 3 * 1000 + (np.arange(40) == 0) * 4000)
    np.savez("gap.npz", X=X, y=np.array([0, 1, 3, 4])[np.arange(40) % 4])
    np.savez("two.npz", X=X[:2], y=np.array([0, 1]))
    for command in ("train", "sweep"):
        argv = [command, *(["lam"] if command == "sweep" else []), "--iterations", "2"]
        assert main([*argv, "--data", "codes.npz"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert ("codes.npz: the labels are 4 of the numbers 0..4000, so 3997 of the network's "
                "4001 outputs (1, 2, 3, ..., 3999) would be classes without an example; labels "
                "are classes 0..K-1, most with examples: renumber them 0..3 (with numpy, "
                "np.unique(y, return_inverse=True)[1])") in err, err
    assert main(["train", "--data", "gap.npz", "--iterations", "2", "--no-progress", "--out",
                 str(tmp_path / "gap")]) == 0
    assert ("gap.npz: the labels are 4 of the numbers 0..4, so 1 of the network's 5 outputs (2) "
            "is a class without an example: nothing trains it toward a prediction") in \
        " ".join(capsys.readouterr().err.split())
    assert main(["train", "--data", "two.npz", "--iterations", "2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("--test-size 0.2 leaves 1 example to train on, of a single class (1); a classifier "
            "needs examples of at least two: give more examples, or --test-size 0 to train on "
            "all of them") in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npz", "gap", "gap.npz",
                                                           "two.npz"]
    out = tmp_path / "all"
    assert main(["train", "--data", "two.npz", "--iterations", "2", "--test-size", "0",
                 "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_train"] == 2
    # the same split remade by predict from an edited summary is the summary's fault
    (out / "summary.json").write_text(json.dumps({**summary, "test_size": 0.5, "n_train": 1,
                                                  "n_test": 1}))
    code, _, err = run(["predict", "--run", str(out)])
    assert_user_error(code, err, f"{out / 'summary.json'}: its test_size 0.5 leaves 1 example "
                                 "to train on, of a single class")
    assert "--test-size" not in err, err


def test_labels_in_the_wrong_base_are_refused_in_the_command_s_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An .npz with the course's 1..10 trained an 11-class network with an empty class 0, and
    a 0-based .mat file was refused with advice only Python could follow (zero_based=True)."""
    import scipy.io

    monkeypatch.chdir(tmp_path)  # an error must not leave output directories behind
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 6)), np.arange(40) % 4
    np.savez(tmp_path / "one_based.npz", X=X, y=y + 1)
    scipy.io.savemat(tmp_path / "labels0.mat", {"X": X, "y": y[:, None]})
    assert main(["train", "--data", "one_based.npz", "--iterations", "2"]) == 2
    err = capsys.readouterr().err
    assert ("one_based.npz: the labels run 1..4 with no 0, so class 0 of the network's 5 "
            "outputs would have no example") in err and "subtract 1" in err, err
    assert "10 stands for 0, take y % 10" in err, err
    assert main(["sweep", "lam", "--data", "one_based.npz", "--iterations", "2"]) == 2  # too
    assert "one_based.npz: the labels run 1..4 with no 0" in capsys.readouterr().err
    assert main(["train", "--data", "labels0.mat", "--iterations", "2"]) == 2
    err = capsys.readouterr().err
    assert ("labels range over 0..3, but a course file's labels are 1..K (10 for the digit "
            "0): the file looks 0-based; save the labels as 1..K, or the data as an .npz file "
            "(labels 0..K-1)") in err and "zero_based" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels0.mat", "one_based.npz"]
    # the library keeps its own words
    from jaxnn.datasets import load_mat
    with pytest.raises(ValueError, match="looks 0-based; pass zero_based=True"):
        load_mat(tmp_path / "labels0.mat")
