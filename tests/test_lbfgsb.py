"""``fit``'s default, L-BFGS-B compiled (:mod:`jaxnn.train.lbfgsb`), against scipy's own.

scipy's ``minimize(method="L-BFGS-B")`` runs beside it on the independent numpy reference of the
same network (float64); its ``dcsrch`` (``scipy.optimize._dcsrch``, the Python port scipy's
``line_search_wolfe1`` uses) runs beside the compiled line search, trial by trial.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from reference_numpy import cost_and_grad, one_hot

import jaxnn as nn
from jaxnn.compiling import LOOPS
from jaxnn.memory import param_count
from jaxnn.spec import NetSpec
from jaxnn.train import fit, lbfgsb

SIZES = (4, 5, 3)
# L-BFGS-B's line search (scipy's lnsrlb): ftol, gtol, xtol, the largest step, written out here
# so that a change of jaxnn's constants fails the comparison with scipy's search
LNSRLB_FTOL, LNSRLB_GTOL, LNSRLB_XTOL, LNSRLB_STPMAX = 1e-3, 0.9, 0.1, 1e10


def _problem(m=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, SIZES[0]))
    y = np.argmax(X @ rng.normal(size=(SIZES[0], SIZES[-1])), axis=1)
    with nn.x64():
        p0 = tuple(np.asarray(t) for t in nn.init_params(seed, SIZES, dtype=np.float64))
    return p0, X, y


def _flat(params) -> np.ndarray:
    return np.concatenate([np.asarray(t, np.float64).ravel(order="F") for t in params])


def _numpy_objective(X, y, lam=1.0):
    """``theta -> (J, g)`` by the numpy reference, Octave-order ``theta``."""
    Y = one_hot(y, SIZES[-1])

    def f(theta):
        J, g = cost_and_grad(NetSpec(SIZES).unravel(theta), X, Y, lam)
        return J, _flat(g)
    return f


def _scipy_and_fit(p0, X, y, **options):
    """scipy's L-BFGS-B on the numpy objective and ``fit``'s default in float64, from ``p0``:
    ``(scipy's result, its iterates), (the FitResult, its iterates)``."""
    ref_xs, xs = [], []

    def scipy_keep(intermediate_result):  # scipy reads the parameter's name
        ref_xs.append(np.array(intermediate_result.x))

    ref = scipy.optimize.minimize(_numpy_objective(X, y), _flat(p0), jac=True,
                                  method="L-BFGS-B", callback=scipy_keep, options=options)
    options = dict(options)
    maxiter = options.pop("maxiter")
    r = fit(p0, X, y, 1.0, dtype="float64", maxiter=maxiter, options=options or None,
            callback=lambda it, cost, params: xs.append(_flat(params)), segment=1)
    return (ref, ref_xs), (r, xs)


@pytest.mark.parametrize("options", [
    {"maxiter": 30},  # the default tolerances
    {"maxiter": 25, "ftol": 0, "gtol": 0, "maxcor": 3},  # a full memory, shifted
    {"maxiter": 15, "ftol": 0, "gtol": 0, "maxls": 1},  # failed line searches: restarts
    {"maxiter": 200, "maxfun": 12},  # the evaluation limit
    {"maxiter": 500, "ftol": 1e-6, "gtol": 0},  # converged by ftol
])
def test_follows_scipy_iterate_by_iterate(options):
    """The same iterates to the rounding of the vector operations (measured: 1e-13 relative),
    the same numbers of iterations and evaluations, the same message (the callback after every
    iteration with ``segment=1``)."""
    p0, X, y = _problem()
    (ref, ref_xs), (r, xs) = _scipy_and_fit(p0, X, y, **options)
    assert (r.n_iter, r.n_evals, r.message, r.converged) == (
        ref.nit, ref.nfev, ref.message, ref.success)
    assert len(xs) == len(ref_xs) == r.n_iter == r.history.shape[0]
    for a, b in zip(xs, ref_xs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.linalg.norm(b))
    assert r.cost == pytest.approx(ref.fun, rel=1e-12)
    f = _numpy_objective(X, y)
    np.testing.assert_allclose(r.history, [f(x)[0] for x in ref_xs], rtol=1e-12)


def test_the_ftol_stop_matches_scipys_where_the_cost_is_below_one():
    """scipy's relative reduction divides by max(|f_k|, |f_k+1|, 1): with lam = 0 on separable
    data the cost falls far below 1, and that floor decides when ftol stops the run."""
    p0, X, y = _problem()
    opts = {"ftol": 1e-4, "gtol": 0}
    ref = scipy.optimize.minimize(_numpy_objective(X, y, lam=0.0), _flat(p0), jac=True,
                                  method="L-BFGS-B", options={"maxiter": 500, **opts})
    r = fit(p0, X, y, 0.0, dtype="float64", maxiter=500, options=opts)
    assert ref.fun < 0.5 and ref.message == lbfgsb.MESSAGES[lbfgsb.Stop.FTOL]
    assert (r.n_iter, r.n_evals, r.message) == (ref.nit, ref.nfev, ref.message)
    assert r.cost == pytest.approx(ref.fun, rel=1e-9)


def test_segments_change_nothing():
    p0, X, y = _problem()
    runs = [fit(p0, X, y, 1.0, dtype="float64", maxiter=40, segment=s) for s in (1, 7, 40)]
    for r in runs[1:]:
        assert (r.n_iter, r.n_evals, r.message) == (runs[0].n_iter, runs[0].n_evals,
                                                    runs[0].message)
        np.testing.assert_array_equal(r.history, runs[0].history)
        for a, b in zip(r.params, runs[0].params, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_memory_is_written_in_place():
    """The compiled segment's temporaries grow by a few weight-sized vectors per weight: the
    ring of pairs (20 vectors) is not copied in and out of the loop's ``lax.cond`` at each
    iteration (26-29 vectors when it was, measured with ``memory_analysis``; 6 now). Two sizes,
    so that a backend's fixed workspace does not count; ``fit``'s compiler options on CPU."""
    options = LOOPS if jax.default_backend() == "cpu" else None
    X, Y = jnp.zeros((2, 4), jnp.float32), jnp.zeros((2, 3), jnp.float32)
    limits = lbfgsb.Limits(*np.int32([400, 15000, 20]), *np.float32([0, 0]))
    segment = jax.jit(lbfgsb.lbfgsb_segment, static_argnames=("spec", "length"),
                      compiler_options=options)
    sizes = [(4, h, 3) for h in (2000, 4000)]
    memory = [segment.lower(lbfgsb.lbfgsb_start(jnp.zeros(param_count(s), jnp.float32)), X, Y,
                            np.float32(1), np.int32(400), limits,
                            spec=NetSpec(s, "sigmoid", "sigmoid", "backprop"),
                            length=25).compile().memory_analysis() for s in sizes]
    if memory[0] is None:
        pytest.skip("this jaxlib gives no memory analysis")
    weights = 4 * (param_count(sizes[1]) - param_count(sizes[0]))  # bytes of the added weights
    # the carry (theta, grad, d and the 20 rows) is the arguments
    assert memory[1].argument_size_in_bytes - memory[0].argument_size_in_bytes > 22 * weights
    assert memory[1].temp_size_in_bytes - memory[0].temp_size_in_bytes < 10 * weights


def test_a_start_that_is_already_a_minimum_takes_no_step():
    p0, X, y = _problem()
    x = scipy.optimize.minimize(_numpy_objective(X, y), _flat(p0), jac=True, method="L-BFGS-B",
                                options={"maxiter": 2000, "ftol": 0, "gtol": 1e-8}).x
    start = NetSpec(SIZES).unravel(x)
    for gtol in (1e-3, 1.0):
        (ref, _), (r, _) = _scipy_and_fit(start, X, y, maxiter=100, gtol=gtol)
        assert r.n_iter == ref.nit == 0 and r.n_evals == ref.nfev == 1 and r.converged
        assert r.message == ref.message == "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL"
        np.testing.assert_array_equal(_flat(r.params), x)


def _scipy_dcsrch_trials(phi, stp):
    """The trials of scipy's dcsrch (L-BFGS-B's constants) from step 0 with first trial
    ``stp``: ``(trials, task)``."""
    from scipy.optimize._dcsrch import DCSRCH  # private, hence imported here

    search = DCSRCH(phi, None, LNSRLB_FTOL, LNSRLB_GTOL, LNSRLB_XTOL, 0.0, LNSRLB_STPMAX)
    f, g = phi(0.0)
    trials, task = [], b"START"
    while True:
        stp, f, g, task = search._iterate(stp, f, g, task)
        if task[:2] != b"FG":
            return trials, task
        trials.append(stp)
        f, g = phi(stp)


def _our_trials(phi, stp, maxls=30):
    f0, g0 = phi(0.0)
    step = jax.jit(lbfgsb.dcsrch_step)
    s = lbfgsb.dcsrch_start(jnp.float64(f0), jnp.float64(g0), jnp.float64(stp))
    trials = []
    for _ in range(maxls):
        trials.append(float(s.stp))
        ended, s = step(s, *map(jnp.float64, phi(float(s.stp))))
        if ended:
            return trials, float(s.stp)
    raise AssertionError("no end")


@pytest.mark.parametrize("phi, stp", [
    # a quartic with its minimum at t = 2 + 0.5 ** (1/3): extrapolation, then a bracket
    (lambda t: ((t - 2.0) ** 4 / 4 - 0.5 * t, (t - 2.0) ** 3 - 0.5), 1e-3),
    (lambda t: ((t - 2.0) ** 4 / 4 - 0.5 * t, (t - 2.0) ** 3 - 0.5), 7.0),  # too far: back
    # a steep well (the modified function psi, stage 1), and a slope that barely changes
    (lambda t: (-t * np.exp(-((t - 0.3) ** 2) * 40), (-1 + 80 * t * (t - 0.3))
                * np.exp(-((t - 0.3) ** 2) * 40)), 1.0),
    (lambda t: (np.log(np.cosh(t - 5.0)) - 0.999 * t, np.tanh(t - 5.0) - 0.999), 0.01),
    (lambda t: (np.cos(t) - 1.0 - 0.1 * t, -np.sin(t) - 0.1), 0.1),  # steepening: extrapolate
])
def test_line_search_is_scipys_dcsrch(phi, stp):
    """The compiled dcsrch tries scipy's steps, trial by trial, and ends where it ends. The
    five functions take dcstep through each of its five cases."""
    with nn.x64():
        ours, end = _our_trials(phi, stp)
    ref, task = _scipy_dcsrch_trials(phi, stp)
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=0)
    assert end == ours[-1]
    f, g = phi(end)
    f0, g0 = phi(0.0)
    if task[:4] == b"CONV":  # sufficient decrease and curvature
        assert f <= f0 + LNSRLB_FTOL * end * g0 and abs(g) <= LNSRLB_GTOL * abs(g0)


RADIUS = 2.0  # the first trial moves theta by up to 1 (its length is 1)


class _NanBeyond(NetSpec):
    """The network's cost and gradient, NaN once ``theta`` moves ``RADIUS`` from ``theta0``."""

    def value_and_grad(self, theta, X, Y, lam):
        J, g = super().value_and_grad(theta, X, Y, lam)
        theta0 = jnp.asarray(nn.ravel_params(nn.init_params(0, SIZES)))
        far = jnp.max(jnp.abs(theta - theta0)) > RADIUS
        return jnp.where(far, jnp.nan, J), jnp.where(far, jnp.nan, g)


def test_a_nonfinite_trial_ends_the_run_at_the_last_iterate():
    _, X, y = _problem()
    spec = _NanBeyond(SIZES)
    theta0 = jnp.asarray(nn.ravel_params(nn.init_params(0, SIZES)))
    X, Y = jnp.asarray(X, jnp.float32), jax.nn.one_hot(y, SIZES[-1], dtype=jnp.float32)
    limits = lbfgsb.Limits(np.int32(200), np.int32(15000), np.int32(20),
                           np.float32(lbfgsb.FTOL), np.float32(lbfgsb.GTOL))
    carry, history = jax.jit(lbfgsb.lbfgsb_segment, static_argnames=("spec", "length"))(
        lbfgsb.lbfgsb_start(theta0), X, Y, 1.0, 200, limits, spec=spec, length=200)
    assert int(carry.stop) == lbfgsb.Stop.NONFINITE and 0 < int(carry.it) < 200
    theta = np.asarray(carry.theta)
    assert np.max(np.abs(theta - np.asarray(theta0))) <= RADIUS
    assert float(carry.value) == pytest.approx(float(NetSpec(SIZES).cost(carry.theta, X, Y, 1.0)),
                                               rel=1e-6)
    assert float(carry.value) == history[int(carry.it) - 1]
    assert np.all(np.isnan(np.asarray(history)[int(carry.it):]))



# sum_i b_i |x_i - c_i|: the gradient is constant between kinks, so a line search that ends by
# its warning (the bracket narrower than xtol) at a trial on the side it started from has s'y = 0
L1_B = np.array([0.5, 0.5, 0.5, 1.5, 2.5, 1.2])
L1_C = np.array([0.5, -0.4, 0.1, 0.3, -1.7, 2.9])


class _L1(NetSpec):
    """``sum(L1_B |theta - L1_C|)`` in place of the network."""

    def value_and_grad(self, theta, X, Y, lam):
        return jnp.sum(L1_B * jnp.abs(theta - L1_C)), L1_B * jnp.sign(theta - L1_C)


def test_a_skipped_update_keeps_the_memory_as_scipy_does():
    """A pair whose curvature s'y is too small is not stored: the ring keeps its pairs and its
    oldest slot (a head moved anyway reorders the pairs and the next direction parts from
    scipy's). Iteration by iteration (a segment of one), with a full memory of two pairs."""
    x0 = np.array([1.06305179, 1.24915961, -0.82965515, -2.06915869, 2.67496745, -0.31387936])
    maxiter, maxcor = 12, 2
    ref = []
    scipy.optimize.minimize(
        lambda x: (np.sum(L1_B * np.abs(x - L1_C)), L1_B * np.sign(x - L1_C)), x0, jac=True,
        method="L-BFGS-B", callback=lambda intermediate_result: ref.append(
            np.array(intermediate_result.x)),
        options={"maxiter": maxiter, "maxcor": maxcor, "ftol": 0, "gtol": 0})
    with nn.x64():
        carry = lbfgsb.lbfgsb_start(jnp.asarray(x0), maxcor)
        limits = lbfgsb.Limits(np.int32(maxiter), np.int32(15000), np.int32(20), np.float64(0),
                               np.float64(0))
        segment = jax.jit(lbfgsb.lbfgsb_segment, static_argnames=("spec", "length"))
        xs, memory = [], []
        for k in range(maxiter):
            before = int(carry.head), int(carry.n_pairs)
            carry, _ = segment(carry, jnp.zeros((1, 4)), jnp.zeros((1, 3)), 0.0, k + 1, limits,
                               spec=_L1(SIZES), length=1)
            xs.append(np.asarray(carry.theta))
            memory.append((before, (int(carry.head), int(carry.n_pairs))))
    assert len(xs) == len(ref) == maxiter
    for a, b in zip(xs, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.linalg.norm(b))
    # the premise: a full memory skipped an update (an iteration done, the ring unmoved), and
    # pairs were stored after it
    skipped = [k for k, (b, a) in enumerate(memory) if b == a and b[1] == maxcor]
    assert skipped and any(b[0] != a[0] for b, a in memory[skipped[0] + 1:])


class _Relu(NetSpec):
    """``sum(relu(theta))``: flat (a zero gradient) once every entry is negative."""

    def value_and_grad(self, theta, X, Y, lam):
        return jnp.sum(jax.nn.relu(theta)), (theta > 0).astype(theta.dtype)


@pytest.mark.parametrize("maxiter", [1, 5])
def test_a_stationary_iterate_at_maxiter_is_the_iteration_limit(maxiter):
    """scipy tests maxiter first: at the limit a zero gradient is not a failed direction."""
    with nn.x64():
        limits = lbfgsb.Limits(np.int32(maxiter), np.int32(15000), np.int32(20),
                               np.float64(lbfgsb.FTOL), np.float64(lbfgsb.GTOL))
        carry, _ = jax.jit(lbfgsb.lbfgsb_segment, static_argnames=("spec", "length"))(
            lbfgsb.lbfgsb_start(jnp.asarray([0.5])), jnp.zeros((1, 4)), jnp.zeros((1, 3)), 0.0,
            maxiter, limits, spec=_Relu(SIZES), length=5)
    ref = scipy.optimize.minimize(lambda x: (np.sum(np.maximum(x, 0)), (x > 0) * 1.0), [0.5],
                                  jac=True, method="L-BFGS-B", options={"maxiter": maxiter})
    assert (int(carry.it), int(carry.n_evals)) == (ref.nit, ref.nfev) == (1, 2)
    expected = {1: lbfgsb.Stop.RUNNING, 5: lbfgsb.Stop.GTOL}[maxiter]
    assert int(carry.stop) == expected
    assert ref.message == (lbfgsb.MAXITER_MESSAGE if maxiter == 1 else
                           lbfgsb.MESSAGES[lbfgsb.Stop.GTOL])


def test_a_slope_that_overflows_float32_stops_the_run_without_claiming_convergence():
    """``lam = 1e30``: the cost and gradient are finite float32 numbers, but ``g'g`` is not,
    so no line search can start; scipy's float64 scalars would go on."""
    p0, X, y = _problem()
    p32 = tuple(np.asarray(t, np.float32) for t in p0)
    r = fit(p32, X, y, 1e30)
    assert not r.converged and not r.diverged and r.n_iter == 0 and r.n_evals == 1
    assert "too large for float32" in r.message and "float64" in r.message
    for a, b in zip(r.params, p32, strict=True):
        np.testing.assert_array_equal(a, b)
    r64 = fit(p0, X, y, 1e30, dtype="float64", maxiter=50)  # float64 goes on
    assert r64.n_iter > 0 and r64.cost < 1e-3 * r.cost
