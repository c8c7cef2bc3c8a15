"""Time one cost-and-gradient evaluation of the course's 400-25-10 network on 5000 examples, and
(``--gradcheck``) the full gradient check.

Entries, all in one run, the XLA ones timed in alternating blocks so that they see the same
machine load, numpy's blocks after those of both dtypes (OpenBLAS's threads keep spinning after
numpy returns, for more than a second on a 2-core machine, and slowed the XLA entries timed
after them 1.5-2x by medians):
  * jaxnn.backprop  - the hand-written backward pass (public call on device-resident arrays);
  * jaxnn.autodiff  - jax.value_and_grad of jaxnn.cost (same call path);
  * numpy           - the course's vectorized formulas in numpy (the usual Python port);
  * two products    - backprop's two large matrix products alone, ``Theta1[:, 1:] X^T`` and
                      ``delta_2 X``, jit-compiled with the shapes and layout backprop uses (the
                      figure of issue 15: backprop within 1.25x of them);
and the floor: the FLOP count of one evaluation over the matrix-multiply rate measured in the
same run (a jit-compiled 1024x1024 matmul of the same dtype, timed in the same blocks). Each
entry is compared with the floor by the same statistic: its median time with the floor at the
matmul's median rate, its fastest time with the floor at the matmul's fastest rate.

``--gradcheck`` then checks every parameter of 400-25-10 and 400-100-50-10 networks on the 5000
mnist5k digits (random data where they cannot be loaded), float64, lam = 1: the numerical
gradient by the incremental central differences (``numerical_cost_gradient``) and, for
400-25-10, by perturbing each parameter and re-evaluating the cost (``numerical_gradient``),
side by side with one float64 ``backprop`` call timed in the same run; and the whole
``check_gradients`` (numerical + backprop + autodiff), its first call in the process (with
compilation) and a repeat.

    python benchmarks/bench_gradients.py [--repeats 60] [--gradcheck] [--smoke] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from goals import SMOKE
from machine import describe

import jaxnn as nn
from jaxnn.gradcheck import octave_order, relative_difference
from jaxnn.incremental import numerical_cost_gradient
from jaxnn.losses import regularized_cost

SIZES = (400, 25, 10)
M = 5000
BLOCK = 10
GRADCHECK_SIZES = ((400, 25, 10), (400, 100, 50, 10))


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


@jax.jit
def two_products(theta1: jax.Array, X: jax.Array, delta_t: jax.Array) -> tuple:
    """Backprop's two large products with its layout (one column per example): the forward
    ``Theta1[:, 1:] X^T`` (``(n_1, n_0) x (n_0, m)``, ``X^T`` transposed inside the computation
    as backprop does) and the weight gradient ``delta_2 X`` (``(n_1, m) x (m, n_0)``)."""
    return theta1[:, 1:] @ X.T, delta_t @ X


def timed_blocks(entries: dict[str, Callable[[], object]], repeats: int) -> dict[str, list]:
    """Seconds per call of each entry: blocks of ``BLOCK`` calls in rotation, the first call of
    a block not timed (the first after switching)."""
    times: dict[str, list] = {k: [] for k in entries}
    for _ in range(max(1, repeats // BLOCK)):
        for k, f in entries.items():
            jax.block_until_ready(f())
            for _ in range(BLOCK):
                t = time.perf_counter()
                jax.block_until_ready(f())
                times[k].append(time.perf_counter() - t)
    return times


def _stats(seconds: list) -> dict:
    return {"min_ms": 1e3 * min(seconds), "median_ms": 1e3 * float(np.median(seconds))}


def run(dtype: str, repeats: int, sizes: tuple[int, ...] = SIZES, m: int = M,
        seed: int = 0, n_matmul: int = 1024) -> tuple[dict, Callable[[], None]]:
    """The XLA entries of ``dtype`` timed now; returns their results and the function that
    times numpy's entry into them, to be called after every dtype's XLA entries (see the
    module's docstring)."""
    rng = np.random.default_rng(seed)
    Xn = rng.random((m, sizes[0])).astype(dtype)
    yn = rng.integers(0, sizes[-1], m)
    Yn = np.eye(sizes[-1], dtype=dtype)[yn]
    with nn.x64(dtype == "float64"):
        params = nn.init_params(seed, sizes, dtype=dtype)
        pn = tuple(np.asarray(t) for t in params)
        X, y = jnp.asarray(Xn), jnp.asarray(yn)
        delta_t = jnp.asarray(rng.random((sizes[1], m)).astype(dtype))
        A = jnp.asarray(rng.random((n_matmul, n_matmul)).astype(dtype))
        matmul = jax.jit(lambda a: a @ a)
        entries = {
            "jaxnn.backprop": lambda: nn.backprop(params, X, y, 1.0),
            "jaxnn.autodiff": lambda: nn.autodiff(params, X, y, 1.0),
            "two products": lambda: two_products(params[0], X, delta_t),
            "matmul": lambda: matmul(A),
        }
        for f in entries.values():  # compile and warm up
            jax.block_until_ready(f())
        times = timed_blocks(entries, repeats)
        J_b = float(entries["jaxnn.backprop"]()[0])
    flops = flops_per_evaluation(sizes, m)
    mm = times.pop("matmul")
    # the floor by the same statistic as the entry it is compared with: the median evaluation
    # against the median matmul rate, the fastest against the fastest
    rate, rate_median = 2 * n_matmul**3 / min(mm), 2 * n_matmul**3 / float(np.median(mm))
    result = {"dtype": dtype, "gflops": rate / 1e9, "gflops_median": rate_median / 1e9,
              "floor_ms": 1e3 * flops / rate, "floor_median_ms": 1e3 * flops / rate_median,
              "flops": flops, "entries": {k: _stats(v) for k, v in times.items()},
              "cost_backprop": J_b}

    def numpy_phase() -> None:
        def numpy_entry():
            return numpy_cost_grad(*pn, Xn, Yn, 1.0)

        seconds = timed_blocks({"numpy": numpy_entry}, repeats)["numpy"]
        e = result["entries"]
        result["entries"] = {"jaxnn.backprop": e["jaxnn.backprop"],
                             "jaxnn.autodiff": e["jaxnn.autodiff"], "numpy": _stats(seconds),
                             "two products": e["two products"]}
        result["cost_numpy"] = float(numpy_entry()[0])

    return result, numpy_phase


def gradcheck_data(m: int, n_in: int, n_out: int,
                   smoke: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The mnist5k digits (the first ``m``), or random data where they cannot be loaded."""
    if not smoke:
        try:
            from jaxnn.datasets import mnist5k

            X, y = mnist5k()
            return np.asarray(X[:m], np.float64), np.asarray(y[:m]), "mnist5k"
        except Exception as e:  # no cached copy and no network
            print(f"(mnist5k unavailable: {e}; random data instead)")
    rng = np.random.default_rng(0)
    return rng.random((m, n_in)), rng.integers(0, n_out, m), "random"


def median_seconds(f, n: int) -> float:  # noqa: ANN001
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(f())
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def gradcheck(sizes: tuple[int, ...], X: np.ndarray, y: np.ndarray, plain: bool,
              repeats: int, seed: int = 0, lam: float = 1.0) -> dict:
    """One network's gradient check, each way, with one float64 backprop call timed around
    it (the median of the calls before and after)."""
    params = tuple(np.asarray(t, np.float64) for t in nn.init_params(seed, sizes))
    out: dict = {"sizes": list(sizes), "m": int(X.shape[0]),
                 "parameters": int(sum(t.size for t in params))}
    t = time.perf_counter()
    report = nn.check_gradients(params, X, y, lam)  # the first call: with compilation
    out["check_gradients_first_s"] = time.perf_counter() - t
    out["check_gradients_repeat_s"] = median_seconds(
        lambda: nn.check_gradients(params, X, y, lam), 1)
    out["relative_difference"] = report.relative_difference
    out["autodiff_difference"] = report.autodiff_difference
    with nn.x64():
        p = tuple(jnp.asarray(t) for t in params)
        Xj = jnp.asarray(X)
        yj = jnp.asarray(y)
        Y = jax.nn.one_hot(yj, sizes[-1], dtype=jnp.float64)
        bp = lambda: nn.backprop(p, Xj, yj, lam)  # noqa: E731
        jax.block_until_ready(bp())
        fast = octave_order(numerical_cost_gradient(p, Xj, yj, lam))  # compiles
        before = median_seconds(bp, 50)
        fast_s = median_seconds(lambda: numerical_cost_gradient(p, Xj, yj, lam), repeats)
        after = median_seconds(bp, 50)
        out["backprop_ms"] = 1e3 * min(before, after)
        out["incremental_s"] = fast_s
        if plain:
            t = time.perf_counter()
            g = nn.numerical_gradient(lambda q: regularized_cost(q, Xj, Y, lam, "sigmoid",
                                                                 "sigmoid"), p, 1e-4)
            jax.block_until_ready(g)
            out["plain_s"] = time.perf_counter() - t
            out["incremental_vs_plain"] = relative_difference(fast, octave_order(g))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--gradcheck", action="store_true",
                    help="also time the full gradient check (incremental and plain numerical "
                         "gradients, check_gradients) of 400-25-10 and 400-100-50-10 networks")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, a few seconds: checks that the script runs")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args()
    sizes, m, repeats = ((20, 8, 4), 200, BLOCK) if args.smoke else (SIZES, M, args.repeats)
    if args.smoke:
        print(SMOKE)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {describe()}; "
          f"{sizes} network, m={m}")
    runs = [run(dt, repeats, sizes, m, n_matmul=128 if args.smoke else 1024)
            for dt in ("float32", "float64")]
    for _, numpy_phase in runs:  # after every XLA entry (see the module's docstring)
        numpy_phase()
    results = [r for r, _ in runs]
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
    for r in results:
        e = r["entries"]
        r["backprop_over_products"] = {
            s: e["jaxnn.backprop"][f"{s}_ms"] / e["two products"][f"{s}_ms"]
            for s in ("median", "min")}
        print(f"{r['dtype']}: backprop / its two large products alone = "
              f"{r['backprop_over_products']['median']:.2f} (medians), "
              f"{r['backprop_over_products']['min']:.2f} (fastest) (target 1.25)")
    if args.gradcheck:
        nets = ((20, 8, 4),) if args.smoke else GRADCHECK_SIZES
        X, y, source = gradcheck_data(m, nets[0][0], nets[0][-1], args.smoke)
        print(f"\nGradient check, every parameter, float64, lam=1, m={X.shape[0]} ({source}), "
              "eps=1e-4")
        head = (f"{'network':>16} {'params':>7} {'backprop ms':>12} {'incremental s':>14} "
                f"{'x backprop':>11} {'plain s':>9} {'x backprop':>11} "
                f"{'check 1st s':>12} {'check s':>8} {'num vs bp':>10} {'fast vs plain':>14}")
        print(head)
        print("-" * len(head))
        checks = []
        for k, net in enumerate(nets):
            c = gradcheck(net, X, y, plain=k == 0, repeats=1 if args.smoke else 3)
            checks.append(c)
            ms = c["backprop_ms"]
            plain = (f"{c['plain_s']:9.2f} {1e3 * c['plain_s'] / ms:11.0f}" if "plain_s" in c
                     else f"{'-':>9} {'-':>11}")
            agree = f"{c['incremental_vs_plain']:14.1e}" if "plain_s" in c else f"{'-':>14}"
            print(f"{'-'.join(map(str, net)):>16} {c['parameters']:7d} {ms:12.2f} "
                  f"{c['incremental_s']:14.3f} {1e3 * c['incremental_s'] / ms:11.0f} "
                  f"{plain} {c['check_gradients_first_s']:12.2f} "
                  f"{c['check_gradients_repeat_s']:8.2f} {c['relative_difference']:10.1e}"
                  f"{agree}")
        print("incremental: numerical_cost_gradient; plain: numerical_gradient of the cost; "
              "x backprop: over one float64 backprop call in the same run; check 1st: the "
              "first check_gradients call in this process (with compilation).")
        results.append({"gradcheck": checks, "data": source})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
