"""Finite differences on functions with known gradients, the incremental central differences of
the network's cost against the plain ones, and the report."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import math
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn as nn
from jaxnn.differences import (
    expm1_series,
    expm1_terms,
    log1p_series,
    log1p_terms,
    recip_series,
    recip_terms,
)
from jaxnn.gradcheck import octave_order, relative_difference
from jaxnn.incremental import numerical_cost_gradient
from jaxnn.losses import regularized_cost

ROOT = Path(__file__).resolve().parents[1]
gc = importlib.import_module("jaxnn.gradcheck")
inc = importlib.import_module("jaxnn.incremental")
differences = importlib.import_module("jaxnn.differences")


def _problem(sizes, m=20, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    params = tuple(np.asarray(t, np.float64) for t in nn.init_params(seed, sizes, scale))
    return params, rng.normal(size=(m, sizes[0])), rng.integers(0, sizes[-1], m)


def _plain(params, X, Y, lam, activation, output, eps=1e-4):
    """The plain central differences of the cost (perturb, re-evaluate), as numpy arrays."""
    with nn.x64():
        p = tuple(jnp.asarray(t) for t in params)
        Xj, Yj = jnp.asarray(X, jnp.float64), jnp.asarray(Y, jnp.float64)
        g = nn.numerical_gradient(
            lambda q: regularized_cost(q, Xj, Yj, lam, activation, output), p, eps)
    return tuple(np.asarray(t) for t in g)


def test_numerical_gradient_of_a_known_function():
    params = (np.arange(6.0).reshape(2, 3) / 7, np.array([[0.5, -1.0, 2.0]]))

    def f(p):
        return jnp.sum(p[0] ** 3) + jnp.sum(jnp.sin(p[1]))

    with nn.x64():
        g = nn.numerical_gradient(f, params, eps=1e-5, chunk_size=4)  # several chunks
    np.testing.assert_allclose(g[0], 3 * params[0] ** 2, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(g[1], np.cos(params[1]), rtol=1e-8)


def test_relative_difference_formula():
    assert relative_difference([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_difference([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert relative_difference([3.0], [1.0]) == pytest.approx(0.5)
    assert relative_difference([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert relative_difference([2.0, -1.0], [-2.0, 1.0]) == pytest.approx(2 * np.sqrt(5))
    # gradients of a huge lam: their squares overflow float64, the measure does not
    a = np.array([3e200, -1e200, 2e200])
    assert relative_difference(a, a * (1 + 1e-12)) == pytest.approx(5e-13, rel=1e-3)
    assert relative_difference(a, a / 3) == pytest.approx(0.5)


# --- the incremental central differences ---------------------------------------------------------


@pytest.mark.parametrize("sizes, activation, output, lam", [
    ((3, 5, 3), "sigmoid", "sigmoid", 0.0),
    ((4, 6, 5, 3), "tanh", "softmax", 2.0),
    ((4, 6, 5, 3), "relu", "sigmoid", 2.0),
    ((5, 7, 4), "sigmoid", "softmax", 0.0),
    ((5, 4), "sigmoid", "sigmoid", 2.0),  # no hidden layer
    ((5, 6, 4, 5, 3), "sigmoid", "sigmoid", 2.0),  # three hidden layers
])
def test_incremental_equals_plain_central_differences(sizes, activation, output, lam):
    """Every parameter: the incremental differences are the plain ones to rounding."""
    params, X, y = _problem(sizes)
    Y = np.eye(sizes[-1])[y]
    fast = numerical_cost_gradient(params, X, y, lam, activation=activation, output=output)
    plain = _plain(params, X, Y, lam, activation, output)
    assert [g.shape for g in fast] == [t.shape for t in params]
    assert fast[0].dtype == np.float64
    # measured: 4e-12 .. 1.5e-11 (the plain differences' own rounding, see below)
    assert relative_difference(octave_order(fast), octave_order(plain)) < 1e-10
    np.testing.assert_allclose(octave_order(fast), octave_order(plain), rtol=0, atol=1e-10)


def test_incremental_on_a_sample_of_a_larger_network():
    """400-25-10 on 300 examples: a sample of 150 parameters against the plain differences."""
    sizes, m, eps, lam = (400, 25, 10), 300, 1e-4, 1.0
    rng = np.random.default_rng(3)
    params = tuple(np.asarray(t, np.float64) for t in nn.init_params(3, sizes))
    X, y = rng.random((m, 400)), rng.integers(0, 10, m)
    fast = octave_order(numerical_cost_gradient(params, X, y, lam))
    n = fast.size
    idx = np.concatenate([rng.choice(n, 140, replace=False), [0, n - 1, 25 * 401, 25 * 401 - 1,
                                                             25 * 401 + 10, 25, 24, 26, 1, 2]])
    with nn.x64():
        theta = nn.ravel_params(params)
        Xj, Yj = jnp.asarray(X), jax.nn.one_hot(jnp.asarray(y), 10, dtype=jnp.float64)

        def J(th):
            return regularized_cost(nn.unravel_params(th, sizes), Xj, Yj, lam, "sigmoid",
                                    "sigmoid")

        step = jax.nn.one_hot(jnp.asarray(idx), n, dtype=jnp.float64) * eps
        plain = np.asarray((jax.vmap(J)(theta + step) - jax.vmap(J)(theta - step)) / (2 * eps))
    assert relative_difference(fast[idx], plain) < 1e-10  # measured 2e-11
    np.testing.assert_allclose(fast[idx], plain, rtol=0, atol=1e-10)


def _cost_longdouble(params, X, Y, lam, activation, output):
    a = X
    for t in params[:-1]:
        z = a @ t[:, 1:].T + t[:, 0]
        a = 1 / (1 + np.exp(-z)) if activation == "sigmoid" else np.tanh(z)
    z = a @ params[-1][:, 1:].T + params[-1][:, 0]
    if output == "sigmoid":
        loss = np.sum(np.logaddexp(np.longdouble(0), z) - Y * z)
    else:
        top = z.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        loss = np.sum(Y.sum(axis=1) * lse - np.sum(Y * z, axis=1))
    m = X.shape[0]
    return loss / m + lam / (2 * m) * sum(np.sum(t[:, 1:] ** 2) for t in params)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-18,
                    reason="needs an extended-precision long double (x86)")
@pytest.mark.parametrize("activation, output", [("sigmoid", "sigmoid"), ("tanh", "softmax")])
def test_incremental_is_the_exact_central_difference_to_rounding(activation, output):
    """Against central differences evaluated in 80-bit long double: summing the change of each
    example's loss is far more accurate than subtracting two perturbed costs."""
    sizes, eps, lam = (6, 5, 4), 1e-4, 1.0
    params, X, y = _problem(sizes, m=40, seed=5)
    Y = np.eye(sizes[-1])[y]
    LD = np.longdouble
    pl, Xl, Yl = [t.astype(LD) for t in params], X.astype(LD), Y.astype(LD)
    exact = []
    for layer, t in enumerate(pl):
        g = np.empty(t.shape, LD)
        for i, j in np.ndindex(t.shape):
            up = [u.copy() for u in pl]
            up[layer][i, j] += LD(eps)
            down = [u.copy() for u in pl]
            down[layer][i, j] -= LD(eps)
            g[i, j] = (_cost_longdouble(up, Xl, Yl, lam, activation, output)
                       - _cost_longdouble(down, Xl, Yl, lam, activation, output)) / (2 * LD(eps))
        exact.append(np.asarray(g, np.float64))
    exact = octave_order(exact)
    fast = octave_order(numerical_cost_gradient(params, X, y, lam, eps=eps,
                                                activation=activation, output=output))
    plain = octave_order(_plain(params, X, Y, lam, activation, output, eps))
    err_fast, err_plain = (relative_difference(g, exact) for g in (fast, plain))
    assert err_fast < 1e-12  # measured 1e-14 .. 7e-14
    assert err_fast < err_plain / 10  # plain: 3e-11 .. 1e-10, its rounding of J / eps


def test_chunk_sizes_and_block_overlaps_give_the_same_numbers():
    params, X, y = _problem((7, 9, 5, 3), m=13, seed=2)
    ref = octave_order(numerical_cost_gradient(params, X, y, 0.5))
    for chunk in (1, 3, 10_000):
        got = octave_order(numerical_cost_gradient(params, X, y, 0.5, chunk_size=chunk))
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-16)


def test_large_steps_use_the_library_functions_and_still_agree():
    """Past the series' range (large steps and weights) the kernels call expm1, log1p and
    divide instead; small steps use the series."""
    sizes = (4, 6, 5, 3)
    params, X, y = _problem(sizes, seed=4, scale=2.0)
    Y = np.eye(3)[y]
    weights = [t[:, 1:] for t in params]
    max_x = float(np.abs(X).max())
    assert inc._bounds(sizes, 0, 0.5, max_x, weights, "sigmoid", "sigmoid") == (0, 0, 0, 0)
    assert inc._bounds(sizes, 2, 0.5, 1.0, weights, "sigmoid", "sigmoid") == (0, 0, 0, 0)
    assert min(inc._bounds(sizes, 0, 1e-4, max_x, weights, "sigmoid", "sigmoid")) > 0
    fast = numerical_cost_gradient(params, X, y, 1.0, eps=0.5)
    plain = _plain(params, X, Y, 1.0, "sigmoid", "sigmoid", eps=0.5)
    assert relative_difference(octave_order(fast), octave_order(plain)) < 1e-13


def test_soft_targets_and_float32_inputs():
    params, X, y = _problem((4, 6, 3), m=9, seed=6)
    Y = np.random.default_rng(6).random((9, 3))  # not one-hot, rows not summing to one
    for output in ("sigmoid", "softmax"):
        fast = numerical_cost_gradient([t.astype(np.float32) for t in params],
                                       X.astype(np.float32), Y, 0.3, output=output)
        assert fast[0].dtype == np.float64
        plain = _plain([t.astype(np.float32).astype(np.float64) for t in params],
                       X.astype(np.float32), Y, 0.3, "sigmoid", output)
        assert relative_difference(octave_order(fast), octave_order(plain)) < 1e-10


def test_an_activation_and_an_output_without_their_own_rule(monkeypatch):
    """Registered later, they are differenced by plain subtraction, and still agree."""
    activations, outputs = (importlib.import_module(f"jaxnn.{m}") for m in
                            ("activations", "outputs"))
    monkeypatch.setitem(activations.ACTIVATIONS, "softplus", activations.Activation(
        jax.nn.softplus, lambda a: -jnp.expm1(-a)))
    monkeypatch.setitem(outputs.OUTPUTS, "sigmoid2", outputs.OUTPUTS["sigmoid"])
    params, X, y = _problem((4, 5, 4, 3), m=11, seed=7)
    Y = np.eye(3)[y]
    fast = numerical_cost_gradient(params, X, y, 1.0, activation="softplus", output="sigmoid2")
    plain = _plain(params, X, Y, 1.0, "softplus", "sigmoid2")
    assert relative_difference(octave_order(fast), octave_order(plain)) < 1e-10


@pytest.mark.parametrize("terms_of, series, library", [
    (expm1_terms, expm1_series, np.expm1),
    (log1p_terms, log1p_series, np.log1p),
    (recip_terms, recip_series, lambda x: 1 / (1 + x)),
])
def test_series_are_exact_to_rounding_within_their_bound(terms_of, series, library):
    rng = np.random.default_rng(8)
    for bound in (1e-9, 3e-6, 1e-4, 1e-3, 0.02):
        terms = terms_of(bound)
        assert terms >= 1
        x = np.concatenate([rng.uniform(-bound, bound, 2000), [bound, -bound]])
        with nn.x64():
            got = np.asarray(series(jnp.asarray(x), terms))
        np.testing.assert_allclose(got, library(x), rtol=4 * np.finfo(float).eps, atol=0)
    assert terms_of(0.9) == 0  # past the series' use: the library function
    with nn.x64():
        np.testing.assert_allclose(np.asarray(series(jnp.asarray([0.5]), 0)), library(0.5))


def test_the_incremental_differences_use_no_derivative():
    """No transformation and none of backprop's derivative rules anywhere in the two modules
    that make the incremental differences: an independent check."""
    src = "\n".join(inspect.getsource(module) for module in (inc, differences))
    assert "def _layer_kernel" in src and "def _sigmoid_apply" in src
    for word in ("jax.grad", "value_and_grad", "vjp", "jvp", "linearize", "grad_from_output",
                 "loss_and_delta", "penalty_grad", "backprop_arrays", "sigmoid_gradient"):
        assert word not in src, word


def test_check_gradients_catches_a_wrong_gradient(monkeypatch):
    """A broken backward pass must show up in the report (the check can fail)."""
    bp = importlib.import_module("jaxnn.backprop")  # the module, not the re-exported function

    sizes, X, y = (3, 4, 2), np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    params = nn.debug_params(sizes)
    good = gc.check_gradients(params, X, y, 1.0)
    assert good.passed() and good.method == "incremental"

    def wrong_penalty_grad(theta, lam, m):  # regularizes the bias column too: a classic bug
        return (lam / m) * theta

    monkeypatch.setattr(bp, "penalty_grad", wrong_penalty_grad)
    gc._references.clear_cache()
    try:
        bad = gc.check_gradients(params, X, y, 1.0)
    finally:
        monkeypatch.undo()
        gc._references.clear_cache()
    assert not bad.passed()
    assert bad.relative_difference > 1e-4 and bad.autodiff_difference > 1e-4
    np.testing.assert_array_equal(octave_order(bad.numerical), octave_order(good.numerical))
    np.testing.assert_allclose(octave_order(good.numerical), octave_order(good.backprop),
                               atol=1e-9)


def test_check_gradients_works_from_float32_inputs_and_deep_softmax_nets():
    rng = np.random.default_rng(1)
    params = nn.init_params(2, (4, 6, 5, 3), 0.5)  # float32
    X = rng.normal(size=(8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    report = nn.check_gradients(params, X, y, 0.7, eps=1e-5, activation="tanh",
                               output="softmax")
    assert report.numerical[0].dtype == np.float64
    assert report.relative_difference < 1e-9
    assert report.autodiff_difference < 1e-12


def test_check_gradients_plain_method_is_the_course_one():
    sizes, X, y = (3, 5, 3), np.random.default_rng(2).normal(size=(6, 3)), np.arange(6) % 3
    params = nn.debug_params(sizes)
    plain = nn.check_gradients(params, X, y, 3.0, method="plain", chunk_size=7)
    fast = nn.check_gradients(params, X, y, 3.0)
    assert plain.method == "plain" and plain.passed()
    assert relative_difference(octave_order(fast.numerical), octave_order(plain.numerical)) < 1e-10
    np.testing.assert_array_equal(octave_order(fast.backprop), octave_order(plain.backprop))
    assert fast.cost == plain.cost


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="eps"):
        nn.numerical_gradient(lambda p: jnp.sum(p[0]), (np.ones((2, 3)),), eps=0.0)
    params, X, y = _problem((3, 4, 2), m=5)
    with pytest.raises(ValueError, match="eps"):
        numerical_cost_gradient(params, X, y, eps=-1e-4)
    with pytest.raises(ValueError, match="eps"):
        numerical_cost_gradient(params, X, y, eps=math.inf)
    with pytest.raises(ValueError, match="chunk_size"):
        numerical_cost_gradient(params, X, y, chunk_size=0)
    with pytest.raises(ValueError, match="method"):
        nn.check_gradients(params, X, y, method="fast")
    with pytest.raises(ValueError, match="lam"):
        numerical_cost_gradient(params, X, y, -1.0)
    with pytest.raises(ValueError, match="X"):
        numerical_cost_gradient(params, X[:, :2], y)


def test_bench_gradients_smoke():
    """The benchmark script runs end to end at tiny sizes (its --smoke mode)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gradients.py"),
                          "--smoke", "--gradcheck"], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "jaxnn.backprop" in text and "two products" in text
    assert "incremental" in text and "plain" in text and "x backprop" in text


def test_inputs_past_expm1s_range_fall_back_to_plain_differences() -> None:
    """At X * 1e6 the changes of z (eps x) pass 709, where float64's expm1 overflows and the
    hidden sigmoid has saturated: the exact rules have nothing finite to work with, and those
    entries are computed as plain differences (before: NaN)."""
    params = nn.init_params(0, (4, 3, 3))
    X = np.random.default_rng(0).standard_normal((5, 4)) * 1e6
    y = np.arange(5) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning reaches the caller
        incremental = numerical_cost_gradient(params, X, y, 1.0)
    with nn.x64():
        plain = nn.numerical_gradient(
            lambda p: nn.cost(p, X, y, 1.0), tuple(np.asarray(t, np.float64) for t in params))
    for a, b in zip(incremental, plain, strict=True):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-12)
    assert nn.check_gradients(params, X, y).relative_difference < 1e-9
    with pytest.raises(ValueError, match=r"eps must be a finite-difference step in \(0, 1\]"):
        nn.check_gradients(params, X, y, eps=1e300)


# --- the command ---------------------------------------------------------------------------------


def _command(argv: list[str]) -> tuple[int, str, str]:
    """``jaxnn ARGV`` in-process: ``(exit status, stdout, stderr on one line)``, every warning
    shown (a numpy warning the command lets through is printed on its stderr)."""
    from jaxnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        code = main(argv)
    return code, out.getvalue(), " ".join(err.getvalue().split())


@pytest.mark.parametrize("eps", ["1e10", "2"])
def test_the_command_refuses_a_step_above_1_before_it_starts(eps: str) -> None:
    """A step above 1 is refused as 0 and NaN are: by argparse in --eps's words, with nothing
    printed or loaded first (before: the header line, then an error naming the library's
    ``eps``)."""
    code, out, err = _command(["gradcheck", "--eps", eps])
    assert code == 2 and out == "", out
    assert err == (f"jaxnn gradcheck: error: argument --eps: must be a finite-difference step "
                   f"in (0, 1], got '{eps}' (see 'jaxnn gradcheck --help')")
    assert "Traceback" not in err and "RuntimeWarning" not in err


def test_the_command_refuses_a_cost_or_gradient_that_overflows_float64(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights or a lam whose cost (inf or NaN) or gradient overflows float64 are refused, with
    what to make smaller, before any table; numpy's overflow warnings are not shown (before:
    ``cost J = inf``, rows of nan, raw RuntimeWarnings, and advice to rerun with the default
    --eps, which it already was)."""
    import scipy.io

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("d.npz", X=rng.random((4, 3)), y=np.array([0, 1, 2, 1]))
    np.savez("wide.npz", X=rng.random((4, 60)), y=np.array([0, 1, 2, 1]))

    def weights(name: str, theta1: np.ndarray, theta2: np.ndarray) -> str:
        scipy.io.savemat(name, {"Theta1": theta1, "Theta2": theta2})
        return name

    theta1 = np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 0.5, -0.5, 1.5]])
    huge = weights("huge.mat", theta1 * 1e300, np.ones((3, 3)))  # its penalty overflows
    one = np.zeros((2, 4))
    one[0, 1] = 1.5  # lam/m * 1.5 overflows, lam/(2m) * 1.5**2 does not (m = 1)
    big = np.zeros((2, 4))
    big[0, 1] = 1.9  # lam/(2m) * (1.9 + eps)**2 overflows at eps = 1, 1.9**2 does not
    full = ["gradcheck", "--full", "--data", "d.npz"]
    end = "float64, gradcheck's precision, so no gradient can be checked; use"
    cases = [
        ([*full, "--weights", huge],
         "huge.mat: at these weights (largest |weight| 2e+300) and --lam 1 the cost J is inf: "
         f"it overflows {end} smaller weights or a smaller --lam"),
        ([*full, "--weights", weights("nan.mat", np.zeros((2, 4)), np.full((3, 3), 1e308)),
          "--lam", "0"],  # every logit +inf: softplus(z) - y z is inf - inf
         "nan.mat: at these weights (largest |weight| 1e+308) and --lam 0 the cost J is NaN: "
         f"its terms overflow {end} smaller weights"),
        # random weights: lam/(2m) times their sum of squares (about 2500 * 0.12**2 / 3)
        (["gradcheck", "--full", "--data", "wide.npz", "--hidden", "40", "--lam", "1.7e308"],
         f"at --lam 1.7e+308 the cost J is inf: it overflows {end} a smaller --lam"),
        ([*full, "--weights", weights("one.mat", one, np.zeros((3, 3))), "--examples", "1",
          "--lam", "1.5e308"],
         "one.mat: at these weights (largest |weight| 1.5) and --lam 1.5e+308 the gradient is "
         "not finite: its entries overflow float64, gradcheck's precision (the cost J = "
         "1.6875e+308 does not), so it cannot be checked; use smaller weights or a smaller "
         "--lam"),
        ([*full, "--weights", weights("big.mat", big, np.zeros((3, 3))), "--examples", "1",
          "--lam", "8e307", "--eps", "1"],
         "big.mat: at these weights (largest |weight| 1.9) and --lam 8e+307 the numerical "
         "gradient at --eps 1 is not finite: the perturbed costs overflow float64, gradcheck's "
         "precision, so it cannot be checked; rerun with the default --eps 0.0001, smaller "
         "weights or a smaller --lam"),
    ]
    for argv, message in cases:
        code, out, err = _command(argv)
        assert code == 2, (argv, out, err)
        assert err == f"jaxnn gradcheck: error: {message}", err
        assert "cost J =" not in out and "nan" not in out and "rerun" not in out, out
        assert "Traceback" not in err and "RuntimeWarning" not in err, err
    # the same huge weights at lam 0 (no penalty) have a finite cost and gradient: checked,
    # without the warnings of the penalty's squares on the way
    code, out, err = _command([*full, "--weights", huge, "--lam", "0"])
    assert code == 0 and "PASS" in out and err == "", (out, err)
