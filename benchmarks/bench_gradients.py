"""Time one cost-and-gradient evaluation of the course's 400-25-10 network on 5000 examples.

Entries, all in one run, timed in alternating blocks so that they see the same machine load:
  * jaxnn.backprop  - the hand-written backward pass (public call on device-resident arrays);
  * jaxnn.autodiff  - jax.value_and_grad of jaxnn.cost (same call path);
  * numpy           - the course's vectorized formulas in numpy (the usual Python port);
and the floor: the FLOP count of one evaluation over the matrix-multiply rate measured in the
same run (a jit-compiled 1024x1024 matmul of the same dtype, timed in the same blocks). Each
entry is compared with the floor by the same statistic: its median time with the floor at the
matmul's median rate, its fastest time with the floor at the matmul's fastest rate.

    python benchmarks/bench_gradients.py [--repeats 60] [--gradcheck] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxnn as nn

SIZES = (400, 25, 10)
M = 5000
BLOCK = 10


def flops_per_evaluation(sizes: tuple[int, ...], m: int) -> int:
    """Multiply-adds x 2 of the matrix products of one cost+gradient evaluation: forward
    ``a_l Theta_l^T`` for every layer, ``delta_l^T a_{l-1}`` for every weight gradient, and
    ``delta_l Theta_l`` for every layer but the first (the input needs no delta)."""
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    fwd = sum(2 * m * i * o for i, o in pairs)
    wgrad = sum(2 * m * i * o for i, o in pairs)
    dgrad = sum(2 * m * i * o for i, o in pairs[1:])
    return fwd + wgrad + dgrad


def numpy_cost_grad(t1, t2, X, Y, lam):
    """The course's vectorized ex4 cost and gradient, written in numpy as Python ports do."""
    m = X.shape[0]
    a1 = np.hstack([np.ones((m, 1), X.dtype), X])
    z2 = a1 @ t1.T
    a2 = np.hstack([np.ones((m, 1), X.dtype), 1 / (1 + np.exp(-z2))])
    h = 1 / (1 + np.exp(-(a2 @ t2.T)))
    J = -np.sum(Y * np.log(h) + (1 - Y) * np.log(1 - h)) / m
    J += lam / (2 * m) * (np.sum(t1[:, 1:] ** 2) + np.sum(t2[:, 1:] ** 2))
    d3 = h - Y
    g2 = a2[:, 1:]
    d2 = (d3 @ t2[:, 1:]) * g2 * (1 - g2)
    grad1 = d2.T @ a1 / m
    grad2 = d3.T @ a2 / m
    grad1[:, 1:] += lam / m * t1[:, 1:]
    grad2[:, 1:] += lam / m * t2[:, 1:]
    return J, grad1, grad2


def run(dtype: str, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    Xn = rng.random((M, SIZES[0])).astype(dtype)
    yn = rng.integers(0, SIZES[-1], M)
    Yn = np.eye(SIZES[-1], dtype=dtype)[yn]
    with nn.x64(dtype == "float64"):
        params = nn.init_params(seed, SIZES, dtype=dtype)
        pn = tuple(np.asarray(t) for t in params)
        X, y = jnp.asarray(Xn), jnp.asarray(yn)
        A = jnp.asarray(rng.random((1024, 1024)).astype(dtype))
        matmul = jax.jit(lambda a: a @ a)
        entries = {
            "jaxnn.backprop": lambda: nn.backprop(params, X, y, 1.0),
            "jaxnn.autodiff": lambda: nn.autodiff(params, X, y, 1.0),
            "numpy": lambda: numpy_cost_grad(*pn, Xn, Yn, 1.0),
            "matmul 1024^3": lambda: matmul(A),
        }
        for f in entries.values():  # compile and warm up
            jax.block_until_ready(f())
        times = {k: [] for k in entries}
        for _ in range(max(1, repeats // BLOCK)):
            for k, f in entries.items():
                # a block of calls per entry: the first call after switching libraries is not
                # timed (OpenBLAS's threads spin for a while after numpy returns and would
                # slow XLA's threads, and the other way round)
                jax.block_until_ready(f())
                for _ in range(BLOCK):
                    t = time.perf_counter()
                    jax.block_until_ready(f())
                    times[k].append(time.perf_counter() - t)
        J_b = float(entries["jaxnn.backprop"]()[0])
        J_n = float(entries["numpy"]()[0])
    flops = flops_per_evaluation(SIZES, M)
    mm = times.pop("matmul 1024^3")
    # the floor by the same statistic as the entry it is compared with: the median evaluation
    # against the median matmul rate, the fastest against the fastest
    rate, rate_median = 2 * 1024**3 / min(mm), 2 * 1024**3 / float(np.median(mm))
    stats = {k: {"min_ms": 1e3 * min(v), "median_ms": 1e3 * float(np.median(v))}
             for k, v in times.items()}
    return {"dtype": dtype, "gflops": rate / 1e9, "gflops_median": rate_median / 1e9,
            "floor_ms": 1e3 * flops / rate, "floor_median_ms": 1e3 * flops / rate_median,
            "flops": flops, "entries": stats, "cost_backprop": J_b, "cost_numpy": J_n}


def gradcheck_seconds(seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    X = rng.random((M, SIZES[0]))
    y = rng.integers(0, SIZES[-1], M)
    params = nn.init_params(seed, SIZES)
    t = time.perf_counter()
    report = nn.check_gradients(params, X, y, 1.0)
    return time.perf_counter() - t, report.relative_difference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--gradcheck", action="store_true",
                    help="also time check_gradients on the full network (10,285 parameters)")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; {SIZES} network, m={M}")
    results = [run(dt, args.repeats) for dt in ("float32", "float64")]
    head = (f"{'dtype':8} {'entry':16} {'median ms':>10} {'min ms':>8} {'x floor':>8} "
            f"{'x floor':>8} {'x backprop':>11}")
    print(f"{'':45}{'(median)':>9}{'(min)':>9}{'(median)':>12}")
    print(head)
    print("-" * len(head))
    for r in results:
        base = r["entries"]["jaxnn.backprop"]["median_ms"]
        for k, v in r["entries"].items():
            print(f"{r['dtype']:8} {k:16} {v['median_ms']:10.3f} {v['min_ms']:8.3f} "
                  f"{v['median_ms'] / r['floor_median_ms']:8.2f} "
                  f"{v['min_ms'] / r['floor_ms']:8.2f} {v['median_ms'] / base:11.2f}")
        print(f"{r['dtype']:8} {'FLOP floor':16} {r['floor_median_ms']:10.3f} "
              f"{r['floor_ms']:8.3f} {1.0:8.2f} {1.0:8.2f} "
              f"{r['floor_median_ms'] / base:11.2f}   ({r['flops'] / 1e6:.1f} MFLOP at "
              f"{r['gflops_median']:.1f} / {r['gflops']:.1f} GFLOP/s, median / best)")
    if args.gradcheck:
        secs, rel = gradcheck_seconds()
        print(f"check_gradients on the full network (10,285 parameters, m={M}, float64): "
              f"{secs:.1f} s, relative difference {rel:.2e}")
        results.append({"gradcheck_seconds": secs, "relative_difference": rel})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
