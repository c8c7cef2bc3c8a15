"""Validation and learning curves (jaxnn.sweep) and the ``jaxnn sweep`` command."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import jaxnn
from jaxnn import parallel, sweep
from jaxnn.datasets import train_test_split

HIDDEN = (6,)


@pytest.fixture(scope="module")
def data():
    """A learnable 3-class problem with 10 features: X (150, 10), y (150,)."""
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=1.5, size=(3, 10))
    y = rng.integers(0, 3, 150)
    return centers[y] + rng.normal(size=(150, 10)), y


def member_params(X, y, sizes, seeds, lams, maxiter):
    """fit_many run by hand on the same batch layout (member p * S + s), for comparison."""
    members = [jaxnn.init_params(int(s), sizes) for s in seeds]
    pb = tuple(np.concatenate([np.stack([np.asarray(m[i]) for m in members])] * len(lams))
               for i in range(len(sizes) - 1))
    return parallel.fit_many(pb, X, y, np.repeat(lams, len(seeds)), maxiter=maxiter)


def test_validation_curve_matches_independent_evaluation(data):
    X, y = data
    lams = np.array([0.0, 1.0, 30.0])
    curve = sweep.validation_curve(X, y, lams, hidden=HIDDEN, seeds=[0, 1], maxiter=25)
    assert curve.kind == "validation" and curve.param == "lam"
    assert curve.train_cost.shape == curve.val_accuracy.shape == (3, 2)
    assert curve.settings["m_train"] == 120 and curve.settings["m_val"] == 30
    # recompute every entry: same split, same batch, jaxnn.cost with lam 0 on each member
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.2, seed=0)
    res = member_params(Xt, yt, (10, 6, 3), [0, 1], lams, 25)
    for p in range(3):
        for s in range(2):
            net = res.member(p * 2 + s)
            np.testing.assert_allclose(curve.train_cost[p, s], float(jaxnn.cost(net, Xt, yt)),
                                       rtol=1e-5)
            np.testing.assert_allclose(curve.val_cost[p, s], float(jaxnn.cost(net, Xv, yv)),
                                       rtol=1e-5)
            np.testing.assert_allclose(curve.val_accuracy[p, s], jaxnn.accuracy(net, Xv, yv))
    # more regularization: a worse fit of the training data
    assert curve.mean("train_cost")[0] < curve.mean("train_cost")[2]
    assert curve.best in lams
    d = curve.to_dict()
    json.dumps(d)
    assert d["values"] == lams.tolist() and len(d["val_cost_mean"]) == 3


def test_learning_curve_trains_on_nested_subsets(data):
    X, y = data
    # 6 seeds: at m = 120 the same compiled program as the validation curve's 3 x 2 batch
    curve = sweep.learning_curve(X, y, [30, 1.0], lam=0.5, hidden=HIDDEN, seeds=6, maxiter=25)
    assert curve.param == "m" and curve.values.tolist() == [30, 120]
    assert curve.val_cost.shape == (2, 6)
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.2, seed=0)
    res = member_params(Xt[:30], yt[:30], (10, 6, 3), range(6), np.array([0.5]), 25)
    for s in range(6):
        net = res.member(s)
        np.testing.assert_allclose(curve.train_cost[0, s],
                                   float(jaxnn.cost(net, Xt[:30], yt[:30])), rtol=1e-5)
        np.testing.assert_allclose(curve.val_cost[0, s], float(jaxnn.cost(net, Xv, yv)),
                                   rtol=1e-5)
    assert curve.settings["lam"] == 0.5
    # both curves record the same settings (the learning curve lacked the dtype)
    other = sweep.validation_curve(X, y, [0.5], hidden=HIDDEN, seeds=1, maxiter=1)
    assert set(curve.settings) - {"lam"} == set(other.settings)
    assert curve.settings["dtype"] == other.settings["dtype"] == "float32"
    fig = sweep.plot_curve(curve)
    assert len(fig.axes) == 2


def test_explicit_validation_set(data):
    X, y = data
    curve = sweep.validation_curve(X[:100], y[:100], [1.0], X_val=X[100:], y_val=y[100:],
                                   hidden=HIDDEN, seeds=1, maxiter=3, method="sgd")
    assert curve.settings["m_train"] == 100 and curve.settings["m_val"] == 50
    assert curve.std("val_cost")[0] == 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"lams": [-1.0]}, "lams"),
        ({"lams": []}, "lams"),
        ({"seeds": 0}, "seeds"),
        ({"hidden": (0,)}, "hidden"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"X_val": np.zeros((3, 10))}, "X_val"),
        ({"X_val": np.full((3, 10), np.nan), "y_val": np.arange(3)},
         "X_val contains NaN or infinite values"),
        ({"X_val": np.zeros((3, 10)), "y_val": np.array([0, 1, 5])},
         r"y_val has labels \[5\] that y has not"),
        ({"method": "L-BFGS-B"}, "method"),
    ],
)
def test_validation_curve_errors(data, kw, match):
    X, y = data
    lams = kw.pop("lams", [1.0])
    with pytest.raises(ValueError, match=match):
        sweep.validation_curve(X, y, lams, maxiter=2, **kw)


def test_one_class_is_refused_by_both_curves(data):
    X, _ = data
    for curve in (lambda y: sweep.validation_curve(X, y, [1.0], maxiter=2),
                  lambda y: sweep.learning_curve(X, y, [0.5, 1.0], maxiter=2)):
        with pytest.raises(ValueError, match=r"y holds a single class \(2\)"):
            curve(np.full(len(X), 2))
    # two classes, but the split leaves one example to train on: said so (it named y)
    with pytest.raises(ValueError, match=r"after holding out val_fraction=0\.2, the training "
                                         r"part \(1 example\) holds a single class \(1\)"):
        sweep.validation_curve(X[:2], np.array([0, 1]), [1.0], maxiter=2)


@pytest.mark.parametrize(("sizes", "match"), [
    ([0], "a count of examples must be at least 1, got 0"),
    ([500], "500 is more than the 120 training examples"),
    ([0.001], "0.001 of the 120 training examples is less than one example"),
    ([1.5], "fraction"), ([], "empty"),
    ([60, 0.5], "sizes: 60 and 0.5 are both 60 of the 120 training examples; give each size "
     "once")])
def test_learning_curve_size_errors(data, sizes, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        sweep.learning_curve(X, y, sizes, maxiter=2)


def test_the_values_of_a_curve_before_the_data():
    # what the command checks before it reads any data is what the curves check
    assert sweep.check_sizes([2, 0.5, 1.0, np.int64(7)]) == [2, 0.5, 1.0, 7]
    assert sweep.check_sizes([1, 1.0]) == [1, 1.0]  # one example, and all of them
    for sizes, message in (([0.5, 2, 0.5], "sizes: 0.5 is given twice"),
                           ([3, np.int32(3)], "sizes: 3 is given twice"),
                           ([2.0], r"fraction of the training set in \(0, 1\], got 2.0"),
                           ([True], "counts or fractions, got True"), (5, "list of counts")):
        with pytest.raises(ValueError, match=message):
            sweep.check_sizes(sizes)
    np.testing.assert_array_equal(sweep.check_lams((0, 0.1, np.float32(3))), [0, 0.1, 3])
    assert sweep.check_lams([1]).dtype == np.float64
    for lams, message in (([0, 1, 0.0], r"lams: 0.0 is given twice"),
                          ([1, -1], r"lams\[1\] must be a finite number >= 0, got -1"),
                          ([np.inf], r"lams\[0\] must be a finite number"),
                          ([], "lams is empty"), (np.ones((2, 2)), r"lams\[0\]")):
        with pytest.raises(ValueError, match=message):
            sweep.check_lams(lams)
    # in the networks' dtype: held, and distinct (two rows of one network otherwise)
    with pytest.raises(ValueError, match=r"lams: 1e-50 is 0 in float32, as is 0; give each "
                                         r"lambda once \(or train in float64"):
        sweep.check_lams([0, 1e-50], np.float32)
    with pytest.raises(ValueError, match=r"lams=1e\+300 is not representable in float32"):
        sweep.check_lams([1, 1e300], np.float32)
    np.testing.assert_array_equal(sweep.check_lams([0, 1e-50], np.float64), [0, 1e-50])
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match="lams: 1e-50 is 0 in float32"):  # the library too
        sweep.validation_curve(X, y, [0, 1e-50], maxiter=2)
    curve = sweep.validation_curve(X, y, [0, 1e-50], maxiter=2, dtype="float64", hidden=(2,))
    np.testing.assert_array_equal(curve.values, [0, 1e-50])  # two networks in float64
    with pytest.raises(ValueError, match=r"seeds: 1 is given twice \(each seed is one "
                                         r"column\)"):  # two equal networks, std 0
        sweep.validation_curve(X, y, [1.0], seeds=[1, 1], maxiter=2)


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture
def npz(tmp_path, data):
    X, y = data
    path = tmp_path / "toy.npz"
    np.savez(path, X=X, y=y)
    return path


def test_cli_sweep_lam_writes_table_png_and_json(npz, tmp_path, capsys):
    from jaxnn.cli import main

    out = tmp_path / "run"
    # the settings of the validation-curve test above: the same compiled program
    code = main(["sweep", "lam", "--data", str(npz), "--values", "0", "1", "30", "--seeds", "2",
                 "--iterations", "25", "--hidden", "6", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "validation curve" in printed and "val cost" in printed
    png = out / "sweep_validation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "sweep_validation.json").read_text())
    assert result["values"] == [0.0, 1.0, 30.0] and result["seeds"] == [0, 1]
    assert np.asarray(result["val_cost"]).shape == (3, 2)
    assert result["data"] == str(npz)
    # a sweep owns its files as a training run does: a rerun replaces them, a file of the
    # user's under their names is refused and left alone
    argv = ["sweep", "lam", "--data", str(npz), "--values", "1", "--seeds", "1",
            "--iterations", "25", "--hidden", "6", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "sweep_validation.json").read_text())["values"] == [1.0]
    (out / "sweep_validation.json").write_text("my notes")
    capsys.readouterr()
    assert main(argv) == 2
    assert "already holds sweep_validation.json, which" in capsys.readouterr().err
    assert (out / "sweep_validation.json").read_text() == "my notes"


def test_cli_sweep_where_every_network_diverged_exits_1(npz, tmp_path, capsys):
    """As ``jaxnn train``'s exit 1: the files are written, the status says nothing trained."""
    from jaxnn.cli import main

    out = tmp_path / "run"
    argv = ["sweep", "lam", "--data", str(npz), "--values", "0", "1", "--seeds", "1",
            "--iterations", "5", "--hidden", "6", "--method", "sgd", "--learning-rate", "3e38",
            "--out", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "every network diverged" in captured.out and "diverged" in captured.err
    assert json.loads((out / "sweep_validation.json").read_text())["diverged"] == [[True]] * 2
    argv[argv.index("3e38")] = "0.1"  # some trained: done
    assert main(argv) == 0


def test_cli_sweep_interrupted_while_writing_keeps_its_numbers(npz, tmp_path, capsys,
                                                               monkeypatch):
    """A Ctrl-C while the picture is drawn (a second or more, after the previous run's files
    are gone): the sweep's JSON is written, then the command stops (exit 130)."""
    import jaxnn.plot
    from jaxnn.cli import main

    out = tmp_path / "run"
    argv = ["sweep", "lam", "--data", str(npz), "--values", "0", "1", "--seeds", "1",
            "--iterations", "5", "--hidden", "6", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxnn.plot, "save_png", interrupted)
    argv[argv.index("--values") + 1: argv.index("--seeds")] = ["3"]
    assert main(argv) == 130
    said = capsys.readouterr().out
    assert f"interrupted: the sweep's numbers are saved in {out / 'sweep_validation.json'} " \
           "(no picture)" in said.replace("\n", "")
    assert json.loads((out / "sweep_validation.json").read_text())["values"] == [3.0]
    assert not (out / "sweep_validation.png").exists()  # the last run's: it was another sweep
    monkeypatch.undo()
    assert main(argv) == 0 and (out / "sweep_validation.png").is_file()  # the run's files


def test_cli_size_values_read_as_the_help_says():
    """``1`` is all of the training set, as in the default ``0.1 0.25 0.5 1``; whole numbers
    above 1 are counts of examples, other numbers fractions."""
    from jaxnn.cli.sweep import _parse_values

    assert _parse_values("size", ["0.1", "500", "1", "2"]) == [0.1, 500, 1.0, 2]
    assert [type(v) for v in _parse_values("size", ["1", "2"])] == [float, int]
    assert _parse_values("lam", ["1", "3"]) == [1.0, 3.0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "lam", "--values", "abc"], "not a number"),
        (["sweep", "size", "--values", "2.5"], "fraction"),
        (["sweep", "lam", "--val-size", "1.5"], "--val-size"),
        (["sweep", "lam", "--val-size", "0"], "argument --val-size: must be a fraction in (0, 1), "
         "got 0"),
        (["sweep", "lam", "--split-seed", "-1"], "argument --split-seed: must be an integer in "
         "[0, 2**63 - 1], got '-1'"),
        (["sweep", "lam", "--learning-rate", "0.1", "--batch-size", "5"], "--batch-size and "
         "--learning-rate are only used by --method adam and sgd, not lbfgs"),
        (["sweep", "lam", "--values", "1", "-1"], "--values -1 must be a finite number >= 0, got "
         "-1.0"),
        (["sweep", "lam", "--values", "1e400"], "--values 1e400 must be a finite number >= 0"),
        (["sweep", "size", "--values", "2.5", "--data", "missing.npz"], "--values: a size is "
         "a count"),  # checked before any data is read
        (["sweep", "size", "--values", "inf"], "--values: a size is a count of examples (2, 3, "
         "...) or a fraction of the training set in (0, 1], got inf"),
        (["sweep", "lam", "--data", "missing.npz"], "missing.npz"),
        (["sweep", "lam", "--seeds", "0"], "--seeds"),
        (["sweep", "rho"], "invalid choice"),
        (["sweep", "size", "--values", "1", "1.0"], "--values: 1.0 is given twice"),
        (["sweep", "lam", "--values", "0", "3", "0.0"], "--values: 0.0 is given twice"),
        (["sweep", "lam", "--lam", "3"], "--lam is the fixed lambda of 'sweep size'; 'sweep "
         "lam' tries the lambdas of --values"),
        (["sweep", "size", "--data", "toy.npz", "--values", "0.001"], "jaxnn sweep: error: "
         "--values: 0.001 of the 120 training examples is less than one example"),
        (["sweep", "lam", "--values", "0", "1e-50"], "--values: 1e-50 is 0 in float32, as is "
         "0; give each lambda once (or train in float64, --dtype float64)"),
        (["sweep", "lam", "--values", "1", "1e300"], "jaxnn sweep: error: --values 1e+300 is "
         "not representable in float32 (it overflows to inf); scale it down, or train in "
         "float64 (--dtype float64)"),
    ],
)
def test_cli_sweep_user_errors_exit_2(argv, message, capsys, tmp_path, monkeypatch, data):
    from jaxnn.cli import main

    monkeypatch.chdir(tmp_path)  # an error must not leave output directories behind
    X, y = data
    np.savez(tmp_path / "toy.npz", X=X, y=y)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.npz"]


def test_networks_that_diverge_are_said(data):
    """A sweep whose networks meet a non-finite cost says so (its rows then describe the
    parameters each kept), like fit does; fit_many marks them."""
    X, y = data
    with pytest.warns(UserWarning, match=r"^4 of 4 networks diverged \(the first: lam 0, seed "
                      r"0\): stopped: the cost became non-finite"):
        curve = sweep.validation_curve(X, y, [0.0, 1.0], hidden=HIDDEN, seeds=2, maxiter=3,
                                       method="sgd", learning_rate=3e38)
    assert curve.best is None and curve.to_dict()["best"] is None  # no lam trained
    cost = np.array([[0.1, 0.2], [0.5, 0.4], [0.3, 0.3]])  # the diverged lam 0 looks best
    mixed = sweep.Curve("validation", "lam", np.array([0.0, 1.0, 3.0]), np.array([0, 1]), cost,
                        cost, cost, cost, np.ones((3, 2), int),
                        diverged=np.array([[True, True], [False, True], [False, False]]))
    assert mixed.best == 3.0
    # a seed that diverged to parameters with an infinite logit can leave a NaN (or inf) cost:
    # such a mean is not the lowest (np.argmin would pick the NaN)
    cost = np.array([[np.nan, 0.1], [0.5, 0.4], [np.inf, 0.2], [0.3, 0.3]])
    odd = sweep.Curve("validation", "lam", np.array([0.0, 1.0, 3.0, 10.0]), np.array([0, 1]),
                      cost, cost, cost, cost, np.ones((4, 2), int),
                      diverged=np.array([[True, False], [False, False], [True, False],
                                         [False, False]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning for the infinite row's spread
        assert odd.best == 10.0 and odd.to_dict()["best"] == 10.0
    np.testing.assert_allclose(odd.std("val_cost"), [np.nan, 0.05, np.nan, 0.0], atol=1e-15)
    nothing = sweep.Curve("validation", "lam", np.array([0.0]), np.array([0]), cost[:1, :1],
                          cost[:1, :1], cost[:1, :1], cost[:1, :1], np.ones((1, 1), int),
                          diverged=np.array([[False]]))
    assert nothing.best is None
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        curve = sweep.learning_curve(X, y, [60, 120], hidden=HIDDEN, seeds=2, maxiter=3,
                                     method="sgd", learning_rate=3e38)
    assert [str(w.message)[:57] for w in said] == [
        "4 of 4 networks diverged (the first: 60 examples, seed 0)"]  # one warning, all sizes
    assert curve.diverged.tolist() == [[True, True], [True, True]]
    assert curve.to_dict()["diverged"] == [[True, True], [True, True]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound sweep says nothing
        curve = sweep.validation_curve(X, y, [1.0], hidden=HIDDEN, seeds=2, maxiter=3,
                                       method="sgd", learning_rate=0.1)
    assert np.isfinite(curve.train_cost).all() and not curve.diverged.any()


def test_a_validation_split_that_leaves_nothing_names_val_fraction_and_the_option(npz, tmp_path,
                                                                                   capsys):
    from jaxnn.cli import main

    X, y = np.load(npz)["X"], np.load(npz)["y"]
    m = X.shape[0]
    with pytest.raises(ValueError) as info:
        sweep.validation_curve(X, y, [1.0], hidden=(3,), seeds=1, maxiter=2, val_fraction=0.999)
    assert str(info.value) == (f"val_fraction=0.999 gives {m} validation examples out of {m}; "
                               "both the train and the validation set need at least one")
    code = main(["sweep", "lam", "--data", str(npz), "--values", "1", "--val-size", "0.999",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"--val-size 0.999 gives {m} validation examples" in err
