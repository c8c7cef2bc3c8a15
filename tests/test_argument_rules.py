"""One rule, one outcome: the same bad argument through every entry point (fit, fit_many,
fit_stream, the estimator, the sweeps, the command line) gives the same error and message,
and the same good one is accepted everywhere."""

from __future__ import annotations

import gzip
import math
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

import jaxnn
from jaxnn.cli import main
from jaxnn.datasets import train_test_split
from jaxnn.estimator import NeuralNetClassifier
from jaxnn.gradcheck import octave_order
from jaxnn.incremental import numerical_cost_gradient
from jaxnn.parallel import fit_many, init_many
from jaxnn.stream import fit_stream
from jaxnn.sweep import learning_curve, validation_curve

SIZES = (4, 3, 3)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4))
Y = np.arange(30) % 3


@pytest.fixture(scope="module")
def idx(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    pixels = (RNG.random((30, 2, 2)) * 255).astype(np.uint8)
    (d / "img.gz").write_bytes(gzip.compress(struct.pack(">4B3I", 0, 0, 8, 3, 30, 2, 2)
                                             + pixels.tobytes()))
    (d / "lab.gz").write_bytes(gzip.compress(struct.pack(">4BI", 0, 0, 8, 1, 30)
                                             + Y.astype(np.uint8).tobytes()))
    return d / "img.gz", d / "lab.gz"


def _fit(**kw):
    lam = kw.pop("lam", 1.0)
    return jaxnn.fit(jaxnn.init_params(0, SIZES), X, Y, lam, maxiter=kw.pop("maxiter", 2),
                     **kw)


def _fit_many(**kw):
    lam = kw.pop("lam", 1.0)
    kw.setdefault("method", "lbfgs")
    return fit_many(init_many(0, 2, SIZES), X, Y, lam, maxiter=kw.pop("maxiter", 2), **kw)


def _stream(idx_files):
    def run(**kw):
        lam = kw.pop("lam", 0.0)
        kw.setdefault("method", "adam")
        return fit_stream(jaxnn.init_params(0, SIZES), *idx_files, lam,
                          maxiter=kw.pop("maxiter", 1), batch_size=10, **kw)
    return run


def _estimator(**kw):
    renamed = {"lam": "lam", "maxiter": "max_iter", "method": "method", "grad": "grad",
               "learning_rate": "learning_rate"}
    kw = {renamed[k]: v for k, v in kw.items()}
    kw.setdefault("max_iter", 2)
    return NeuralNetClassifier((3,), **kw).fit(X, Y)


def _validation_curve(**kw):
    lam = kw.pop("lam", 1.0)
    return validation_curve(X, Y, [lam], hidden=(3,), seeds=1, maxiter=kw.pop("maxiter", 2),
                            **kw)


def _learning_curve(**kw):
    return learning_curve(X, Y, [10], hidden=(3,), seeds=1, maxiter=kw.pop("maxiter", 2),
                          **kw)


def _message(call, **kw) -> str:
    with pytest.raises(ValueError) as info:
        call(**kw)
    return str(info.value)


@pytest.fixture(scope="module")
def entry_points(idx):
    return {"fit": _fit, "fit_many": _fit_many, "fit_stream": _stream(idx),
            "estimator": _estimator, "validation_curve": _validation_curve,
            "learning_curve": _learning_curve}


BAD = [
    # (keyword, value, entry points it applies to, the message every one of them gives)
    ("lam", -1.0, ("fit", "fit_many", "fit_stream", "estimator", "learning_curve"),
     "must be a finite number >= 0, got -1.0"),
    ("lam", "1", ("fit", "fit_many", "fit_stream", "estimator", "learning_curve"),
     "must be a finite number >= 0, got '1'"),
    ("maxiter", 0, ("fit", "fit_many", "fit_stream", "validation_curve", "learning_curve"),
     "maxiter must be a positive integer, got 0"),
    ("grad", "numeric", ("fit", "fit_many", "fit_stream", "estimator", "validation_curve"),
     "grad='numeric' is not supported; choose one of ['backprop', 'autodiff']"),
    ("learning_rate", True, ("fit", "fit_many", "fit_stream", "estimator"),
     "learning_rate must be a positive number or an optax schedule, got True"),
    ("learning_rate", -0.1, ("fit", "fit_many", "fit_stream", "estimator"),
     "learning_rate must be a positive number or an optax schedule, got -0.1"),
]


@pytest.mark.parametrize(("keyword", "value", "where", "expected"), BAD,
                         ids=[f"{k}={v!r}" for k, v, _, _ in BAD])
def test_a_bad_argument_gets_the_same_message_everywhere(entry_points, keyword, value, where,
                                                         expected):
    extra = {"method": "adam"} if keyword == "learning_rate" else {}
    messages = {}
    for name in where:
        kw = {keyword: value, **extra}
        if name == "estimator" and keyword == "maxiter":
            kw = {"maxiter": value}
        messages[name] = _message(entry_points[name], **kw)
    assert all(expected in m for m in messages.values()), messages


def test_the_maxiter_rule_names_each_entry_points_own_argument(entry_points):
    assert "max_iter must be a positive integer, got 0" in _message(_estimator, maxiter=0)


def test_unknown_methods_list_what_each_entry_point_runs(entry_points):
    assert "method='newton' is not supported" in _message(_fit, method="newton")
    assert "method='newton' is not supported by fit_many" in _message(_fit_many,
                                                                      method="newton")
    assert "method='newton' is not supported by fit_stream" in _message(
        entry_points["fit_stream"], method="newton")
    assert "method='newton' is not supported" in _message(_validation_curve, method="newton")


def test_method_specific_arguments_get_one_rule(entry_points):
    # an argument the method would ignore, an optax optimizer's learning rate, loop options
    for name in ("fit", "fit_many"):
        assert "learning_rate is only used by adam/sgd, not by method 'lbfgs'" in _message(
            entry_points[name], method="lbfgs", learning_rate=0.1)
        assert "batch_size is only used by adam/sgd, not by method 'fmincg'" in _message(
            entry_points[name], method="fmincg", batch_size=5)
        assert "unknown lbfgs options ['history']; it takes memory_size, " in _message(
            entry_points[name], method="lbfgs", options={"history": 3})
        assert "options must be a dict, got list" in _message(
            entry_points[name], method="lbfgs", options=[1])
    for method, kw, expected in (
            ("adam", {"tol": 1e-3}, "tol is not used by method 'adam' (it runs all iterations)"),
            ("fmincg", {"tol": 1e-3}, "tol is not used by method 'fmincg' (it runs all "
                                      "iterations)"),
            ("fmincg", {"options": {}}, "options are not used by method 'fmincg'"),
            ("sgd", {"options": {}}, "options are not used by method 'sgd'")):
        assert _message(_fit, method=method, **kw) == expected
        assert _message(_fit_many, method=method, **kw) == expected
    for name in ("fit", "fit_stream"):
        assert "learning_rate is part of an optax optimizer passed as method" in _message(
            entry_points[name], method=optax.adam(0.1), learning_rate=0.1)
        assert "or pass an optax GradientTransformation" in _message(entry_points[name],
                                                                    method="newton")


def test_values_are_shown_as_written():
    # an object's type rather than its repr; a numpy scalar as the number it is
    message = _message(_fit_many, method=optax.adam(0.1))
    assert message.startswith("method of type GradientTransformationExtraArgs is not supported "
                              "by fit_many; choose one of ['lbfgs', 'fmincg', 'adam', 'sgd']")
    assert _message(_fit_many, lam=np.array([0, -2])) == (
        "lams[1] must be a finite number >= 0, got -2")


def test_nan_weights_are_refused_by_every_trainer():
    batch = tuple(np.array(t) for t in init_many(0, 3, SIZES))
    batch[1][2, 0, 1] = np.nan  # network 2 only: member 0, which fit_many checks first, is fine
    message = _message(fit_many, params_batch=batch, X=X, y=Y, lams=1.0, method="lbfgs",
                       maxiter=2)
    assert message == ("params_batch holds 1 NaN or infinite value(s) in float32 (networks "
                       "[2]); start from finite weights, e.g. jaxnn.parallel.init_many")
    single = tuple(t[2] for t in batch)
    assert "start from finite weights, e.g. jaxnn.init_params" in _message(_fit_with, params=single)


def _fit_with(params):
    return jaxnn.fit(params, X, Y, 1.0, maxiter=2)


def test_good_arguments_are_accepted_everywhere(entry_points):
    schedule = optax.exponential_decay(0.05, 10, 0.5)
    for name in ("fit", "fit_many", "fit_stream"):
        entry_points[name](method="adam", learning_rate=schedule)  # schedules everywhere
        entry_points[name](method="sgd", learning_rate=np.float32(0.1))  # numpy scalars
    mesh = Mesh(np.array(jax.devices()[:1]), ("any",))
    for devices in (1, jax.devices()[:1], mesh):  # a count, a list and a Mesh
        assert _fit(devices=devices).n_iter >= 1
        assert len(_fit_many(devices=devices)) == 2


@pytest.mark.parametrize("devices", [0, 10**6, "cpu", [1, 2], "twice"])
def test_bad_devices_get_the_same_message(devices):
    n = len(jax.devices())
    expected = {
        0: "devices must be a positive count of devices, got 0",
        10**6: f"devices=1000000 but {n} JAX device{'s are' if n > 1 else ' is'} available (on "
               "CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts "
               "makes N)",
        "twice": f"devices lists {jax.devices()[0]} more than once; each device holds one share "
                 "of the examples: list each once",
    }.get(devices if not isinstance(devices, list) else None,
          "devices must be a positive count, a list of jax devices or a 1-D Mesh")
    if devices == "twice":  # JAX failed on these deep inside (an empty AssertionError)
        devices = [jax.devices()[0]] * 2
        mesh = jax.sharding.Mesh(np.array(devices), ("x",))  # as a Mesh too
        assert expected in _message(_fit, devices=mesh)
        assert expected in _message(_fit_many, devices=mesh)
    assert expected in _message(_fit, devices=devices)
    assert expected in _message(_fit_many, devices=devices)


@pytest.mark.parametrize("seed", [1.5, 2**70, True, -1])
def test_seeds_follow_one_rule(seed, entry_points):
    """A seed of a JAX key may be negative; one of numpy's generators (fit_stream's shuffle,
    train_test_split, the sample of a plot) may not, and says so in the same words."""
    if seed != -1:
        expected = f"seed must be an integer in [-2**63, 2**63 - 1], got {seed!r}"
        assert expected in _message(_fit, seed=seed, method="adam")
        assert expected in _message(_fit_many, seed=seed, method="adam")
    expected = f"seed must be an integer in [0, 2**63 - 1], got {seed!r}"
    assert expected in _message(entry_points["fit_stream"], seed=seed)
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    assert expected in _message(lambda **kw: train_test_split(X, y, **kw), seed=seed)


def test_the_seeds_of_many_networks_stay_in_the_range():
    B = 2  # _fit_many's networks: seeds seed, seed + 1
    assert _message(_fit_many, seed=2**63 - 1, method="adam") == (
        f"seed=9223372036854775807 gives the {B} networks the seeds "
        "9223372036854775807..9223372036854775808, beyond 2**63 - 1; pass a seed of at most "
        f"9223372036854775806 or a sequence of {B} seeds")


def test_eps_and_chunk_size_follow_one_rule_everywhere():
    """The three numerical-gradient entry points give the same message for the same bad value
    (checks.check_eps, checks.check_chunk_size), and take numpy scalars as numbers."""
    params, Xs, ys = jaxnn.init_params(0, SIZES), X[:5], Y[:5]
    calls = [lambda **kw: jaxnn.numerical_gradient(lambda p: jnp.sum(p[0]), params, **kw),
             lambda **kw: numerical_cost_gradient(params, Xs, ys, **kw),
             lambda **kw: jaxnn.check_gradients(params, Xs, ys, **kw)]
    for bad, message in [(dict(eps=0.0), "eps must be a finite number > 0, got 0.0"),
                         (dict(eps=math.nan), "eps must be a finite number > 0, got nan"),
                         (dict(eps="1e-4"), "eps must be a finite number > 0, got '1e-4'"),
                         (dict(chunk_size=0), "chunk_size must be a positive integer, got 0"),
                         (dict(chunk_size=True), "chunk_size must be a positive integer, got "
                                                 "True"),
                         (dict(chunk_size=2.0), "chunk_size must be a positive integer, got "
                                                "2.0")]:
        for call in calls:
            with pytest.raises(ValueError) as info:
                call(**bad)
            assert str(info.value) == message
    a = numerical_cost_gradient(params, Xs, ys, eps=np.float64(1e-4), chunk_size=np.int64(3))
    b = numerical_cost_gradient(params, Xs, ys, eps=1e-4, chunk_size=3)
    np.testing.assert_array_equal(octave_order(a), octave_order(b))


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "--lam", "-1"], "argument --lam: must be a finite number >= 0, got '-1'"),
    (["train", "--iterations", "0"], "argument --iterations: must be a positive integer, got '0'"),
    (["train", "--grad", "numeric"], "argument --grad: invalid choice: 'numeric'"),
    (["train", "--seed", "1180591620717411303424"],
     "argument --seed: must be an integer in [0, 2**63 - 1]"),
    (["sweep", "lam", "--iterations", "0"],
     "argument --iterations: must be a positive integer, got '0'"),
])
def test_the_command_line_gives_the_rule_in_one_line(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err, err


@pytest.mark.parametrize("epsilon", [True, 0, -0.1, math.inf, "0.12"])
def test_epsilon_follows_one_rule(epsilon):
    """init_params, init_many and the estimator refuse the same epsilons in the same words,
    and take a numpy scalar as a number."""
    expected = f"epsilon must be a finite number > 0, got {epsilon!r}"
    assert expected in _message(lambda **kw: jaxnn.init_params(0, SIZES, **kw), epsilon=epsilon)
    assert expected in _message(lambda **kw: init_many(0, 2, SIZES, **kw), epsilon=epsilon)
    X, y = np.random.default_rng(0).random((12, SIZES[0])), np.arange(12) % 3
    assert expected in _message(lambda **kw: NeuralNetClassifier(**kw).fit(X, y),
                                epsilon=epsilon)
    p = jaxnn.init_params(0, SIZES, epsilon=np.float32(0.5))
    assert 0.25 < float(np.abs(p[0]).max()) <= 0.5


def test_label_vectors_follow_one_rule(tmp_path):
    """Labels reach jaxnn through the core functions (``y`` beside ``X``), the command's data
    and curves (host-side ``check_labels``) and course files (``load_mat``): a fraction, a NaN
    and a wrong count get the same words from each, with the class numbering each one uses."""
    import scipy.io

    from jaxnn.checks import check_labels
    from jaxnn.datasets import load_mat

    params = jaxnn.init_params(0, SIZES)

    def from_file(y):
        scipy.io.savemat(tmp_path / "d.mat", {"X": X, "y": np.asarray(y, float)[:, None]})
        return load_mat(tmp_path / "d.mat")

    def core(y):
        return jaxnn.cost(params, X, y)

    def host(y):
        return check_labels(y, "y", X.shape[0])

    half = np.where(np.arange(30) == 4, 0.5, 1.0)
    nan = np.where(np.arange(30) == 4, np.nan, 1.0)
    for call, classes, where in [(core, "0..2", ""), (host, "0..K-1", ""),
                                 (from_file, "1..K", f"{tmp_path / 'd.mat'}: ")]:
        assert _message(call, y=half) == (
            f"{where}y must hold whole-number class labels {classes}; found e.g. [0.5]")
        assert _message(call, y=nan) == (
            f"{where}y must hold whole-number class labels {classes}; found e.g. [nan]")
        if call is not from_file:  # a MAT file has no booleans
            assert _message(call, y=Y > 0) == (
                f"{where}y must hold whole-number class labels {classes}, got dtype bool")
        assert _message(call, y=np.ones(29)) == (
            f"{where}y has 29 labels but X has 30 rows; they must match")
        assert _message(call, y=np.ones(1)) == (
            f"{where}y has 1 label but X has 30 rows; they must match")


@pytest.mark.parametrize("make", [lambda key, dtype: jaxnn.init_params(key, SIZES, dtype=dtype),
                                  lambda key, dtype: init_many(key, 3, SIZES, dtype=dtype)],
                         ids=["init_params", "init_many"])
def test_new_weights_take_one_key_rule_and_one_dtype_rule(make):
    def call(key=0, dtype=None):
        return make(key=key, dtype=dtype)

    assert _message(call, key=0.5) == "key must be a JAX PRNG key or an integer seed, got 0.5"
    assert _message(call, key=2**64).startswith("key must be an integer in [-2**63, 2**63 - 1]")
    assert _message(call, dtype="foo") == ("dtype must be a floating dtype such as np.float32 "
                                           "or np.float64, got 'foo'")
    assert _message(call, dtype=int).endswith("got <class 'int'>")


def test_data_that_overflow_float32_get_one_message_from_every_trainer():
    """fit's rule for X, in fit_many and the sweeps too (they trained to NaN before)."""
    big = X * 1e39
    expected = ("X has values that overflow float32 (the largest float32 is 3.4e38); scale "
                "it down, or train in float64 (dtype='float64')")
    calls = {
        "fit": lambda: jaxnn.fit(jaxnn.init_params(0, SIZES), big, Y, 1.0, maxiter=2),
        "fit_many": lambda: fit_many(init_many(0, 2, SIZES), big, Y, 1.0, maxiter=2),
        "validation_curve": lambda: validation_curve(big, Y, [1.0], hidden=(3,), seeds=1,
                                                     maxiter=2),
        "learning_curve": lambda: learning_curve(big, Y, [10], hidden=(3,), seeds=1,
                                                 maxiter=2),
        "estimator": lambda: NeuralNetClassifier((3,), max_iter=2).fit(big, Y),
    }
    messages = {name: _message(call) for name, call in calls.items()}
    assert all(m == expected for m in messages.values()), messages


def test_files_take_one_path_rule_and_weights_a_sequence(tmp_path):
    from jaxnn.datasets import load_idx, load_mat

    params = jaxnn.init_params(0, SIZES)
    rule = "path must be a file path (a str or pathlib.Path), got "
    assert _message(jaxnn.save_weights, path=params, params=params) == rule + "a tuple"
    for load in (jaxnn.load_weights, load_mat):
        assert _message(load, path=None) == rule + "None"
        assert _message(load, path=3) == rule + "3"
    assert _message(load_idx, images=None, labels=None) == (
        "images must be a file path (a str or pathlib.Path), got None")
    for bad, shown in ((None, "NoneType"), ({"Theta1": params[0]}, "dict"), (3, "int")):
        assert _message(jaxnn.save_weights, path=tmp_path / "w.npz", params=bad) == (
            f"params must be a sequence of weight arrays (Theta1, Theta2, ...), got {shown}")
    assert not (tmp_path / "w.npz").exists()
