"""A run whose cost turns non-finite ends with the last finite iterate, for every method.

Whatever the method, ``fit`` returns ``diverged=True``, finite parameters, their (finite) cost
and a message that says so; never NaN parameters or scipy's bare ``ABNORMAL`` text. Real
divergence is easy only for sgd (a huge learning rate); for the other methods the objective
is made non-finite beyond a bound around the start, so the run walks into it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn as nn
from jaxnn.spec import NetSpec
from jaxnn.train import lbfgs, objective, scipy_bridge
from jaxnn.train.status import Status

SIZES = (6, 5, 3)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], 60)
    return nn.init_params(1, SIZES), X, y


def assert_last_finite(res, X, y, lam=1.0) -> None:
    assert res.diverged and not res.converged
    assert "not finite" in res.message or "non-finite" in res.message, res.message
    assert "ABNORMAL" not in res.message
    assert all(np.isfinite(t).all() for t in res.params)
    assert np.isfinite(res.cost)
    np.testing.assert_allclose(res.cost, float(nn.cost(res.params, X, y, lam)), rtol=1e-5)
    assert res.history.shape == (res.n_iter,) and np.isfinite(res.history).all()


@pytest.mark.parametrize(("batch_size", "segment"), [(None, None), (20, None), (None, 1)])
def test_sgd_that_diverges_keeps_the_parameters_of_the_last_finite_epoch(problem, batch_size,
                                                                         segment):
    """sgd at 1e4 diverges after a few epochs (8 full-batch, 2 with batches of 20); with
    ``segment=1`` every epoch is its own compiled segment, so the rewind crosses segments."""
    params, X, y = problem
    res = nn.fit(params, X, y, method="sgd", learning_rate=1e4, maxiter=50,
                 batch_size=batch_size, segment=segment)
    assert_last_finite(res, X, y)
    assert 2 <= res.n_iter < 50, res.n_iter
    # the same run stopped after exactly those epochs ends where this one kept, bit for bit
    again = nn.fit(params, X, y, method="sgd", learning_rate=1e4, maxiter=res.n_iter,
                   batch_size=batch_size)
    assert not again.diverged and again.cost == res.cost
    np.testing.assert_array_equal(again.history, res.history)
    for a, b in zip(res.params, again.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_that_stays_finite_is_not_diverged(problem):
    params, X, y = problem
    for method in ("L-BFGS-B", "lbfgs", "fmincg", "sgd"):
        assert not nn.fit(params, X, y, method=method, maxiter=5).diverged


class NanBeyond(objective.ScipyObjective):
    """The network's cost and gradient, NaN once any parameter moves ``radius`` from the start."""

    radius = 0.05
    theta0: np.ndarray | None = None

    def packed(self, theta):
        if NanBeyond.theta0 is None:
            NanBeyond.theta0 = theta.copy()
        out = super().packed(theta)
        if np.max(np.abs(theta - NanBeyond.theta0)) > self.radius:
            out = np.full_like(out, np.nan)
        return out


@pytest.mark.parametrize("method", ["CG", "BFGS", "TNC"])
def test_scipy_methods_end_at_the_last_finite_iterate(problem, monkeypatch, method):
    params, X, y = problem
    NanBeyond.theta0 = None
    monkeypatch.setattr(scipy_bridge, "ScipyObjective", NanBeyond)
    res = nn.fit(params, X, y, method=method, maxiter=200)
    assert all(np.isfinite(t).all() for t in res.params)
    assert np.isfinite(res.cost) and "ABNORMAL" not in res.message
    theta = nn.ravel_params(res.params)
    assert np.max(np.abs(theta - NanBeyond.theta0)) <= NanBeyond.radius
    assert "initial parameters" not in res.message  # the start was finite
    # scipy's own line searches may back off a NaN and stop for another reason; then the
    # result must not claim divergence
    assert res.diverged == ("not finite" in res.message)


class NanBeyondSpec(NetSpec):
    """A NetSpec whose gradient is NaN (its cost stays finite) beyond
    ``|theta - theta0| > 0.05``: the zoom line search backs off a NaN value, not a NaN slope."""

    def value_and_grad(self, theta, X, Y, lam):
        J, g = super().value_and_grad(theta, X, Y, lam)
        theta0 = jnp.asarray(nn.ravel_params(nn.init_params(1, SIZES)))
        far = jnp.max(jnp.abs(theta - theta0)) > 0.05
        return J, jnp.where(far, jnp.nan, g)


def test_the_lbfgs_loop_never_ends_on_a_nonfinite_iterate(problem):
    params, X, y = problem
    spec = NanBeyondSpec(SIZES, "sigmoid", "sigmoid", "autodiff")
    theta0 = jnp.asarray(nn.ravel_params(params))
    Y = jax.nn.one_hot(y, SIZES[-1], dtype=jnp.float32)
    carry, history = jax.jit(lbfgs.lbfgs_segment, static_argnames=("spec", "length"))(
        lbfgs.lbfgs_start(theta0), X, Y, 1.0, 200, spec=spec, length=200)
    # the zoom line search backs off non-finite trials (here it stalls); the loop's own
    # guard (a non-finite accepted point is dropped) is the second line of defence
    assert int(carry.status) in (Status.STALLED, Status.NONFINITE)
    theta = np.asarray(carry.theta)
    assert np.all(np.isfinite(theta)) and np.max(np.abs(theta - np.asarray(theta0))) <= 0.05
    assert np.isfinite(float(carry.value))
    np.testing.assert_allclose(float(carry.value), float(spec.cost(carry.theta, X, Y, 1.0)),
                               rtol=1e-6)
    n = int(carry.it)
    assert np.isfinite(np.asarray(history[:n])).all() and np.isnan(np.asarray(history[n:])).all()


@pytest.mark.parametrize("method", ["L-BFGS-B", "lbfgs", "fmincg", "sgd"])
def test_a_cost_not_finite_at_the_start_is_said_so(problem, method):
    """Weights of 1e20 are float32 numbers, but their squares (the penalty) are not."""
    params, X, y = problem
    big = tuple(np.asarray(t) * 1e20 for t in params)
    res = nn.fit(big, X, y, method=method, maxiter=5)
    assert res.diverged and res.n_iter == 0 and not res.converged
    assert "at the initial parameters" in res.message, res.message
    assert res.cost == np.inf and res.history.shape == (0,)
    for a, b in zip(res.params, big, strict=True):
        np.testing.assert_array_equal(a, b.astype(np.float32))


def test_fit_many_members_that_diverge_keep_their_last_finite_parameters(problem):
    """sgd at 1e6: the member without penalty runs all 20 epochs, the penalized ones diverge
    after a few (each member has its own lam)."""
    from jaxnn.parallel import fit_many, init_many

    _, X, y = problem
    batch = init_many(0, 3, SIZES)
    res = fit_many(batch, X, y, [0.0, 1.0, 3.0], method="sgd", learning_rate=1e6, maxiter=20)
    diverged = [b for b in range(3) if res.n_iter[b] < 20]
    assert res.n_iter[0] == 20 and "finished" in res.messages[0]
    assert res.diverged.tolist() == [b in diverged for b in range(3)]
    assert diverged and all(0 < res.n_iter[b] for b in diverged)
    for b in diverged:
        member = tuple(t[b] for t in res.params)
        n = int(res.n_iter[b])
        assert "non-finite" in res.messages[b] and f"after epoch {n}" in res.messages[b]
        assert all(np.isfinite(t).all() for t in member)
        assert np.isfinite(res.history[b, :n]).all() and np.isnan(res.history[b, n:]).all()
        # the same member alone, stopped after its n epochs, ends where the batch kept it
        alone = nn.fit(tuple(t[b] for t in batch), X, y, lam=float(res.lams[b]),
                       method="sgd", learning_rate=1e6, maxiter=n)
        assert not alone.diverged
        for a, c in zip(member, alone.params, strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-3 * np.abs(c).max())


def test_a_last_epoch_whose_cost_is_not_finite_is_dropped(problem):
    """sgd at 1e30 for one epoch: the step lands where the cost overflows; the loop saw only
    the finite cost before it. fit goes one epoch back, to the start; fit_many says so."""
    from jaxnn.parallel import fit_many, init_many

    params, X, y = problem
    res = nn.fit(params, X, y, method="sgd", learning_rate=1e30, maxiter=1)
    assert_last_finite(res, X, y)
    assert res.n_iter == 0 and "params are the initial ones" in res.message
    assert "initial parameters" not in res.message
    for a, b in zip(res.params, params, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    many = fit_many(init_many(0, 2, SIZES), X, y, 1.0, method="sgd", learning_rate=1e30,
                    maxiter=1)
    assert not np.isfinite(many.cost).any() and many.diverged.all()
    assert all("the cost at the last parameters is not finite" in m for m in many.messages)


@pytest.mark.parametrize(("method", "lam"), [("L-BFGS-B", 1e30), ("lbfgs", 1e30),
                                             ("fmincg", 1e30), ("fmincg", 1e20)])
def test_a_gradient_too_large_for_float32_is_named(problem, method, lam):
    """``lam = 1e30``: the cost and the gradient are finite float32 numbers, but the line
    searches' products of them (``g'g``, the slopes, ``fmincg``'s cubic fits) overflow (with
    ``lam = 1e20``, ``g'g`` is finite and only ``fmincg``'s cubic fits overflow). The run
    stops near its start without claiming convergence or divergence, and names the dtype; in
    float64 the same run goes on (``fmincg`` stalls there too, for another reason: its first
    step, ``1 / (1 + g'g)``, moves the parameters by less than their rounding)."""
    p0, X, y = problem
    p32 = tuple(np.asarray(t, np.float32) for t in p0)
    start = float(nn.cost(p32, X, y, lam))
    r = nn.fit(p32, X, y, lam, method=method, maxiter=30)
    assert not r.converged and not r.diverged and r.n_iter <= 2
    assert "too large for float32" in r.message and "float64" in r.message, r.message
    assert all(np.isfinite(t).all() for t in r.params) and np.isfinite(r.cost)
    assert r.cost <= start * (1 + 1e-6)
    r64 = nn.fit(p0, X, y, lam, method=method, dtype="float64", maxiter=30)
    assert not r64.diverged and "too large" not in r64.message
    if method != "fmincg":
        assert r64.cost < 1e-3 * start


@pytest.mark.parametrize("method", ["L-BFGS-B", "lbfgs", "fmincg"])
def test_a_gradient_too_large_for_float64_is_named_without_advising_float64(problem, method):
    p0, X, y = problem
    r = nn.fit(p0, X, y, 1e160, method=method, dtype="float64", maxiter=30)
    assert not r.converged and not r.diverged and r.n_iter <= 2
    assert "too large for float64" in r.message and "dtype=" not in r.message, r.message
    assert "smaller initial weights or lam" in r.message


@pytest.mark.parametrize("method", ["lbfgs", "fmincg"])
def test_fit_many_names_a_gradient_too_large_for_float32(problem, method):
    """The member with ``lam = 1e30`` stops as ``fit`` does (see the test above); its
    neighbour with ``lam = 1`` runs on."""
    from jaxnn.parallel import fit_many, init_many

    _, X, y = problem
    batch = tuple(np.asarray(t, np.float32) for t in init_many(0, 2, SIZES))
    res = fit_many(batch, X, y, [1.0, 1e30], method=method, maxiter=20)
    assert res.n_iter[0] == 20 and "too large" not in res.messages[0]
    assert "too large for float32" in res.messages[1] and res.n_iter[1] <= 2
    if method == "lbfgs":  # stopped at its first evaluation, as fit stops it
        assert res.n_evals[1] == 1 == nn.fit(tuple(t[1] for t in batch), X, y, 1e30,
                                             method="lbfgs", maxiter=20).n_evals
    assert not res.converged[1] and not res.diverged[1]
    assert all(np.isfinite(t[1]).all() for t in res.params)
