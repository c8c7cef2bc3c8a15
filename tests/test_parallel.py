"""Many networks at once (fit_many under vmap) and data parallelism over devices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import parallel
from jaxnn.precision import x64
from jaxnn.train import fit

ROOT = Path(__file__).resolve().parents[1]
SIZES = (12, 6, 4)


@pytest.fixture(scope="module")
def problem():
    """A small learnable 4-class problem: X (96, 12), y (96,)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 12))
    y = rng.integers(0, 4, 96)
    return centers[y] + rng.normal(scale=0.8, size=(96, 12)), y


def members_close(a, b, rtol, atol=0.0):
    for x, z in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(z), rtol=rtol, atol=atol)


# --- init_many ------------------------------------------------------------------------------------


def test_init_many_members_are_init_params():
    pb = parallel.init_many(7, 5, SIZES)
    assert [t.shape for t in pb] == [(5, 6, 13), (5, 4, 7)]
    keys = jax.random.split(jax.random.key(7), 5)
    for i in range(5):
        members_close(parallel.member(pb, i), jaxnn.init_params(keys[i], SIZES), 0)
    assert not np.allclose(pb[0][0], pb[0][1])
    big = parallel.init_many(jax.random.key(3), 40, (3, 2, 2))  # compiled vmap path
    keys = jax.random.split(jax.random.key(3), 40)
    for i in (0, 17, 39):
        members_close(parallel.member(big, i), jaxnn.init_params(keys[i], (3, 2, 2)), 0)
    with pytest.raises(ValueError, match="n must be"):
        parallel.init_many(0, 0, SIZES)
    with pytest.raises(ValueError, match="layer_sizes"):
        parallel.init_many(0, 2, (3,))


# --- fit_many: L-BFGS written for vmap ------------------------------------------------------------


LBFGS = {"maxiter": 400, "tol": 1e-9, "options": {"chunk_size": 2}}
CONVERGED_LAMS = np.array([0.1, 0.3, 1.0, 3.0])


@pytest.fixture(scope="module")
def converged(problem):
    """Four networks trained to convergence by fit_many (float64), with their start."""
    X, y = problem
    lams = CONVERGED_LAMS
    with x64():
        pb = parallel.init_many(1, 4, SIZES, dtype=jnp.float64)
        return pb, lams, parallel.fit_many(pb, X, y, lams, **LBFGS)


def test_fit_many_lbfgs_members_equal_single_runs_and_reach_the_scipy_minimum(problem,
                                                                                converged):
    """Each member of the batch equals the same compiled loop run on that network alone, and,
    run to convergence, reaches the minimum scipy's L-BFGS-B reaches from the same start."""
    X, y = problem
    pb, lams, res = converged
    assert res.params[0].dtype == np.float64 and len(res) == 4
    with x64():
        for i in range(4):
            one = parallel.fit_many(tuple(t[i:i + 1] for t in pb), X, y, lams[i], **LBFGS)
            np.testing.assert_allclose(one.history[0, :20], res.history[i, :20], rtol=1e-9)
            np.testing.assert_allclose(one.cost[0], res.cost[i], rtol=1e-9)
            # the reported cost is the cost of the returned parameters (independent check)
            np.testing.assert_allclose(res.cost[i], float(jaxnn.cost(res.member(i), X, y,
                                                                     lams[i])), rtol=1e-12)
            n = res.n_iter[i]
            assert np.all(np.isfinite(res.history[i, :n])) and np.all(np.isnan(res.history[i, n:]))
            np.testing.assert_allclose(res.history[i, n - 1], res.cost[i], rtol=1e-14)
            assert np.all(np.diff(res.history[i, :n]) <= 1e-12)  # monotone decrease
            assert res.n_evals[i] >= n + 1
            ref = fit(parallel.member(pb, i), X, y, lams[i], method="L-BFGS-B", maxiter=2000,
                      tol=1e-14)
            np.testing.assert_allclose(res.cost[i], ref.cost, rtol=1e-8)
            _, g = jaxnn.backprop(res.member(i), X, y, lams[i])
            assert max(float(jnp.abs(t).max()) for t in g) <= 1e-9
    assert res.converged.all() and all(m.startswith("converged") for m in res.messages)
    assert (res.n_iter < 400).all() and len(set(res.n_iter.tolist())) > 1
    np.testing.assert_array_equal(res.lams, lams)
    assert res.cost[0] < res.cost[-1]  # less regularization, lower training cost
    assert res.best == int(np.argmin(res.cost))


def test_fit_many_members_stop_independently(problem, converged):
    """A member that starts at its minimum stops at once and is held fixed while the others
    train as they would alone (same compiled program as the fixture's)."""
    X, y = problem
    pb, lams, res = converged
    start = tuple(np.concatenate([r[:1], t[1:]]) for r, t in zip(res.params, pb, strict=True))
    with x64():
        again = parallel.fit_many(start, X, y, lams, **LBFGS)
    assert again.n_iter[0] == 0 and again.n_evals[0] == 1 and again.converged[0]
    members_close(again.member(0), res.member(0), rtol=0)
    for i in (1, 2, 3):
        members_close(again.member(i), res.member(i), rtol=1e-12, atol=1e-14)
        assert again.n_iter[i] == res.n_iter[i]


def test_fit_many_adam_members_equal_fit(problem):
    X, y = problem
    with x64():
        pb = parallel.init_many(5, 3, SIZES, dtype=jnp.float64)
        res = parallel.fit_many(pb, X, y, [0.0, 1.0, 2.0], method="adam", maxiter=4,
                                batch_size=32, learning_rate=0.02, seed=10)
        assert res.messages[0] == "finished 4 epochs of 3 batches of 32"
        for i, lam in enumerate((0.0, 1.0, 2.0)):
            ref = fit(parallel.member(pb, i), X, y, lam, method="adam", maxiter=4,
                      batch_size=32, learning_rate=0.02, seed=10 + i)
            members_close(res.member(i), ref.params, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(res.history[i], ref.history, rtol=1e-10)
            np.testing.assert_allclose(res.cost[i], ref.cost, rtol=1e-10)
    assert (res.n_iter == 4).all() and (res.n_evals == 4 * 3).all()
    assert not res.converged.any()


def test_fit_many_float32_default_and_dtype_switch(problem, converged):
    X, y = problem
    pb = parallel.init_many(0, 2, SIZES)
    res = parallel.fit_many(pb, X, y, 1.0, method="sgd", maxiter=3)
    assert res.params[0].dtype == np.float32 and res.history.shape == (2, 3)
    assert res.messages[0] == "finished 3 epochs of 1 batch of 96"
    # dtype="float64" switches x64 on for the call only (the fixture's compiled program)
    pb64, lams, ref = converged
    assert not jax.config.read("jax_enable_x64")
    res64 = parallel.fit_many(tuple(np.asarray(t) for t in pb64), X, y, lams, dtype="float64",
                              **LBFGS)
    assert res64.params[0].dtype == np.float64
    assert not jax.config.read("jax_enable_x64")
    np.testing.assert_allclose(res64.cost, ref.cost, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lams": [1.0, 2.0, 3.0]}, "lams"),
        ({"lams": -1.0}, "lams"),
        ({"method": "L-BFGS-B"}, "method"),
        ({"grad": "numeric"}, "grad"),
        ({"maxiter": 0}, "maxiter"),
        ({"options": {"memory": 3}}, "options"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"method": "adam", "tol": 1e-3}, "tol"),
        ({"method": "adam", "learning_rate": -1.0}, "learning_rate"),
        ({"seed": [1, 2, 3]}, "seed"),
        ({"dtype": "int32"}, "dtype"),
        ({"activation": "elu"}, "activation"),
        ({"devices": 2}, "devices"),
    ],
)
def test_fit_many_argument_errors(problem, change, match):
    X, y = problem
    kw = {"lams": 1.0, **change}
    with pytest.raises(ValueError, match=match):
        parallel.fit_many(parallel.init_many(0, 2, SIZES), X, y, kw.pop("lams"), **kw)


def test_fit_many_shape_errors(problem):
    X, y = problem
    pb = parallel.init_many(0, 2, SIZES)
    with pytest.raises(ValueError, match="3-D"):
        parallel.fit_many(jaxnn.init_params(0, SIZES), X, y)
    with pytest.raises(ValueError, match="batch sizes"):
        parallel.fit_many((pb[0], pb[1][:1]), X, y)
    with pytest.raises(ValueError, match="features"):
        parallel.fit_many(pb, X[:, :5], y)
    with pytest.raises(ValueError, match="labels"):
        parallel.fit_many(pb, X, y + 4)
    with pytest.raises(ValueError, match="tuple"):
        parallel.fit_many({"a": 1}, X, y)


# --- evaluating and combining a batch -------------------------------------------------------------


def test_evaluate_many_and_ensembles(problem):
    X, y = problem
    with x64():
        res = parallel.fit_many(parallel.init_many(6, 3, SIZES, dtype=jnp.float64), X, y,
                                [1.0, 0.5, 0.0], method="adam", maxiter=4, batch_size=32,
                                learning_rate=0.02)  # the same compiled loop as the adam test
        ev = parallel.evaluate_many(res.params, X, y, 0.5)
        for i in range(3):
            np.testing.assert_allclose(ev["cost"][i], float(jaxnn.cost(res.member(i), X, y, 0.5)),
                                       rtol=1e-12)
            np.testing.assert_allclose(ev["accuracy"][i], jaxnn.accuracy(res.member(i), X, y))
        probs = [np.asarray(jaxnn.forward(res.member(i), X)) for i in range(3)]
        np.testing.assert_allclose(parallel.ensemble_proba(res.params, X), np.mean(probs, 0),
                                   rtol=1e-12)
        w = np.array([1.0, 0.0, 3.0])
        np.testing.assert_allclose(parallel.ensemble_proba(res.params, X, weights=w),
                                   (probs[0] + 3 * probs[2]) / 4, rtol=1e-12)
        np.testing.assert_array_equal(parallel.ensemble_predict(res.params, X),
                                      np.argmax(np.mean(probs, 0), axis=1))
    with pytest.raises(ValueError, match="weights"):
        parallel.ensemble_proba(res.params, X, weights=[1.0, -1.0, 1.0])
    huge = parallel.ensemble_proba(res.params, X, weights=[5e307, 0.0, 1.5e308])  # sum: inf
    np.testing.assert_allclose(huge, (probs[0] + 3 * probs[2]) / 4, rtol=1e-6)
    with pytest.raises(ValueError, match="weights must be 3 finite numbers >= 0 with a "
                                         "positive sum, got 'abc'"):
        parallel.ensemble_proba(res.params, X, weights="abc")
    for i in (3, -4, 1.0, True):  # JAX would clamp 3 to the last network
        for get in (lambda i: res.member(i), lambda i: parallel.member(res.params, i),
                    lambda i: parallel.member(tuple(map(jnp.asarray, res.params)), i)):
            with pytest.raises(ValueError, match=rf"i must be a network's index in 0\.\.2 "
                                                 rf"\(or -3\.\.-1 from the end\), got {i!r}"):
                get(i)
    np.testing.assert_array_equal(parallel.member(res.params, -1)[0], res.member(2)[0])
    best = jnp.argmin(jnp.asarray(res.cost))  # a 0-d JAX index, as jnp.argmin gives
    np.testing.assert_array_equal(res.member(best)[0], res.member(int(best))[0])
    np.testing.assert_array_equal(parallel.member(res.params, np.array(1))[0], res.member(1)[0])
    with pytest.raises(ValueError, match=r"got 7$"):  # the value, not np.int64(7)
        res.member(np.int64(7))
    # in float32 too the accuracy is jaxnn.accuracy's exact fraction (it was a float32 mean)
    p32 = tuple(np.asarray(t, np.float32) for t in res.params)
    ev32 = parallel.evaluate_many(p32, X, y)
    for i in range(3):
        assert ev32["accuracy"][i] == jaxnn.accuracy(tuple(t[i] for t in p32), X, y)


# --- data parallelism -----------------------------------------------------------------------------


def test_single_device_sharding_helpers(problem):
    X, y = problem
    mesh = parallel.data_mesh(1)
    assert mesh.axis_names == ("batch",) and mesh.size == 1
    Xs, ys = parallel.shard_examples(X, y, 1)
    np.testing.assert_array_equal(np.asarray(Xs), X.astype(Xs.dtype))
    assert Xs.sharding.spec == jax.sharding.PartitionSpec("batch")
    J, g = jaxnn.backprop(parallel.replicate(jaxnn.init_params(0, SIZES), 1), Xs, ys, 1.0)
    J1, g1 = jaxnn.backprop(jaxnn.init_params(0, SIZES), X, y, 1.0)
    np.testing.assert_allclose(J, J1, rtol=1e-6)
    Xl, yl = parallel.shard_local_examples(X, y, 1)  # one process: shard_examples
    np.testing.assert_array_equal(np.asarray(Xl), np.asarray(Xs))
    np.testing.assert_array_equal(np.asarray(yl), np.asarray(ys))
    for bad in (3, y[:-1], y[:, None, None]):  # a scalar was an IndexError
        with pytest.raises(ValueError, match=rf"y_local must be {len(y)} labels \(m,\) or "
                                             r"target rows \(m, K\), one per row of X_local"):
            parallel.shard_local_examples(X, bad, 1)
    with pytest.raises(ValueError, match="devices"):
        parallel.data_mesh(len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="devices"):
        parallel.data_mesh("all")
    with pytest.raises(ValueError, match="one row per row"):
        parallel.shard_examples(X, y[:5], 1)


# --- subprocesses: 8 virtual devices, and two processes with jax.distributed -------------------
#
# They start in the background when this module's tests begin (most of the in-process tests
# keep one core busy, the subprocesses use the other) and are read by the last two tests.


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def background(problem, tmp_path_factory):
    """Start the 8-device check and the two multi-host processes; yield their handles."""
    X, y = problem
    with x64():  # the start of the `converged` fixture's batch
        pb = parallel.init_many(1, 4, SIZES, dtype=jnp.float64)
    batch = tmp_path_factory.mktemp("parallel") / "batch.npz"
    np.savez(batch, X=X, y=y, lams=CONVERGED_LAMS,
             **{f"theta_{i}": np.asarray(t) for i, t in enumerate(pb)})
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": ROOT}
    eight = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_multidevice_check.py"), str(batch)],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"), **pipes)
    common = [sys.executable, str(ROOT / "examples" / "multihost.py"), "--num-processes", "2",
              "--coordinator", f"127.0.0.1:{_free_port()}", "--method", "L-BFGS-B",
              "--maxiter", "8", "--examples", "400", "--float64", "--compare"]
    hosts = [subprocess.Popen([*common, "--process-id", str(i)], env=_env(), **pipes)
             for i in range(2)]
    procs = {"eight": eight, "hosts": hosts}
    yield procs
    for p in (eight, *hosts):
        if p.poll() is None:
            p.kill()
            p.communicate()


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_eight_devices_match_one_device(converged, background):
    """On 8 virtual CPU devices (a subprocess): sharded gradients equal single-device ones
    within 1e-12 (float64), fit(..., devices=8) reproduces the single-device fit, and
    fit_many(..., devices=4) the batch trained here on one device."""
    pb, lams, res = converged
    r = _result(background["eight"])
    assert r["n_devices"] == 8
    assert "batch" in r["X_sharding"] and r["X_shards"] == [[125, 20]] * 8
    for key in ("backprop_lam0", "backprop_lam3", "autodiff_lam0"):
        assert r[f"{key}_grad_rel"] <= 1e-12, (key, r)
        assert r[f"{key}_cost_rel"] <= 1e-12, (key, r)
    assert r["backprop_out_devices"] == 8
    assert r["cost_rel"] <= 1e-12
    assert r["drop_remainder_rows"] == 1000
    assert "cannot share evenly" in r["uneven_error"] and "drop_remainder" in r["uneven_error"]
    for method in ("lbfgs", "L-BFGS-B"):
        f = r[f"fit_{method}"]
        assert f["n_iter"][0] == f["n_iter"][1] == 10
        assert f["params_rel"] <= 1e-9 and f["cost_rel"] <= 1e-12, (method, f)
    fm = r["fit_many_devices"]
    np.testing.assert_allclose(fm["cost"], res.cost, rtol=1e-9)
    for a, b in zip(fm["params"], res.params, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-7)


def test_multihost_example_two_processes(background):
    """examples/multihost.py as two local processes (jax.distributed, Gloo on CPU): both end
    with the same network, which equals training on all the data in one process."""
    r0, r1 = (_result(p) for p in background["hosts"])
    assert r0["processes"] == 2 and r0["devices"] == 2 and r0["global_X_shape"] == [400, 64]
    assert r0["examples_per_process"] == 200
    assert r0["cost"] == r1["cost"] and r0["params_checksum"] == r1["params_checksum"]
    assert r0["max_abs_param_difference"] <= 1e-12
    np.testing.assert_allclose(r0["cost"], r0["single_process_cost"], rtol=1e-12)
