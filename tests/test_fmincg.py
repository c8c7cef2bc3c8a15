"""jaxnn.train.fmincg against the course's fmincg.m run in GNU Octave 7.3, and its compiled loop.

``tests/data/octave/regenerate_fmincg.py`` wrote the fixtures: Octave ran the course's
``fmincg.m`` (50 iterations, ``optimset('MaxIter', 50)``) on a cost function written for this
project, from the same float64 initial weights and data as here:

* ``fmincg_digits.mat``: 400-25-10 from ``init_params(0, ...)``, 50 digits of each class of
  ``mnist5k`` (stored as row indices), ``lam = 1``;
* ``fmincg_debug.mat``: the course's debug network 3-5-3, ``lam = 0`` and ``3``.

How close two correct runs can be is set by rounding, not by the algorithm: Octave against
Octave, with only the cost's sum taken in another order (``sum(sum(L, 2))`` for ``sum(L(:))``,
``J`` changed by 3e-15 relative) the digits costs differ by 2e-13 after the first iteration,
1e-10 after 12, 4e-8 after 20 and 4e-6 after 50: each line search's cubic fits divide cost
differences by small steps. jaxnn against Octave follows the same curve (2e-13, 1e-10, 4e-8,
3e-6), so the tolerances below grow with the iteration, with a 10x margin over it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

import jaxnn as nn
from jaxnn.compiling import LOOPS, jit_with_options
from jaxnn.train import Status, value_and_grad_flat
from jaxnn.train.fmincg import MAX, fmincg_init, fmincg_run, fmincg_segment, fmincg_start

RUNNING, STALLED, NONFINITE = Status.RUNNING, Status.STALLED, Status.NONFINITE

DATA = Path(__file__).resolve().parent / "data" / "octave"
# (iterations, largest relative cost difference to Octave over them)
DIGITS_TOL = [(10, 1e-9), (25, 1e-6), (50, 1e-4)]


def load(name: str) -> dict:
    r = scipy.io.loadmat(DATA / name)
    return {k: (v.ravel() if isinstance(v, np.ndarray) and k != "X" else v)
            for k, v in r.items() if not k.startswith("__")}


@lru_cache
def objective(sizes: tuple[int, ...], grad: str = "backprop"):
    """``(theta, X, Y, lam) -> (J, g)``, one object per problem (a static argument of jit)."""
    return partial(value_and_grad_flat, sizes=sizes, grad=grad)


def _run(vg, theta0, args, stop, length):
    state = fmincg_init(vg, theta0, args=args)
    return fmincg_segment(vg, state, stop, length=length, args=args)


# compiled as fit compiles its loop (jaxnn.compiling.LOOPS), so that the comparisons with Octave
# hold for what fit runs
run = jit_with_options(_run, LOOPS, static_argnames=("vg", "length"))
run_from_start = jax.jit(lambda vg, theta0, args, stop, length: fmincg_segment(
    vg, fmincg_start(theta0), stop, length=length, args=args), static_argnums=(0, 4))


def problem(X, y, K, dtype=jnp.float64):
    return jnp.asarray(X, dtype), jax.nn.one_hot(jnp.asarray(y), K, dtype=dtype)


def rel(a, b) -> np.ndarray:
    return np.abs(np.asarray(a) - b) / np.abs(b)


@pytest.fixture(scope="module")
def digits() -> dict:
    from jaxnn.datasets import mnist5k

    r = load("fmincg_digits.mat")
    X, y = mnist5k()
    rows = r["rows"]
    X, y = X[rows], y[rows]
    digest = hashlib.sha256(np.ascontiguousarray(X, np.float64).tobytes()).hexdigest()
    assert digest == r["x_sha256"][0], "mnist5k() no longer gives the digits Octave was run on"
    assert np.bincount(y).tolist() == [50] * 10
    return {**r, "X": X, "y": y}


@pytest.fixture(scope="module")
def debug() -> dict:
    return load("fmincg_debug.mat")


def test_fixtures_record_octave() -> None:
    for name in ("fmincg_digits.mat", "fmincg_debug.mat"):
        assert load(name)["octave_version"][0] == "7.3.0"


@pytest.mark.parametrize("grad", ["backprop", "autodiff"])
def test_digits_cost_per_iteration_agrees_with_octave(digits, grad) -> None:
    fX = digits["fX_0"]
    assert fX.shape == (50,) and digits["i_0"][0] == 50
    with nn.x64():
        args = (*problem(digits["X"], digits["y"], 10), 1.0)
        state, history = run(objective((400, 25, 10), grad), jnp.asarray(digits["theta0"]),
                             args, 50, 50)
        history = np.asarray(history)
    assert history.dtype == np.float64
    assert int(state.status) == RUNNING and int(state.it) == 50 and int(state.n_success) == 50
    assert int(state.n_evals) == digits["n_evals_0"][0] == 80  # every line search as Octave's
    r = rel(history, fX)
    assert r[0] < 1e-11
    for n, tol in DIGITS_TOL:
        assert r[:n].max() < tol, (n, r[:n].max())
    assert history[-1] < 0.7 * fX[0]  # it trains: 3.345 -> 0.56
    dtheta = np.linalg.norm(np.asarray(state.theta) - digits["theta_0"])
    assert dtheta / np.linalg.norm(digits["theta_0"]) < 1e-4
    assert float(state.value) == history[-1]


def test_debug_network_agrees_with_octave(debug) -> None:
    sizes = (3, 5, 3)
    with nn.x64():
        X, Y = problem(debug["X"], debug["y"], 3)
        for j, lam in enumerate(debug["lams"]):
            fX = debug[f"fX_{j}"]
            state, history = run(objective(sizes), jnp.asarray(debug["theta0"]), (X, Y, lam),
                                 50, 50)
            history = np.asarray(history)
            r = rel(history[:20], fX[:20])
            assert r[:10].max() < 1e-9 and r.max() < 1e-7, (lam, r)
            if lam == 0:  # still descending after 50 line searches, as in Octave
                assert int(state.status) == RUNNING and debug["i_0"][0] == int(state.it) == 50
                assert history[-1] < 0.6 * fX[0] and fX[-1] < 0.6 * fX[0]
            else:
                # lam 3: at the minimum to the last bits after about 25 line searches; then
                # two line searches in a row fail (costs equal to within 4 ulps: rounding
                # decides which iteration is the last) and the run stops, like Octave's
                assert len(fX) == 25 and debug["i_1"][0] == 27
                n = int(state.n_success)
                assert int(state.status) == STALLED and 23 <= n <= 27
                assert int(state.it) in (n + 2, n + 3)  # two failures in a row end it
                assert rel(history[:min(n, 25)], fX[:min(n, 25)]).max() < 1e-12
                assert np.isnan(history[n:]).all()
                np.testing.assert_allclose(np.asarray(state.theta), debug["theta_1"],
                                           rtol=0, atol=1e-6)
                assert float(state.value) == pytest.approx(fX[-1], rel=1e-14)


def test_segments_give_the_same_numbers_as_one_run(debug) -> None:
    vg = objective((3, 5, 3))
    with nn.x64():
        args = (*problem(debug["X"], debug["y"], 3), 0.0)
        one, h_one = run(vg, jnp.asarray(debug["theta0"]), args, 40, 40)
        seg = jax.jit(partial(fmincg_segment, vg, length=10))
        state = jax.jit(partial(fmincg_init, vg))(jnp.asarray(debug["theta0"]), args=args)
        parts = []
        for stop in (10, 20, 30, 40):
            state, h = seg(state, stop, args=args)
            assert bool(state.between) and int(state.it) == stop
            parts.append(np.asarray(h)[: int(np.sum(~np.isnan(np.asarray(h))))])
    np.testing.assert_array_equal(np.concatenate(parts), np.asarray(h_one))
    for a, b in zip(state, one, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_vmap_runs_each_member_as_alone(debug) -> None:
    """A batch of starts and penalties under vmap: each member's run is its own run, to the
    rounding of the batched products (members take different numbers of evaluations; one
    with a NaN start stops at once while the others go on)."""
    vg = objective((3, 5, 3))
    with nn.x64():
        X, Y = problem(debug["X"], debug["y"], 3)
        theta0 = jnp.asarray(debug["theta0"])
        thetas = jnp.stack([theta0, theta0 * 0.5, -theta0, theta0, theta0.at[0].set(jnp.nan)])
        lams = jnp.asarray([0.0, 1.0, 0.3, 3.0, 1.0])

        def one(t, lam):
            state = fmincg_init(vg, t, args=(X, Y, lam))
            return fmincg_segment(vg, state, 15, length=15, args=(X, Y, lam))

        batched, histories = jax.jit(jax.vmap(one))(thetas, lams)
        for k in range(5):
            single, history = jax.jit(one)(thetas[k], lams[k])
            for name in ("it", "n_success", "n_evals", "status"):
                assert int(getattr(batched, name)[k]) == int(getattr(single, name)), name
            np.testing.assert_allclose(histories[k], history, rtol=1e-9)
            np.testing.assert_allclose(batched.theta[k], single.theta, rtol=0, atol=1e-5)
    assert np.asarray(batched.it).tolist() == [15, 15, 15, 15, 0]
    assert np.asarray(batched.status).tolist() == [RUNNING] * 4 + [NONFINITE]
    assert len(set(np.asarray(batched.n_evals).tolist())) >= 3  # [37, 36, 30, 30, 1]


def test_float32_runs_in_float32(digits) -> None:
    args = (*problem(digits["X"], digits["y"], 10, jnp.float32), 1.0)
    theta0 = jnp.asarray(digits["theta0"], jnp.float32)
    state, history = run(objective((400, 25, 10)), theta0, args, 20, 20)
    assert state.theta.dtype == history.dtype == jnp.float32
    assert int(state.status) == RUNNING and int(state.it) == 20
    # float32 rounding is 1e-7 relative: the first iterations follow Octave's float64 run to
    # 1e-6, then the rounding grows as in float64 (2e-4 after 5, 3e-2 after 20)
    history = np.asarray(history, np.float64)
    r = rel(history, digits["fX_0"][:20])
    assert r[:3].max() < 1e-5 and r.max() < 0.1, r
    assert np.all(np.diff(history) < 0) and history[-1] < 0.5 * history[0]


def quadratic_nan_beyond(theta, bound):
    """``|theta - 2|^2``, NaN where ``theta[0] > bound``: the run heads into the NaN region."""
    J = jnp.sum((theta - 2.0) ** 2)
    bad = theta[0] > bound
    return jnp.where(bad, jnp.nan, J), jnp.where(bad, jnp.nan, 2 * (theta - 2.0))


def test_nonfinite_objective_stops_at_the_last_finite_iterate() -> None:
    with nn.x64():
        theta0 = jnp.asarray([-3.0, 1.0, 0.5])
        state, history = run(quadratic_nan_beyond, theta0, (1.0,), 50, 50)
        assert int(state.status) == NONFINITE
        assert np.isfinite(float(state.value)) and np.all(np.isfinite(np.asarray(state.theta)))
        assert float(state.theta[0]) <= 1.0
        n = int(state.n_success)
        assert np.all(np.isfinite(np.asarray(history[:n]))) and np.isnan(history[n:]).all()
        # a non-finite start: no iteration at all
        state, history = run(quadratic_nan_beyond, theta0, (-5.0,), 50, 50)
        assert int(state.status) == NONFINITE and int(state.it) == 0
        assert int(state.n_evals) == 1 and np.isnan(np.asarray(history)).all()


def test_the_first_pass_makes_the_course_start_even_where_it_is_not_finite() -> None:
    """fmincg_init (the first pass from fmincg_start): f, g at theta0, s = -g, d1 = -s's,
    z1 = 1 / (1 - d1), with a finite start and with a NaN gradient or an infinite cost."""
    theta0 = np.asarray([-3.0, 1.0, 0.5])

    def quadratic(t, bad):
        return jnp.sum((t - 2) ** 2) + bad[0], 2 * (t - 2) + bad[1:]

    with nn.x64():
        for bad in ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, np.nan, 0.0], [np.inf, 0.0, 0.0, 0.0]):
            bad = jnp.asarray(bad)
            state = jax.jit(fmincg_init, static_argnums=0)(quadratic, jnp.asarray(theta0),
                                                          args=(bad,))
            f, g = (np.asarray(v) for v in quadratic(jnp.asarray(theta0), bad))
            s, d1 = -g, -(g @ g)
            np.testing.assert_array_equal(np.asarray(state.theta), theta0)
            np.testing.assert_array_equal(float(state.value), f)
            np.testing.assert_array_equal(np.asarray(state.grad), g)
            np.testing.assert_array_equal(np.asarray(state.direction), s)
            np.testing.assert_allclose(float(state.slope), d1, rtol=1e-15)
            np.testing.assert_allclose(float(state.step), 1 / (1 - d1), rtol=1e-15)
            assert int(state.n_evals) == 1 and int(state.it) == 0 and bool(state.between)
            finite = np.isfinite(f) and np.all(np.isfinite(g))
            assert int(state.status) == (RUNNING if finite else NONFINITE)
        # a run from fmincg_start evaluates its start even when no line search is asked for
        state, history = run_from_start(quadratic, jnp.asarray(theta0), (jnp.zeros(4),), 0, 3)
        assert int(state.n_evals) == 1 and int(state.it) == 0
        assert float(state.value) == float(quadratic(jnp.asarray(theta0), jnp.zeros(4))[0])


def test_a_quadratic_is_minimized_and_evaluations_are_bounded() -> None:
    """On ``|theta - 2|^2`` the first line search lands on the minimum; ``maxiter`` line
    searches take at most ``1 + maxiter (MAX + 1)`` evaluations."""
    with nn.x64():
        theta, history, n_iter, n_evals = jax.jit(fmincg_run, static_argnums=(0, 2))(
            quadratic_nan_beyond, jnp.asarray([-3.0, 1.0, 0.5]), 5, args=(np.inf,))
    np.testing.assert_allclose(np.asarray(theta), 2.0, atol=1e-8)
    assert history.shape == (5,) and float(history[0]) < 1e-12
    assert int(n_iter) <= 5 and 1 < int(n_evals) <= 1 + int(n_iter) * (MAX + 1)


# fmincg.m's RHO, SIG and MAX, written out (not imported from jaxnn.train.fmincg)
COURSE_RHO, COURSE_SIG, COURSE_MAX = 0.01, 0.5, 20
_B, _C = 3.964, -3.952  # f(x) = -x + B x^2 + C x^3: f(0.5) = -0.003, f'(0.5) = 0


def _cubic(theta):
    x = theta[0]
    return -x + _B * x**2 + _C * x**3, jnp.stack([-1 + 2 * _B * x + 3 * _C * x**2])


def test_a_step_is_accepted_only_with_the_courses_sufficient_decrease() -> None:
    """From x = 0 (f = 0, f' = -1) fmincg.m's first trial is z1 = 1 / (1 + 1) = 0.5, where the
    slope is flat (f' = 0) but f = -0.003 lies above f(0) + RHO z1 f'(0) = -0.005: that trial
    must be refused, and the point accepted meets both Wolfe-Powell conditions."""
    with nn.x64():
        theta, history, n_iter, n_evals = jax.jit(fmincg_run, static_argnums=(0, 2))(
            _cubic, jnp.zeros(1), 1)
        x1 = float(theta[0])
        f1, g1 = (float(np.asarray(v).ravel()[0]) for v in _cubic(jnp.asarray([x1])))
    assert int(n_iter) == 1 and int(n_evals) > 2  # an interpolation after the first trial
    assert x1 != pytest.approx(0.5)
    assert f1 <= 0.0 + COURSE_RHO * x1 * (-1.0)  # f(x1) <= f(0) + RHO x1 f'(0)
    assert abs(g1) <= COURSE_SIG * 1.0  # |f'(x1)| <= SIG |f'(0)|
    assert float(history[0]) == pytest.approx(f1, rel=1e-12)


def test_a_line_search_gives_up_after_the_courses_max_evaluations() -> None:
    """On f = -x the slope never flattens: each line search extrapolates until its MAX = 20
    evaluations after the first are spent, and fails; the retry along -g fails too and the
    run stops: 1 + 2 (1 + MAX) = 43 evaluations by fmincg.m's rules."""
    with nn.x64():
        state, history = jax.jit(lambda t: fmincg_segment(
            lambda th: (-jnp.sum(th), -jnp.ones_like(th)), fmincg_start(t), 10, length=10))(
            jnp.zeros(1))
    assert int(state.status) == STALLED
    assert int(state.it) == 2 and int(state.n_success) == 0
    assert int(state.n_evals) == 1 + 2 * (1 + COURSE_MAX)
    assert float(state.theta[0]) == 0.0 and np.isnan(np.asarray(history)).all()


# --- through fit and fit_many -------------------------------------------------------------------


def test_fit_fmincg_equals_the_pure_loop_and_segments_do_not_change_it():
    from jaxnn.parallel import fit_many

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(60, 6)), rng.integers(0, 3, 60)
    p0 = nn.init_params(1, (6, 5, 3))
    with nn.x64():
        p0 = tuple(np.asarray(t, np.float64) for t in p0)
        Y = np.eye(3)[y]
        vg = partial(value_and_grad_flat, X=jnp.asarray(X), Y=jnp.asarray(Y),
                     lam=jnp.asarray(0.5), sizes=(6, 5, 3))
        theta, history, n_iter, n_evals = jit_with_options(fmincg_run, LOOPS, static_argnums=(
            0, 2))(vg, jnp.asarray(nn.ravel_params(p0)), 30)  # compiled as fit compiles it
    seen = []
    r = nn.fit(p0, X, y, 0.5, method="fmincg", maxiter=30, dtype="float64", segment=7,
               callback=lambda i, c, p: seen.append(i))
    assert r.method == "fmincg" and r.n_iter == int(n_iter) == 30 and not r.converged
    assert r.n_evals == int(n_evals) and seen == [7, 14, 21, 28, 30]
    ok = np.isfinite(np.asarray(history))
    np.testing.assert_allclose(r.history, np.asarray(history)[ok], rtol=1e-12)
    np.testing.assert_allclose(nn.ravel_params(r.params), np.asarray(theta), rtol=1e-10)
    assert r.cost == pytest.approx(float(r.history[-1]), rel=1e-12)
    with pytest.raises(ValueError, match="tol is not used by method 'fmincg'"):
        nn.fit(p0, X, y, 0.5, method="fmincg", tol=1e-3)
    # fit_many: member i is fit on network i (to rounding: batched products round differently)
    batch = nn.init_many(0, 3, (6, 5, 3))
    many = fit_many(batch, X, y, [0.0, 0.5, 2.0], method="fmincg", maxiter=20, dtype="float64")
    for i, lam in enumerate([0.0, 0.5, 2.0]):
        one = nn.fit(tuple(np.asarray(t[i]) for t in batch), X, y, lam, method="fmincg",
                     maxiter=20, dtype="float64")
        assert many.cost[i] == pytest.approx(one.cost, rel=1e-8)
        assert many.n_iter[i] == one.n_iter
