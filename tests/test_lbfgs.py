"""The compiled L-BFGS loop (jaxnn.train.lbfgs) against optax's own L-BFGS, step by step.

The reference is ``optax.lbfgs`` with ``optax.scale_by_zoom_linesearch``, driven one update at a
time from Python, with the stopping rules of ``fit(method="lbfgs")``: what the method ran before
the loop was rewritten to evaluate the objective once per pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn as nn
from jaxnn.precision import x64_enabled
from jaxnn.spec import NetSpec
from jaxnn.train import lbfgs
from jaxnn.train.status import Status


def _problem(sizes, m, seed, scale, dtype):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, sizes[0]))
    y = np.argmax(X @ rng.normal(size=(sizes[0], sizes[-1])), axis=1)
    theta0 = scale * nn.ravel_params(nn.init_params(seed, sizes, dtype=dtype))
    Y = jax.nn.one_hot(y, sizes[-1], dtype=dtype)
    return jnp.asarray(theta0, dtype), jnp.asarray(X, dtype), Y


def _optax_run(spec, theta, X, Y, lam, maxiter, tol, memory_size, max_ls):
    """optax's L-BFGS: ``(costs after each iteration, theta, evaluations, status)``."""
    opt = optax.lbfgs(memory_size=memory_size, linesearch=optax.scale_by_zoom_linesearch(
        max_linesearch_steps=max_ls, initial_guess_strategy="one"))
    cost = spec.differentiable_cost()

    @jax.jit
    def step(theta, value, g, state):
        updates, state = opt.update(g, state, theta, value=value, grad=g,
                                    value_fn=lambda t: cost(t, X, Y, lam))
        return (optax.apply_updates(theta, updates), optax.tree.get(state, "value"),
                optax.tree.get(state, "grad"), state,
                optax.tree.get(state, "num_linesearch_steps"))

    value, g = jax.value_and_grad(cost)(theta, X, Y, lam)
    state, evals, history, status = opt.init(theta), 1, [], Status.RUNNING
    if np.max(np.abs(g)) <= tol:
        return np.asarray(history), theta, evals, Status.CONVERGED
    while len(history) < maxiter:
        new, value_new, g_new, state, steps = step(theta, value, g, state)
        evals += int(steps)
        if not (np.isfinite(float(value_new)) and np.all(np.isfinite(g_new))):
            status = Status.NONFINITE
            break
        stalled = bool(jnp.all(new == theta))
        theta, value, g = new, value_new, g_new
        history.append(float(value))
        if np.max(np.abs(g)) <= tol:
            status = Status.CONVERGED
            break
        if stalled:
            status = Status.STALLED
            break
    return np.asarray(history), theta, evals, status


CASES = {
    # the course's shape of problem: mostly steps of 1, some zooming
    "default": dict(sizes=(6, 5, 3), m=60, seed=0, scale=1.0, lam=1.0, options={}),
    # no penalty on separable data: the curvature flattens and line searches bracket and zoom
    "zooming": dict(sizes=(6, 5, 3), m=60, seed=1, scale=0.1, lam=0.0, options={}),
    # the memory wraps around after 3 pairs
    "short memory": dict(sizes=(5, 7, 4), m=50, seed=2, scale=3.0, lam=0.0,
                         options={"memory_size": 3}),
    # two trials per line search: failed searches fall back to their safe step
    "two trials": dict(sizes=(6, 5, 3), m=60, seed=3, scale=8.0, lam=0.01,
                       options={"max_linesearch_steps": 2}),
    # one trial: every step that misses the conditions is a safe step or the trial itself
    "one trial": dict(sizes=(6, 5, 3), m=60, seed=4, scale=1.0, lam=0.1,
                      options={"max_linesearch_steps": 1, "memory_size": 1}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_loop_makes_optax_lbfgs_iterates(case):
    c = CASES[case]
    spec = NetSpec(c["sizes"], "sigmoid", "sigmoid", "backprop")
    maxiter, tol = 40, 1e-5
    memory_size = c["options"].get("memory_size", 10)
    max_ls = c["options"].get("max_linesearch_steps", 20)
    with jax.enable_x64(True):
        theta0, X, Y = _problem(c["sizes"], c["m"], c["seed"], c["scale"], np.float64)
        assert x64_enabled() and theta0.dtype == jnp.float64
        ref_hist, ref_theta, ref_evals, ref_status = _optax_run(
            spec, theta0, X, Y, c["lam"], maxiter, tol, memory_size, max_ls)
        carry, hist = jax.jit(lbfgs.lbfgs_segment, static_argnames=(
            "spec", "length", "tol", "max_linesearch_steps"))(
            lbfgs.lbfgs_start(theta0, memory_size), X, Y, c["lam"], maxiter, spec=spec,
            length=maxiter, tol=tol, max_linesearch_steps=max_ls)
        n = int(carry.it)
        assert n == len(ref_hist) > 10
        assert int(carry.n_evals) == ref_evals and int(carry.status) == ref_status
        # the same operations, compiled into other programs: equal or within 1e-16 in the first
        # iterations, then parting slowly as two roundings of one run do (up to 1e-11 at 40 here)
        np.testing.assert_allclose(np.asarray(hist[:n]), ref_hist, rtol=1e-7, atol=1e-12)
        assert np.all(np.isnan(np.asarray(hist[n:])))
        np.testing.assert_allclose(np.asarray(carry.theta), np.asarray(ref_theta),
                                   rtol=1e-6, atol=1e-8)
        if case == "zooming":  # the line search did more than accept its first trial
            assert ref_evals > n + 20
        if case == "two trials":
            assert ref_evals <= 2 * n + 1


def test_cutting_a_run_into_segments_changes_nothing():
    spec = NetSpec((6, 5, 3), "sigmoid", "sigmoid", "backprop")
    theta0, X, Y = _problem((6, 5, 3), 60, 1, 8.0, np.float32)
    seg = jax.jit(lbfgs.lbfgs_segment, static_argnames=("spec", "length"))
    whole, hist = seg(lbfgs.lbfgs_start(theta0), X, Y, 0.1, 30, spec=spec, length=30)
    carry, parts = lbfgs.lbfgs_start(theta0), []
    for stop in (7, 14, 21, 28, 30):
        carry, h = seg(carry, X, Y, 0.1, stop, spec=spec, length=7)
        parts.append(np.asarray(h)[~np.isnan(np.asarray(h))])
        assert int(carry.it) == stop and int(carry.ls.count) == 0  # between two line searches
    np.testing.assert_array_equal(np.concatenate(parts), np.asarray(hist))
    np.testing.assert_array_equal(np.asarray(carry.theta), np.asarray(whole.theta))
    assert int(carry.n_evals) == int(whole.n_evals) > 31


def test_a_start_that_is_already_a_minimum_takes_no_step():
    spec = NetSpec((6, 5, 3), "sigmoid", "sigmoid", "backprop")
    theta0, X, Y = _problem((6, 5, 3), 60, 0, 1.0, np.float32)
    carry, hist = lbfgs.lbfgs_segment(lbfgs.lbfgs_start(theta0), X, Y, 1.0, 10, spec=spec,
                                      length=10, tol=1e3)
    assert int(carry.status) == Status.CONVERGED and int(carry.it) == 0
    assert int(carry.n_evals) == 1 and np.all(np.isnan(np.asarray(hist)))
    np.testing.assert_array_equal(np.asarray(carry.theta), np.asarray(theta0))
    J, _ = spec.value_and_grad(theta0, X, Y, 1.0)
    assert float(carry.value) == float(J)


@pytest.mark.parametrize("max_ls", [1, 2, 20])
def test_a_start_that_is_not_finite_stops_before_any_step(max_ls):
    """Weights of 1e20 are float32 numbers, but the penalty (their squares) is not: the run
    stops at its first evaluation, whatever its line search would do with one trial."""
    spec = NetSpec((6, 5, 3), "sigmoid", "sigmoid", "backprop")
    theta0, X, Y = _problem((6, 5, 3), 60, 0, 1e20, np.float32)
    carry, hist = lbfgs.lbfgs_segment(lbfgs.lbfgs_start(theta0), X, Y, 1.0, 10, spec=spec,
                                      length=10, max_linesearch_steps=max_ls)
    assert int(carry.status) == Status.NONFINITE and int(carry.it) == 0
    assert int(carry.n_evals) == 1 and not np.isfinite(float(carry.value))
    np.testing.assert_array_equal(np.asarray(carry.theta), np.asarray(theta0))
    assert np.all(np.isnan(np.asarray(hist)))
    r = nn.fit(nn.unravel_params(theta0, (6, 5, 3)), np.asarray(X), np.argmax(Y, axis=1),
               method="lbfgs", maxiter=5, options={"max_linesearch_steps": max_ls})
    assert r.diverged and r.n_iter == 0 and "at the initial parameters" in r.message


def _dense_direction(g, S, Yd, rho, gamma, oldest):
    """``-H g`` with ``H`` built as a matrix: ``gamma I``, then each stored pair (oldest first)
    by the BFGS update ``(I - rho s y') H (I - rho y s') + rho s s'``."""
    n, M = g.shape[0], S.shape[0]
    H = gamma * np.eye(n)
    for k in range(M):
        i = (oldest + k) % M
        if rho[i] != 0:
            V = np.eye(n) - rho[i] * np.outer(Yd[i], S[i])
            H = V.T @ H @ V + rho[i] * np.outer(S[i], S[i])
    return -H @ g


def test_the_two_loop_direction_is_the_bfgs_matrix_times_the_gradient():
    """The recursion over a ring whose oldest pair is in slot 3 and whose slot 1 is forgotten
    (rho = 0) while its rows hold inf and NaN: the matrix's direction, finite; with every slot
    skipped, exactly ``-gamma g``, signed zeros included."""
    rng = np.random.default_rng(7)
    n, M, oldest, gamma = 9, 5, 3, 0.7
    with jax.enable_x64(True):
        S = rng.normal(size=(M, n))
        Yd = S @ np.diag(rng.uniform(0.5, 2.0, n)) + 0.1 * rng.normal(size=(M, n))
        rho = 1.0 / np.sum(S * Yd, axis=1)
        assert np.all(rho > 0)
        rho[1], S[1, 2], Yd[1, 4], Yd[1, 5] = 0.0, np.inf, np.nan, -np.inf
        g = rng.normal(size=n)
        d = np.asarray(jax.jit(lbfgs.two_loop_direction)(g, S, Yd, rho, gamma, oldest))
        assert np.all(np.isfinite(d))
        np.testing.assert_allclose(d, _dense_direction(g, S, Yd, rho, gamma, oldest),
                                   rtol=1e-12, atol=1e-14)
        g[[0, 3]] = -0.0, 0.0
        d = np.asarray(jax.jit(lbfgs.two_loop_direction)(g, S, Yd, np.zeros(M), gamma, oldest))
        np.testing.assert_array_equal(d, -gamma * g)
        assert np.signbit(d[0]) == np.signbit(-gamma * g[0]) != np.signbit(d[3])
