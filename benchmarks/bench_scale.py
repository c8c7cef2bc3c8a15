"""Many networks at once: ``fit_many`` against a loop of ``fit`` calls.

Usage:
    python benchmarks/bench_scale.py [--networks 32] [--iterations 100] [--repeats 2]
                                     [--scipy] [--json PATH] [--stream 60000]

Trains ``--networks`` networks of the course's size (400-25-10, sigmoid, ``lam = 1``) on the
5000 mnist5k digits for ``--iterations`` L-BFGS iterations each (``tol=0``: every network runs
them all), float32:

* ``fit_many``: all networks in one compiled program (``jaxnn.parallel.fit_many``,
  ``method="lbfgs"``, the L-BFGS written for ``vmap``);
* ``fit lbfgs``: one ``jaxnn.fit(method="lbfgs")`` call per network (optax L-BFGS, the loop
  compiled, one network at a time);
* ``fit L-BFGS-B`` (with ``--scipy``): one ``jaxnn.fit(method="L-BFGS-B")`` call per network
  (scipy's optimizer, one compiled value-and-gradient call per evaluation).

Compilation is excluded: each variant runs once to compile (the first ``fit`` call of a loop,
a ``fit_many`` call of the same shape) before it is timed; the compile time is reported
apart. The variants are timed in ``--repeats`` interleaved rounds and each figure is the best
round (the machines are shared: the best round is the least disturbed one); wall time and the
process's CPU time (all threads) are both reported. The table gives seconds per network and
each variant's time relative to ``fit_many``, plus the mean final cost and the mean number of
value-and-gradient evaluations per network, so equal work can be checked. Last, the bound on
any batching here: one network's evaluations (their FLOPs, see ``bench_gradients.py``) at the
float32 1024x1024 matmul rate measured in the same run, against each sequential variant's time
per network.

``--stream N`` also writes IDX files of ``N`` random 28x28 images (MNIST's training-set size
for 60000) and compares the host memory (numpy allocations traced by ``tracemalloc``, peak)
of one epoch of ``jaxnn.stream.fit_stream`` (784-25-10, adam, batches of 128) with loading the
whole file by ``load_idx``.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_gradients import flops_per_evaluation
from goals import SMOKE, verdict
from machine import describe

from jaxnn import datasets, parallel
from jaxnn.train import fit

SIZES = (400, 25, 10)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_fit_many(pb, X, y, iterations: int):
    res = parallel.fit_many(pb, X, y, 1.0, method="lbfgs", maxiter=iterations, tol=0.0)
    return res.cost, res.n_evals, res.n_iter


def run_sequential(pb, X, y, iterations: int, method: str):
    costs, evals, iters = [], [], []
    for i in range(pb[0].shape[0]):
        kw = {"tol": 0.0} if method == "lbfgs" else {}
        r = fit(parallel.member(pb, i), X, y, 1.0, method=method, maxiter=iterations, **kw)
        costs.append(r.cost)
        evals.append(r.n_evals)
        iters.append(r.n_iter)
    return np.array(costs), np.array(evals), np.array(iters)


def matmul_rate(dtype=np.float32, n: int = 1024, calls: int = 30) -> float:
    """This machine's matrix-multiply rate, FLOP/s: the fastest of ``calls`` jit-compiled
    ``n x n`` products (as in bench_gradients.py)."""
    a = jnp.asarray(np.random.default_rng(0).random((n, n)).astype(dtype))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(timed(lambda: f(a).block_until_ready())[0] for _ in range(calls))
    return 2 * n**3 / best


def bench_stream(n: int) -> dict:
    """Peak traced host memory and time: one streamed epoch against loading the whole file."""
    import struct
    import tempfile
    import tracemalloc
    from pathlib import Path

    from jaxnn.datasets import load_idx
    from jaxnn.model import init_params
    from jaxnn.stream import fit_stream

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        img, lab = Path(tmp) / "images-idx3-ubyte", Path(tmp) / "labels-idx1-ubyte"
        with open(img, "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28))
            for start in range(0, n, 10_000):
                f.write(rng.integers(0, 256, (min(10_000, n - start), 784), np.uint8).tobytes())
        lab.write_bytes(struct.pack(">II", 0x801, n) + rng.integers(0, 10, n, np.uint8).tobytes())
        params = init_params(0, (784, 25, 10))
        fit_stream(params, img, lab, maxiter=1, batch_size=128, chunk_size=1280)  # compile
        tracemalloc.start()
        t, res = timed(lambda: fit_stream(params, img, lab, maxiter=1, batch_size=128))
        stream_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start()
        tl, (X, _) = timed(lambda: load_idx(img, lab, dtype=np.float32))
        load_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out = {"examples": n, "epoch_seconds": t, "examples_per_second": n / t,
           "steps": res.n_steps, "stream_peak_mb": stream_peak / 2**20,
           "load_idx_peak_mb": load_peak / 2**20, "load_idx_seconds": tl,
           "X_mb": X.nbytes / 2**20}
    print(f"\nstreaming {n} images of 28x28 (784-25-10, adam, batches of 128, chunks of "
          f"9984): one epoch {t:.1f} s ({n / t:,.0f} examples/s, {res.n_steps} steps); "
          f"peak traced host memory {out['stream_peak_mb']:.0f} MB, against "
          f"{out['load_idx_peak_mb']:.0f} MB for load_idx of the whole file (X alone is "
          f"{out['X_mb']:.0f} MB float32)")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--networks", type=int, default=32)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--scipy", action="store_true", help="also time sequential L-BFGS-B")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--stream", type=int, metavar="N", help="also measure streaming N images")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, every code path, seconds: "
                   "a check that the script runs, not a measurement")
    args = p.parse_args(argv)
    if args.smoke:
        print(SMOKE)
        args.networks, args.iterations, args.repeats, args.scipy = 2, 3, 1, True
        args.stream = args.stream or 1000

    X, y = datasets.mnist5k()
    X = X.astype(np.float32)
    if args.smoke:
        X, y = X[:500], y[:500]
    B, it = args.networks, args.iterations
    pb = parallel.init_many(0, B, SIZES)
    print(f"{B} networks {SIZES}, {it} L-BFGS iterations each, lam 1, float32, m = {len(y)}; "
          f"jax {jax.__version__} on {jax.default_backend()} ({describe()}); "
          f"best of {args.repeats}")

    variants = {"fit_many (lbfgs, vmap)": lambda: run_fit_many(pb, X, y, it),
                "fit lbfgs, one call per network": lambda: run_sequential(pb, X, y, it,
                                                                          "lbfgs")}
    if args.scipy:
        variants["fit L-BFGS-B, one call per network"] = lambda: run_sequential(
            pb, X, y, it, "L-BFGS-B")
    one = tuple(t[:1] for t in pb)
    warm = {"fit_many (lbfgs, vmap)": lambda: run_fit_many(pb, X, y, it),
            "fit lbfgs, one call per network": lambda: run_sequential(one, X, y, it, "lbfgs"),
            "fit L-BFGS-B, one call per network": lambda: run_sequential(one, X, y, it,
                                                                         "L-BFGS-B")}
    first = {name: timed(warm[name])[0] for name in variants}
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    outs = {}
    for _ in range(args.repeats):  # interleaved, so a noisy spell hits every variant alike
        for name, fn in variants.items():
            c0 = time.process_time()
            t, outs[name] = timed(fn)
            wall[name].append(t)
            cpu[name].append(time.process_time() - c0)
    rows = []
    for name in variants:
        costs, evals, iters = outs[name]
        rows.append({"variant": name, "seconds": min(wall[name]), "all_seconds": wall[name],
                     "cpu_seconds": min(cpu[name]), "first_call_seconds": first[name],
                     "per_network": min(wall[name]) / B, "cpu_per_network": min(cpu[name]) / B,
                     "mean_cost": float(np.mean(costs)), "mean_evals": float(np.mean(evals)),
                     "mean_iterations": float(np.mean(iters))})
    base, cbase = rows[0]["per_network"], rows[0]["cpu_per_network"]
    print("\n| variant | wall s per network | relative | CPU s per network | relative | "
          "mean final cost | evaluations per network | first call, s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        r["relative"] = r["per_network"] / base
        r["cpu_relative"] = r["cpu_per_network"] / cbase
        print(f"| {r['variant']} | {r['per_network']:.3f} | {r['relative']:.2f}x | "
              f"{r['cpu_per_network']:.3f} | {r['cpu_relative']:.2f}x | {r['mean_cost']:.4f} | "
              f"{r['mean_evals']:.1f} | {r['first_call_seconds']:.1f} |")
    ratio = rows[1]["relative"]
    print(f"\nper network, fit_many takes {1 / ratio:.2f} of the wall time of sequential "
          f"fit(lbfgs) ({ratio:.2f}x less; target >= 3x: {verdict(ratio >= 3, args.smoke)}); "
          f"CPU time {rows[1]['cpu_relative']:.2f}x less. 'first call' = compile + one run of "
          "fit_many, or compile + the first network for the loops.")
    # the most any batching could gain here: one network's evaluations at the matmul peak
    rate = matmul_rate(calls=3 if args.smoke else 30)
    floor = rows[0]["mean_evals"] * flops_per_evaluation(SIZES, len(y)) / rate
    bounds = {r["variant"]: r["per_network"] / floor for r in rows[1:]}
    print(f"bound: the {rows[0]['mean_evals']:.1f} evaluations of one network take at least "
          f"{floor:.3f} s at this machine's float32 matmul rate ({rate / 1e9:.0f} GFLOP/s, "
          "1024x1024, measured now), so no batching can make fit_many more than "
          + ", ".join(f"{b:.2f}x faster than '{k}'" for k, b in bounds.items()) + " here.")
    for r in rows[1:]:
        r["bound"] = bounds[r["variant"]]
    stream = bench_stream(args.stream) if args.stream else None
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"networks": B, "iterations": it, "rows": rows, "stream": stream,
                       "matmul_gflops": rate / 1e9, "floor_per_network": floor}, f, indent=2)


if __name__ == "__main__":
    main()
