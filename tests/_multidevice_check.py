"""Run on 8 virtual CPU devices (started by tests/test_parallel.py in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu``): compares sharded
against single-device computations in float64 and prints one JSON object.

``python _multidevice_check.py BATCH.npz`` also trains the batch of networks in ``BATCH.npz``
(arrays ``X``, ``y``, ``lams``, ``theta_0..``) with ``fit_many(..., devices=4)`` and reports
their parameters, for the parent test to compare with its single-device run.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxnn
from jaxnn import parallel
from jaxnn.train import fit

# the fit_many settings of tests/test_parallel.py's `converged` fixture
LBFGS = {"maxiter": 400, "tol": 1e-9}


def rel(a, b) -> float:
    """Largest ``norm(a - b) / norm(b)`` over the leaves (0 when equal)."""
    out = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out = max(out, float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300)))
    return out


def main(batch_file: str | None) -> None:
    rng = np.random.default_rng(0)
    m, sizes = 1000, (20, 12, 5)
    X = rng.normal(size=(m, 20))
    y = rng.integers(0, 5, m)
    report: dict = {"n_devices": jax.device_count()}
    with jaxnn.x64():
        params = jaxnn.init_params(3, sizes, dtype=jnp.float64)
        # backprop / autodiff / cost on sharded inputs vs one device
        Xs, ys = parallel.shard_examples(X, y, 8)
        report["X_sharding"] = str(Xs.sharding.spec)
        report["X_shards"] = [list(s.data.shape) for s in Xs.addressable_shards]
        for name, fn, lams in (("backprop", jaxnn.backprop, (0.0, 3.0)),
                               ("autodiff", jaxnn.autodiff, (0.0,))):
            for lam in lams:
                J1, g1 = fn(params, X, y, lam)
                J8, g8 = fn(parallel.replicate(params, 8), Xs, ys, lam)
                report[f"{name}_lam{lam:g}_grad_rel"] = rel(g8, g1)
                report[f"{name}_lam{lam:g}_cost_rel"] = rel(J8, J1)
                report[f"{name}_out_devices"] = len(g8[0].sharding.device_set)
        report["cost_rel"] = rel(jaxnn.cost(params, Xs, ys, 1.0), jaxnn.cost(params, X, y, 1.0))
        # drop_remainder: 1003 rows -> 1000; an uneven split without it is an error
        Xd, yd = parallel.shard_examples(np.vstack([X, X[:3]]), np.r_[y, y[:3]], 8,
                                         drop_remainder=True)
        report["drop_remainder_rows"] = int(Xd.shape[0])
        try:
            parallel.shard_examples(np.vstack([X, X[:1]]), np.r_[y, y[:1]], 8)
            report["uneven_error"] = ""
        except ValueError as exc:
            report["uneven_error"] = str(exc)
        # fit with devices=8 vs one device: the compiled L-BFGS loop and the scipy bridge
        for method in ("lbfgs", "L-BFGS-B"):
            r1 = fit(params, X, y, 1.0, method=method, maxiter=10)
            r8 = fit(params, X, y, 1.0, method=method, maxiter=10, devices=8)
            report[f"fit_{method}"] = {
                "params_rel": rel(r8.params, r1.params),
                "cost_rel": rel(r8.cost, r1.cost),
                "n_iter": [r1.n_iter, r8.n_iter],
            }
        if batch_file:  # fit_many with the networks split over 4 devices
            with np.load(batch_file) as f:
                thetas = tuple(f[f"theta_{i}"] for i in range(len(f.files) - 3))
                res = parallel.fit_many(thetas, f["X"], f["y"], f["lams"], devices=4, **LBFGS)
            report["fit_many_devices"] = {
                "params": [t.tolist() for t in res.params], "cost": res.cost.tolist(),
                "n_iter": res.n_iter.tolist(),
                "theta_devices": 4,
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
