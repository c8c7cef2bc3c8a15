"""GPU figures: gradient evaluation and ``fit_many`` with 1000 networks of the course's size.

Usage:
    python benchmarks/bench_gpu.py [--require-gpu] [--small] [--json PATH]
                                   [--networks 1000] [--iterations 100]

Install JAX's CUDA build first (``pip install 'jaxnn[cuda]'``). On a machine without an NVIDIA
GPU the script runs on the CPU (``--require-gpu`` makes that an error, exit status 2);
``--small`` shrinks every size so that a CPU run takes about a minute (a check of the script,
not a measurement).

1. Gradient evaluation of the course's 400-25-10 network (``lam = 1``): the hand-written
   backprop and ``jax.grad``, each one jit-compiled call, on ``m = 5000`` (mnist5k) and
   ``m = 60000`` examples (mnist5k repeated 12 times, the size of MNIST's training set), in
   float32 and float64. Median of ``--repeats`` calls after a warm-up; GFLOP/s counts the
   ``m (2 n_0 n_1 + 3 n_1 K)`` multiply-adds of the forward and backward products, times 2.
2. ``fit_many``: ``--networks`` networks of 400-25-10 on mnist5k, ``--iterations`` L-BFGS
   iterations each (``tol = 0``), float32, in one compiled program; against a loop of
   ``fit(method="lbfgs")`` over the first ``--sequential`` networks (per-network time, the
   loop's time for all networks extrapolated).

Prints tables and, with ``--json``, writes every figure and the device description.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from machine import describe

SIZES = (400, 25, 10)


def device_info() -> dict:
    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": getattr(d, "device_kind", str(d)),
            "device_count": jax.device_count(), "jax": jax.__version__, "host": describe()}


def block(x):
    return jax.block_until_ready(x)


def time_calls(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one warm-up call (compilation)."""
    block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_gradients(X: np.ndarray, y: np.ndarray, ms: list[int], repeats: int) -> list[dict]:
    from jaxnn import x64
    from jaxnn.backprop import backprop_arrays
    from jaxnn.losses import regularized_cost
    from jaxnn.model import init_params

    rows = []
    for dtype in ("float32", "float64"):
        with x64(dtype == "float64"):
            dt = jnp.dtype(dtype)
            params = init_params(0, SIZES, dtype=dt)
            for m in ms:
                reps = -(-m // len(y))
                Xm = jnp.asarray(np.tile(X, (reps, 1))[:m], dt)
                Ym = jax.nn.one_hot(np.tile(y, reps)[:m], SIZES[-1], dtype=dt)
                fns = {
                    "backprop": jax.jit(partial(backprop_arrays, lam=1.0)),
                    "autodiff": jax.jit(jax.value_and_grad(
                        partial(regularized_cost, lam=1.0, activation="sigmoid",
                                output="sigmoid"))),
                }
                n0, n1, K = SIZES
                flops = 2 * m * (2 * n0 * n1 + 3 * n1 * K)
                for name, fn in fns.items():
                    sec = time_calls(lambda fn=fn, p=params, Xm=Xm, Ym=Ym: fn(p, Xm, Ym),
                                     repeats)
                    rows.append({"grad": name, "m": m, "dtype": dtype, "ms": sec * 1e3,
                                 "gflops": flops / sec / 1e9})
    return rows


def bench_fit_many(X: np.ndarray, y: np.ndarray, networks: int, iterations: int,
                   sequential: int) -> dict:
    from jaxnn import parallel
    from jaxnn.train import fit

    X = X.astype(np.float32)
    pb = parallel.init_many(0, networks, SIZES)
    start = time.perf_counter()
    first = parallel.fit_many(pb, X, y, 1.0, maxiter=iterations, tol=0.0)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    res = parallel.fit_many(pb, X, y, 1.0, maxiter=iterations, tol=0.0)
    warm_s = time.perf_counter() - start
    del first
    fit(parallel.member(pb, 0), X, y, 1.0, method="lbfgs", maxiter=iterations, tol=0.0)
    start = time.perf_counter()
    seq_costs = [fit(parallel.member(pb, i), X, y, 1.0, method="lbfgs", maxiter=iterations,
                     tol=0.0).cost for i in range(sequential)]
    seq_s = (time.perf_counter() - start) / sequential
    return {
        "networks": networks, "iterations": iterations, "m": len(y),
        "fit_many_first_call_s": first_s, "fit_many_s": warm_s,
        "fit_many_per_network_s": warm_s / networks,
        "mean_cost": float(np.mean(res.cost)), "mean_evals": float(np.mean(res.n_evals)),
        "sequential_networks": sequential, "sequential_per_network_s": seq_s,
        "sequential_mean_cost": float(np.mean(seq_costs)),
        "sequential_all_networks_s_extrapolated": seq_s * networks,
        "speedup_per_network": seq_s / (warm_s / networks),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--require-gpu", action="store_true", help="exit with status 2 when JAX "
                   "sees no GPU")
    p.add_argument("--small", action="store_true", help="small sizes: a quick check on CPU")
    p.add_argument("--networks", type=int, default=None, help="fit_many batch (default 1000, "
                   "--small 16)")
    p.add_argument("--iterations", type=int, default=None, help="L-BFGS iterations (default "
                   "100, --small 10)")
    p.add_argument("--sequential", type=int, default=None, help="fit calls timed for the loop "
                   "(default 5, --small 2)")
    p.add_argument("--repeats", type=int, default=None, help="calls per gradient timing "
                   "(default 20, --small 5)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = p.parse_args()

    info = device_info()
    if info["backend"] != "gpu" and args.require_gpu:
        print(f"bench_gpu: no GPU visible to JAX (backend {info['backend']!r}, devices "
              f"{jax.devices()}); install the CUDA build with pip install 'jaxnn[cuda]' on a "
              "machine with an NVIDIA GPU and driver", file=sys.stderr)
        return 2
    small = args.small
    networks = args.networks or (16 if small else 1000)
    iterations = args.iterations or (10 if small else 100)
    sequential = args.sequential or (2 if small else 5)
    repeats = args.repeats or (5 if small else 20)
    ms = [5000] if small else [5000, 60000]

    from jaxnn import datasets

    X, y = datasets.mnist5k()
    print(f"device: {info['device_kind']} x{info['device_count']} ({info['backend']}), jax "
          f"{info['jax']}, host {info['host']}{'; --small sizes' if small else ''}")

    grads = bench_gradients(X, y, ms, repeats)
    print("\n| gradient | m | dtype | ms per evaluation | GFLOP/s |")
    print("|---|---:|---|---:|---:|")
    for r in grads:
        print(f"| {r['grad']} | {r['m']} | {r['dtype']} | {r['ms']:.3f} | {r['gflops']:.1f} |")

    fm = bench_fit_many(X, y, networks, iterations, sequential)
    print(f"\nfit_many: {networks} networks {SIZES}, {iterations} L-BFGS iterations each, "
          f"float32, m = {fm['m']}")
    print("| variant | s per network | all networks, s | mean final cost |")
    print("|---|---:|---:|---:|")
    print(f"| fit_many, one program | {fm['fit_many_per_network_s']:.4f} | "
          f"{fm['fit_many_s']:.2f} (first call with compile {fm['fit_many_first_call_s']:.2f}) |"
          f" {fm['mean_cost']:.4f} |")
    print(f"| fit lbfgs, one call per network ({sequential} timed) | "
          f"{fm['sequential_per_network_s']:.4f} | "
          f"{fm['sequential_all_networks_s_extrapolated']:.1f} (extrapolated) | "
          f"{fm['sequential_mean_cost']:.4f} |")
    print(f"fit_many: {fm['speedup_per_network']:.1f}x less time per network")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": info, "small": small, "gradients": grads, "fit_many": fm}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
