"""Train the course's 400-25-10 network on mnist5k with jaxnn and with the tools people would
otherwise use, and time it.

Usage:
    python benchmarks/bench_training.py [--maxiter 400] [--recipe-evals 400]
                                        [--skip-recipe] [--skip-torch] [--skip-overhead]
    python benchmarks/bench_training.py --figures   # accuracy after 50 and 400 iterations

Data: `jaxnn.datasets.mnist5k()`, the stratified 4000/1000 split
`train_test_split(X, y, test_size=0.2, seed=0)`; network 400-25-10, `lam = 1`, `maxiter`
iterations for every entry, everything from the same initial weights
`init_params(0, (400, 25, 10))` except scikit-learn (which initializes its own).

Entries:
* jaxnn `fit(method="L-BFGS-B")` (scipy bridge) and `fit(method="lbfgs")` (optax, compiled loop),
  float64 and float32, `tol=0` so that every run does `maxiter` iterations. Each is run twice:
  "cold" (the first call in the process, compilation included) and "warm".
* jaxnn L-BFGS-B with `output="softmax"`: scikit-learn's own objective, for comparing costs.
* scikit-learn `MLPClassifier(hidden_layer_sizes=(25,), activation="logistic",
  solver="lbfgs", alpha=1.0, tol=0, max_iter=maxiter)`. Its loss is the softmax cross-entropy
  plus `alpha/(2m) ||W||^2` (biases not penalized): with `alpha = lam` the same penalty as
  jaxnn's, on a softmax rather than per-class-sigmoid output.
* the recipe of the classic Python write-ups of this exercise: numpy, the cost and the
  backward pass each a Python loop over the examples, `scipy.optimize.minimize(method="TNC",
  jac=True, options={"maxiter": N})`. In the scipy those write-ups used, TNC's `maxiter`
  counted *function evaluations* (it was later renamed `maxfun`; today's TNC ignores
  `maxiter`), so the recipe runs `--recipe-evals` evaluations (TNC makes 16 to 40 evaluations
  per iteration on this problem: 400 iterations would take 25 minutes to an hour).
* PyTorch `torch.optim.LBFGS(line_search_fn="strong_wolfe", history_size=10)` on the course's
  cost, float32 and float64 with torch's default threads and float32 with one thread, when
  torch is installed (it is optional: skipped when absent).

The last column divides each entry's wall time by jaxnn L-BFGS-B float32 cold: what
`fit(init_params(0, sizes), X, y)` does out of the box (float32 is its default; compilation
included). A second table measures the scipy bridge's per-evaluation overhead. scikit-learn runs
twice: with OpenBLAS's default threads and with one BLAS thread (threadpoolctl), since on a busy
machine OpenBLAS's threads can cost more than they give.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

import jaxnn
from jaxnn.datasets import mnist5k, train_test_split
from jaxnn.train import fit

SIZES = (400, 25, 10)
LAM = 1.0


@dataclass
class Row:
    name: str
    dtype: str
    seconds: float
    n_iter: int | None
    n_evals: int | None
    cost: float | None
    train: float
    test: float
    note: str = ""


def accuracies(params, data) -> tuple[float, float]:
    Xtr, Xte, ytr, yte = data
    with jaxnn.x64():
        p = tuple(np.asarray(t, np.float64) for t in params)
        return jaxnn.accuracy(p, Xtr, ytr), jaxnn.accuracy(p, Xte, yte)


def course_cost(params, data) -> float:
    Xtr, _, ytr, _ = data
    with jaxnn.x64():
        return float(jaxnn.cost(tuple(np.asarray(t, np.float64) for t in params), Xtr, ytr, LAM))


# --- jaxnn ---------------------------------------------------------------------------------------


def run_jaxnn(data, p0, method: str, dtype: str, maxiter: int, label: str,
              output: str = "sigmoid") -> Row:
    Xtr, _, ytr, _ = data
    r = fit(p0, Xtr, ytr, LAM, method=method, maxiter=maxiter, dtype=dtype, tol=0.0,
            output=output)
    train, test = accuracies(r.params, data)
    return Row(f"jaxnn {method}{'' if output == 'sigmoid' else ' softmax'} ({label})", dtype,
               r.seconds, r.n_iter, r.n_evals, r.cost, train, test, r.message)


# --- scikit-learn --------------------------------------------------------------------------------


def run_sklearn(data, maxiter: int, blas_threads: int | None = None) -> Row:
    from sklearn.neural_network import MLPClassifier

    class Counting(MLPClassifier):
        """Counts the value-and-gradient evaluations scipy asks for."""

        def _loss_grad_lbfgs(self, *args, **kw):
            self.n_evals_ = getattr(self, "n_evals_", 0) + 1
            return super()._loss_grad_lbfgs(*args, **kw)

    Xtr, Xte, ytr, yte = data
    clf = Counting(hidden_layer_sizes=(25,), activation="logistic", solver="lbfgs", alpha=LAM,
                   tol=0, max_iter=maxiter, random_state=0)
    import warnings

    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(blas_threads, user_api="blas"):
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        clf.fit(Xtr, ytr)
        seconds = time.perf_counter() - t
    threads = "default BLAS threads" if blas_threads is None else f"BLAS {blas_threads} thread"
    return Row(f"scikit-learn MLPClassifier lbfgs ({threads})", "float64", seconds, clf.n_iter_,
               clf.n_evals_, clf.loss_, clf.score(Xtr, ytr), clf.score(Xte, yte),
               "softmax loss + alpha/(2m)||W||^2 (the cost column is this loss)")


# --- the classic numpy recipe --------------------------------------------------------------------


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _recipe_forward(X, theta1, theta2):
    m = X.shape[0]
    a1 = np.insert(X, 0, values=np.ones(m), axis=1)
    z2 = a1 @ theta1.T
    a2 = np.insert(_sigmoid(z2), 0, values=np.ones(m), axis=1)
    z3 = a2 @ theta2.T
    return a1, z2, a2, z3, _sigmoid(z3)


def recipe_backprop(params, input_size, hidden_size, num_labels, X, y, learning_rate):
    """The write-ups' cost and gradient: row-major unrolling, Python loops over examples."""
    m = X.shape[0]
    theta1 = params[: hidden_size * (input_size + 1)].reshape(hidden_size, input_size + 1)
    theta2 = params[hidden_size * (input_size + 1):].reshape(num_labels, hidden_size + 1)
    a1, z2, a2, z3, h = _recipe_forward(X, theta1, theta2)
    J = 0.0
    for i in range(m):
        first_term = np.multiply(-y[i, :], np.log(h[i, :]))
        second_term = np.multiply(1 - y[i, :], np.log(1 - h[i, :]))
        J += np.sum(first_term - second_term)
    J = J / m
    J += (learning_rate / (2 * m)) * (np.sum(theta1[:, 1:] ** 2) + np.sum(theta2[:, 1:] ** 2))
    delta1 = np.zeros(theta1.shape)
    delta2 = np.zeros(theta2.shape)
    for t in range(m):
        a1t, z2t, a2t = a1[t:t + 1, :], z2[t:t + 1, :], a2[t:t + 1, :]
        d3t = h[t:t + 1, :] - y[t:t + 1, :]
        z2t = np.insert(z2t, 0, values=np.ones(1), axis=1)
        d2t = np.multiply(d3t @ theta2, _sigmoid(z2t) * (1 - _sigmoid(z2t)))
        delta1 = delta1 + d2t[:, 1:].T @ a1t
        delta2 = delta2 + d3t.T @ a2t
    delta1, delta2 = delta1 / m, delta2 / m
    delta1[:, 1:] += theta1[:, 1:] * learning_rate / m
    delta2[:, 1:] += theta2[:, 1:] * learning_rate / m
    return J, np.concatenate((np.ravel(delta1), np.ravel(delta2)))


def run_recipe(data, p0, evals: int) -> Row:
    Xtr, _, ytr, _ = data
    Y = np.eye(SIZES[-1])[ytr]
    x0 = np.concatenate([np.asarray(t, np.float64).ravel() for t in p0])
    count = [0]

    def objective(x, *args):
        count[0] += 1
        return recipe_backprop(x, *args)

    t = time.perf_counter()
    res = scipy.optimize.minimize(objective, x0, args=(SIZES[0], SIZES[1], SIZES[2], Xtr, Y, LAM),
                                  method="TNC", jac=True, options={"maxfun": evals})
    seconds = time.perf_counter() - t
    n1 = SIZES[1] * (SIZES[0] + 1)
    params = (res.x[:n1].reshape(SIZES[1], -1), res.x[n1:].reshape(SIZES[2], -1))
    train, test = accuracies(params, data)
    return Row("numpy per-example loops + scipy TNC", "float64", seconds, res.nit, count[0],
               course_cost(params, data), train, test, f"maxfun={evals}")


# --- PyTorch -------------------------------------------------------------------------------------


def run_torch(data, p0, maxiter: int, dtype: str, threads: int | None = None) -> Row | None:
    try:
        import torch
    except ImportError:
        return None
    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    Xtr, _, ytr, _ = data
    tdt = getattr(torch, dtype)
    X = torch.tensor(Xtr, dtype=tdt)
    Y = torch.nn.functional.one_hot(torch.tensor(ytr), SIZES[-1]).to(tdt)
    thetas = [torch.tensor(np.asarray(t, np.float64), dtype=tdt, requires_grad=True) for t in p0]
    m = X.shape[0]
    count = [0]

    def closure():
        opt.zero_grad()
        a = X
        for theta in thetas[:-1]:
            a = torch.sigmoid(a @ theta[:, 1:].T + theta[:, 0])
        z = a @ thetas[-1][:, 1:].T + thetas[-1][:, 0]
        J = (torch.nn.functional.softplus(z) - Y * z).sum() / m
        J = J + LAM / (2 * m) * sum((t[:, 1:] ** 2).sum() for t in thetas)
        J.backward()
        count[0] += 1
        return J

    opt = torch.optim.LBFGS(thetas, lr=1, max_iter=maxiter, max_eval=10**9, tolerance_grad=0,
                            tolerance_change=0, history_size=10, line_search_fn="strong_wolfe")
    t = time.perf_counter()
    opt.step(closure)
    seconds = time.perf_counter() - t
    n_threads = torch.get_num_threads()
    torch.set_num_threads(default_threads)
    params = tuple(t.detach().numpy() for t in thetas)
    train, test = accuracies(params, data)
    return Row(f"PyTorch LBFGS (strong Wolfe, {n_threads} thread{'s' * (n_threads > 1)})",
               dtype, seconds, opt.state[thetas[0]]["n_iter"], count[0],
               course_cost(params, data), train, test, f"torch {torch.__version__}")


# --- the scipy bridge's overhead ---------------------------------------------------------------


def _interleaved(fns: dict[str, Callable[[], object]], seconds: float = 2.0) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating batches so that the
    machine's load (it is shared) hits them all alike."""
    for fn in fns.values():
        fn(), fn()
    t = time.perf_counter()
    next(iter(fns.values()))()
    once = max(time.perf_counter() - t, 1e-6)
    n = max(1, int(seconds / 20 / len(fns) / once))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(20):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[k].append((time.perf_counter() - t) / n)
    return {k: float(np.median(v)) for k, v in times.items()}


def _overhead_one(X, y, p, sizes, dtype: str) -> tuple[float, float, float]:
    """``(raw jitted call, bridge call, scipy's own time per evaluation)`` in seconds."""
    from jaxnn.train import ScipyObjective, blas_single_thread, packed_value_and_grad

    with jaxnn.x64(dtype == "float64"):
        Xd = jnp.asarray(X, dtype)
        Yd = jaxnn.one_hot(jnp.asarray(y), sizes[-1], dtype)
        lam = jnp.asarray(LAM, dtype)
        theta = np.asarray(jaxnn.ravel_params(tuple(jnp.asarray(t, dtype) for t in p)),
                           np.float64)
        theta_dev = jnp.asarray(theta, dtype)
        spec = jaxnn.NetSpec(tuple(sizes))
        raw_fn = partial(packed_value_and_grad, spec=spec)
        obj = ScipyObjective(Xd, Yd, lam, spec)
        t = _interleaved({"raw": lambda: raw_fn(theta_dev, Xd, Yd, lam).block_until_ready(),
                          "bridge": lambda: obj(theta)})
        raw, bridge = t["raw"], t["bridge"]
        # scipy's own time: a 200-iteration L-BFGS-B run minus the time inside the objective
        inside = [0.0, 0]

        def timed(x):
            t = time.perf_counter()
            out = obj(x)
            inside[0] += time.perf_counter() - t
            inside[1] += 1
            return out

        t = time.perf_counter()
        with blas_single_thread():  # as fit runs scipy
            scipy.optimize.minimize(timed, theta, jac=True, method="L-BFGS-B",
                                    options={"maxiter": 200, "ftol": 0, "gtol": 0})
        scipy_own = (time.perf_counter() - t - inside[0]) / inside[1]
    return raw, bridge, scipy_own


def overhead(data, p0) -> list[tuple[str, float, float, float]]:
    """``(problem, raw jitted call, bridge call, scipy's own time per evaluation)`` in us."""
    Xtr, _, ytr, _ = data
    tiny_X = (np.sin(np.arange(1, 16)) / 10).reshape((5, 3), order="F")
    with jaxnn.x64():
        tiny_p = tuple(np.asarray(t) for t in jaxnn.debug_params((3, 5, 3), dtype=np.float64))
    problems = [("400-25-10, m=4000", Xtr, ytr, p0, SIZES),
                ("3-5-3, m=5 (course debug)", tiny_X, np.array([1, 2, 0, 1, 2]), tiny_p,
                 (3, 5, 3))]
    out = []
    for dtype in ("float64", "float32"):
        for name, X, y, p, sizes in problems:
            raw, bridge, scipy_own = _overhead_one(X, y, p, sizes, dtype)
            out.append((f"{name}, {dtype}", raw * 1e6, bridge * 1e6, scipy_own * 1e6))
    return out


# --- the course's figures -------------------------------------------------------------------------


def figures(data, p0) -> None:
    """Training and held-out accuracy after 50 and 400 iterations (jaxnn's default tolerances)."""
    Xtr, Xte, ytr, yte = data
    print("| method | dtype | iterations | train acc | held-out acc | cost |")
    print("|---|---|---|---|---|---|")
    for method in ("L-BFGS-B", "lbfgs"):
        for dtype in ("float64", "float32"):
            for maxiter in (50, 400):
                r = fit(p0, Xtr, ytr, LAM, method=method, maxiter=maxiter, dtype=dtype)
                train, test = accuracies(r.params, data)
                print(f"| {method} | {dtype} | {r.n_iter} | {100 * train:.2f}% | "
                      f"{100 * test:.2f}% | {r.cost:.5f} |")


# --- report --------------------------------------------------------------------------------------


def table(rows: list[Row], ref: float) -> str:
    head = ("| entry | dtype | wall s | iterations | evaluations | ms / eval | final cost "
            "| train acc | held-out acc | time / jaxnn |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        ms = f"{r.seconds / r.n_evals * 1e3:.2f}" if r.n_evals else "-"
        cost = f"{r.cost:.5f}" if r.cost is not None else "-"
        lines.append(
            f"| {r.name} | {r.dtype} | {r.seconds:.2f} | {r.n_iter} | {r.n_evals} | {ms} "
            f"| {cost} | {100 * r.train:.2f}% | {100 * r.test:.2f}% | {r.seconds / ref:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--maxiter", type=int, default=400)
    ap.add_argument("--recipe-evals", type=int, default=400)
    ap.add_argument("--skip-recipe", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--figures", action="store_true",
                    help="only the accuracy after 50 and 400 iterations, no timings")
    args = ap.parse_args()

    X, y = mnist5k()
    data = train_test_split(X, y, test_size=0.2, seed=0)
    with jaxnn.x64():
        p0 = tuple(np.asarray(t) for t in jaxnn.init_params(0, SIZES, dtype=np.float64))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__}, {jax.devices()[0].platform}; m_train={len(data[2])}, "
          f"m_test={len(data[3])}, {'-'.join(map(str, SIZES))}, lam={LAM}, "
          f"maxiter={args.maxiter}; load average at start {os.getloadavg()[0]:.2f}\n")
    if args.figures:
        figures(data, p0)
        return

    rows = []
    for method in ("L-BFGS-B", "lbfgs"):
        for dtype in ("float64", "float32"):
            rows.append(run_jaxnn(data, p0, method, dtype, args.maxiter, "cold"))
            rows.append(run_jaxnn(data, p0, method, dtype, args.maxiter, "warm"))
            print(f"  done: {rows[-1].name} {dtype}", flush=True)
    rows.append(run_jaxnn(data, p0, "L-BFGS-B", "float64", args.maxiter, "cold", "softmax"))
    rows.append(run_sklearn(data, args.maxiter))
    rows.append(run_sklearn(data, args.maxiter, blas_threads=1))
    print("  done: scikit-learn", flush=True)
    if not args.skip_torch:
        for dtype, threads in (("float32", None), ("float64", None), ("float32", 1)):
            row = run_torch(data, p0, args.maxiter, dtype, threads)
            if row is None:
                print("  torch is not installed: skipped")
                break
            rows.append(row)
        print("  done: torch", flush=True)
    if not args.skip_recipe:
        rows.append(run_recipe(data, p0, args.recipe_evals))
        print("  done: numpy/TNC recipe", flush=True)

    ref = rows[2].seconds  # jaxnn L-BFGS-B float32 cold: fit()'s default dtype, compile included
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    print(table(rows, ref))
    print()
    for r in rows:
        print(f"- {r.name} [{r.dtype}]: {r.note}")

    if not args.skip_overhead:
        print("\n## scipy bridge: microseconds per value-and-gradient evaluation\n")
        print("| problem | raw jitted call (device theta) | bridge call (host theta -> J, g) "
              "| bridge - raw | scipy L-BFGS-B's own time per evaluation |")
        print("|---|---|---|---|---|")
        for name, raw, bridge, scipy_own in overhead(data, p0):
            print(f"| {name} | {raw:.1f} | {bridge:.1f} | {bridge - raw:+.1f} | {scipy_own:.1f} |")


if __name__ == "__main__":
    main()
