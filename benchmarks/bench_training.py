"""Train the course's 400-25-10 network on mnist5k with jaxnn and with the tools people would
otherwise use, and time it.

Usage:
    python benchmarks/bench_training.py [--maxiter 400] [--repeats 3] [--cold-repeats 3]
                                        [--recipe-evals 400]
                                        [--skip-recipe] [--skip-torch] [--skip-sklearn]
                                        [--skip-overhead] [--skip-closeness] [--json out.json]
    python benchmarks/bench_training.py --figures   # accuracy after 50 and 400 iterations
    python benchmarks/bench_training.py --smoke     # tiny sizes, seconds: every row runs

Data: `jaxnn.datasets.mnist5k()`, the stratified 4000/1000 split
`train_test_split(X, y, test_size=0.2, seed=0)`; network 400-25-10, `lam = 1`, `maxiter`
iterations for every entry, everything from the same initial weights
`init_params(0, (400, 25, 10))` except scikit-learn (which initializes its own).

Entries:
* jaxnn `fit` default (`method="L-BFGS-B"`: :mod:`jaxnn.train.lbfgsb`, scipy's L-BFGS-B
  iterations as one compiled loop), float32 (fit's default dtype) and float64;
  `fit(method="lbfgs")` (optax's L-BFGS, compiled loop);
  `fit(method="fmincg")` (the course's conjugate gradient, compiled loop) for 50 and
  `maxiter` line searches. jaxnn runs with `tol=0` (not fmincg, which has no tolerance) so that
  every run does all its iterations.
* "cold": the first call in a fresh process (a child process per run: `import jaxnn`, data
  loading and the problem's arrays excluded, compilation included), the fastest of
  `--cold-repeats` processes run in rotation with the other cold entries; "warm": the same call
  again in this process, the fastest of `--repeats` runs interleaved with every other warm
  entry, so that the shared machine's load hits them alike (the median is in the notes).
  "compile s": XLA's compilation time during the cold call (the `backend_compile` events of
  `jax.monitoring`); "trace + lower s": JAX's tracing of the programs and their lowering to
  StableHLO before it (the `jaxpr_trace` and `jaxpr_to_mlir_module` events). The default
  float32 also runs cold with `jaxnn.program_cache` on: one more fresh process saves its loop
  first, and the row's processes load it, tracing and compiling nothing.
* scipy's own `scipy.optimize.minimize(method="L-BFGS-B")`, one compiled value-and-gradient
  call per evaluation (:class:`jaxnn.train.ScipyObjective`, the bridge of `fit`'s scipy
  methods): the reference for the default's speed and iterations.
* jaxnn L-BFGS-B with `output="softmax"`: scikit-learn's own objective, for comparing costs.
* scikit-learn `MLPClassifier(hidden_layer_sizes=(25,), activation="logistic",
  solver="lbfgs", alpha=1.0, tol=0, max_iter=maxiter)`, default BLAS threads and one. Its loss
  is the softmax cross-entropy plus `alpha/(2m) ||W||^2` (biases not penalized).
* the recipe of the classic Python write-ups of this exercise: numpy, the cost and the
  backward pass each a Python loop over the examples, `scipy.optimize.minimize(method="TNC",
  jac=True)` for `--recipe-evals` evaluations (TNC's old `maxiter` counted evaluations).
* PyTorch `torch.optim.LBFGS(line_search_fn="strong_wolfe", history_size=10)` on the course's
  cost, float32 with torch's default threads (warm, and cold in a fresh process), float64, and
  float32 with one thread, when torch is installed (optional: skipped when absent).

The last column is PyTorch LBFGS float32 (default threads, warm) over the entry's wall time:
how many times faster than PyTorch in steady state. Further tables: the closeness of the
default's iterates to scipy's L-BFGS-B (float32 and float64), and the per-evaluation overhead
of the bridge, of scipy's L-BFGS-B and of the default's compiled loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from goals import SMOKE
from machine import describe

import jaxnn
from jaxnn.datasets import mnist5k, train_test_split
from jaxnn.train import fit

SIZES = (400, 25, 10)
LAM = 1.0
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
# tracing a program to a jaxpr, and lowering the jaxpr to StableHLO: before XLA compiles it
STAGING_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration")


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
    compile_s: float | None = None  # XLA's compilation (cold rows)
    staging_s: float | None = None  # tracing and lowering (cold rows)


def load_data(smoke: bool):
    X, y = mnist5k()
    if smoke:  # 200 digits, stratified like the real run
        X, _, y, _ = train_test_split(X, y, test_size=0.96, seed=0)
    data = train_test_split(X, y, test_size=0.2, seed=0)
    with jaxnn.x64():
        p0 = tuple(np.asarray(t) for t in jaxnn.init_params(0, SIZES, dtype=np.float64))
    return data, p0


def accuracies(params, data) -> tuple[float, float]:
    Xtr, Xte, ytr, yte = data
    with jaxnn.x64():
        p = tuple(np.asarray(t, np.float64) for t in params)
        return jaxnn.accuracy(p, Xtr, ytr), jaxnn.accuracy(p, Xte, yte)


def course_cost(params, data) -> float:
    Xtr, _, ytr, _ = data
    with jaxnn.x64():
        return float(jaxnn.cost(tuple(np.asarray(t, np.float64) for t in params), Xtr, ytr, LAM))


class CompileTimer:
    """Sums XLA's compilation time (``seconds``) and the tracing and lowering before it
    (``staging``) while active."""

    def __enter__(self):
        self.seconds = self.staging = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _listen(self, event, duration, **kw):
        if event == COMPILE_EVENT:
            self.seconds += duration
        elif event in STAGING_EVENTS:
            self.staging += duration

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)


# --- jaxnn ---------------------------------------------------------------------------------------

def jaxnn_name(method: str, output: str, maxiter: int, full: int) -> str:
    label = "fit default (L-BFGS-B)" if method == "L-BFGS-B" else f'fit(method="{method}")'
    if output != "sigmoid":
        label += f" {output}"
    if method == "fmincg" and maxiter != full:
        label += f" {maxiter} line searches"
    return f"jaxnn {label}"


def run_jaxnn(data, p0, method: str, dtype: str, maxiter: int, label: str, full: int,
              output: str = "sigmoid") -> Row:
    Xtr, _, ytr, _ = data
    kw = {} if method == "fmincg" else {"tol": 0.0}
    with CompileTimer() as ct:
        r = fit(p0, Xtr, ytr, LAM, method=method, maxiter=maxiter, dtype=dtype, output=output,
                **kw)
    train, test = accuracies(r.params, data)
    cold = label.startswith("cold")
    return Row(f"{jaxnn_name(method, output, maxiter, full)} ({label})", dtype, r.seconds,
               r.n_iter, r.n_evals, r.cost, train, test, r.message,
               ct.seconds if cold else None, ct.staging if cold else None)


def run_scipy_reference(data, p0, dtype: str, maxiter: int) -> Row:
    """scipy's own L-BFGS-B through the same bridge (what the default ran before)."""
    from jaxnn.train.objective import ScipyObjective
    from jaxnn.train.problem import make_problem
    from jaxnn.train.scipy_bridge import blas_single_thread

    Xtr, _, ytr, _ = data
    t = time.perf_counter()
    with jaxnn.x64(dtype == "float64"):
        prob = make_problem(p0, Xtr, ytr, LAM, "sigmoid", "sigmoid", "backprop",
                            dtype == "float64", None)
        obj = ScipyObjective(prob.X, prob.Y, prob.lam, prob.spec)
        with blas_single_thread():
            res = scipy.optimize.minimize(obj, prob.theta0.astype(np.float64), jac=True,
                                          method="L-BFGS-B",
                                          options={"maxiter": maxiter, "ftol": 0, "gtol": 0})
    seconds = time.perf_counter() - t
    params = prob.unravel(res.x)
    train, test = accuracies(params, data)
    return Row("scipy.optimize.minimize L-BFGS-B, same bridge (warm)", dtype, seconds, res.nit,
               obj.n_evals, float(res.fun), train, test, str(res.message))


# --- scikit-learn --------------------------------------------------------------------------------

def run_sklearn(data, maxiter: int, blas_threads: int | None = None) -> Row:
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    class Counting(MLPClassifier):
        """Counts the value-and-gradient evaluations scipy asks for."""

        def _loss_grad_lbfgs(self, *args, **kw):
            self.n_evals_ = getattr(self, "n_evals_", 0) + 1
            return super()._loss_grad_lbfgs(*args, **kw)

    Xtr, Xte, ytr, yte = data
    clf = Counting(hidden_layer_sizes=(25,), activation="logistic", solver="lbfgs", alpha=LAM,
                   tol=0, max_iter=maxiter, random_state=0)
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


def recipe_backprop(params, input_size, hidden_size, num_labels, X, y, learning_rate):
    """The write-ups' cost and gradient: row-major unrolling, Python loops over examples."""
    m = X.shape[0]
    theta1 = params[: hidden_size * (input_size + 1)].reshape(hidden_size, input_size + 1)
    theta2 = params[hidden_size * (input_size + 1):].reshape(num_labels, hidden_size + 1)
    a1 = np.insert(X, 0, values=np.ones(m), axis=1)
    z2 = a1 @ theta1.T
    a2 = np.insert(_sigmoid(z2), 0, values=np.ones(m), axis=1)
    h = _sigmoid(a2 @ theta2.T)
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

def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_torch(data, p0, maxiter: int, dtype: str, threads: int | None = None,
              label: str = "warm") -> Row:
    import torch

    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
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
    seconds = time.perf_counter() - (t0 if label.startswith("cold") else t)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(default_threads)
    params = tuple(t.detach().numpy() for t in thetas)
    train, test = accuracies(params, data)
    return Row(f"PyTorch LBFGS (strong Wolfe, {n_threads} thread{'s' * (n_threads > 1)}) "
               f"({label})", dtype, seconds, opt.state[thetas[0]]["n_iter"], count[0],
               course_cost(params, data), train, test, f"torch {torch.__version__}")


# --- cold rows: the first call in a fresh process -----------------------------------------------

PROGRAMS_ENV = "BENCH_PROGRAM_CACHE"  # the children's program cache (a temporary directory)
SAVED = "program cache"  # in the label of the rows run with one
SAVED_LABEL = f"cold, fresh process, loop saved by an earlier one: {SAVED}"


def child_main(spec: str, smoke: bool) -> None:
    """Run the cold entries ``spec`` (``method:dtype:maxiter[,...]``, or ``torch``) here, in a
    fresh process, and print their rows as JSON lines; ``bound``: print :func:`bound`'s
    figures."""
    data, p0 = load_data(smoke)  # the backend starts here, before the timed call
    if spec == "bound":
        print("BOUND " + json.dumps(bound(data, p0, 0.2 if smoke else 2.0)), flush=True)
        return
    full = int(spec.split(",")[0].split(":")[2]) if spec != "torch" else 0
    for entry in spec.split(","):
        if entry == "torch":
            row = run_torch(data, p0, int(os.environ.get("BENCH_TORCH_MAXITER", "400")),
                            "float32", label="cold, fresh process")
        else:
            method, dtype, maxiter, *saved = entry.split(":")
            with jaxnn.program_cache(os.environ[PROGRAMS_ENV] if saved else None):
                row = run_jaxnn(data, p0, method, dtype, int(maxiter),
                                SAVED_LABEL if saved else "cold, fresh process",
                                max(full, int(maxiter)))
        print("ROW " + json.dumps(asdict(row)), flush=True)


def run_cold(entries: list[str], smoke: bool, data, p0, programs: str,
             repeats: int) -> list[Row]:
    """Each entry in a fresh process, ``repeats`` times in rotation: the row of its fastest
    run, as for the warm rows. An entry ending in ``:saved`` runs with the program cache in
    ``programs``, which one more process has filled first. With ``--smoke`` only the first
    entry: the others are the first call of their kind in this process (the same path, without
    a process start each)."""
    def child(spec: str) -> Row:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", spec] + ["--smoke"] * smoke
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                             env={**os.environ, PROGRAMS_ENV: programs})
        if out.returncode != 0:
            raise RuntimeError(f"child {spec} failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
        (row,) = [Row(**json.loads(line[4:])) for line in out.stdout.splitlines()
                  if line.startswith("ROW ")]
        return row

    fresh = entries[:1] if smoke else entries
    for spec in fresh:
        if spec.endswith(":saved"):
            child(spec)  # saves the loop
    rows = interleaved_warm({spec: partial(child, spec) for spec in fresh}, repeats)
    for spec in entries[len(fresh):]:
        if spec == "torch":
            rows[spec] = run_torch(data, p0, int(os.environ["BENCH_TORCH_MAXITER"]), "float32",
                                   label="cold, first call here")
        else:
            method, dtype, maxiter, *saved = spec.split(":")
            with jaxnn.program_cache(programs if saved else None):
                rows[spec] = run_jaxnn(data, p0, method, dtype, int(maxiter),
                                       "cold, first call here" + f", {SAVED}" * bool(saved),
                                       int(maxiter))
    return [rows[spec] for spec in entries]


def interleaved_warm(fns: dict[str, Callable[[], Row]], repeats: int) -> dict[str, Row]:
    """Each entry run ``repeats`` times in rotation; the row of its fastest run (on a shared
    machine the other jobs only ever add time; the median is in the note)."""
    runs: dict[str, list[Row]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            runs[k].append(fn())
    out = {}
    for k, rs in runs.items():
        row = min(rs, key=lambda r: r.seconds)
        if len(rs) > 1:
            row.note += (f" [best of {len(rs)}; median {np.median([r.seconds for r in rs]):.2f}"
                         " s; runs: " + ", ".join(f"{r.seconds:.2f}" for r in rs) + "]")
        out[k] = row
    return out


# --- the default's iterates against scipy's L-BFGS-B ----------------------------------------

def _keeper(xs: list) -> Callable:
    def keep(intermediate_result):  # scipy reads the parameter's name
        xs.append(np.array(intermediate_result.x))
    return keep


def closeness(data, p0, dtype: str, maxiter: int) -> list[tuple[int, float, float]]:
    """``(iteration, |x_jaxnn - x_scipy| / |x_scipy|, |x_scipy' - x_scipy| / |x_scipy|)``: the
    default's iterates (``fit``, its callback after every iteration: ``segment=1``) against
    scipy's L-BFGS-B through the bridge, and scipy's against scipy's from a start moved by one
    float64 rounding (the drift any change of rounding causes). In float32 the default's
    iterates are float32 and scipy's float64 (its evaluations float32)."""
    from jaxnn.train.objective import ScipyObjective
    from jaxnn.train.problem import make_problem
    from jaxnn.train.scipy_bridge import blas_single_thread

    Xtr, _, ytr, _ = data
    ours: list[np.ndarray] = []
    fit(p0, Xtr, ytr, LAM, maxiter=maxiter, dtype=dtype, tol=0, segment=1,
        callback=lambda it, cost, params: ours.append(jaxnn.ravel_params(params)))
    with jaxnn.x64(dtype == "float64"), blas_single_thread():
        prob = make_problem(p0, Xtr, ytr, LAM, "sigmoid", "sigmoid", "backprop",
                            dtype == "float64", None)
        obj = ScipyObjective(prob.X, prob.Y, prob.lam, prob.spec)
        x0 = prob.theta0.astype(np.float64)
        # the next float64 after each entry: the float32 evaluations see the same numbers
        x0b = np.nextafter(x0, np.inf) if dtype == "float64" else x0.copy()
        paths = []
        for start in (x0, x0b):
            xs: list[np.ndarray] = []
            scipy.optimize.minimize(obj, start, jac=True, method="L-BFGS-B",
                                    callback=_keeper(xs),
                                    options={"maxiter": maxiter, "ftol": 0, "gtol": 0})
            paths.append(xs)
    ref, moved = paths
    n = min(len(ours), len(ref), len(moved))
    marks = sorted({k for k in (1, 10, 20, 30, 40, 50, 75, 100, 200, maxiter) if k <= n} | {n})

    def rel(a, b):
        return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))

    return [(k, rel(ours[k - 1], ref[k - 1]), rel(moved[k - 1], ref[k - 1]) if dtype ==
             "float64" else float("nan")) for k in marks]


# --- per-evaluation overhead ---------------------------------------------------------------------

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


def _own_time(minimizer: Callable, obj, theta: np.ndarray, iters: int, repeats: int = 3
              ) -> float:
    """The optimizer's own seconds per evaluation: a run minus the time inside the objective,
    median of ``repeats`` runs."""
    from jaxnn.train.scipy_bridge import blas_single_thread

    out = []
    for _ in range(repeats):
        inside = [0.0, 0]

        def timed(x, inside=inside):
            t = time.perf_counter()
            r = obj(x)
            inside[0] += time.perf_counter() - t
            inside[1] += 1
            return r

        t = time.perf_counter()
        with blas_single_thread():  # as fit runs them
            minimizer(timed, theta, iters)
        out.append((time.perf_counter() - t - inside[0]) / inside[1])
    return float(np.median(out))


def _loop_time(X, y, p, dtype: str, iters: int, repeats: int = 3) -> float:
    """The default's compiled loop: seconds per evaluation of a warm ``fit`` (``tol=0``,
    ``iters`` iterations), median of ``repeats`` runs."""
    fit(p, X, y, LAM, maxiter=iters, dtype=dtype, tol=0)  # compiled here
    runs = [fit(p, X, y, LAM, maxiter=iters, dtype=dtype, tol=0) for _ in range(repeats)]
    return float(np.median([r.seconds / r.n_evals for r in runs]))


def _overhead_one(X, y, p, sizes, dtype: str, iters: int, seconds: float
                  ) -> tuple[float, ...]:
    """``(raw jitted call, bridge call, scipy's own time, the default's compiled loop)`` per
    evaluation, in seconds."""
    from jaxnn.train.objective import ScipyObjective, packed_value_and_grad

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
                          "bridge": lambda: obj(theta)}, seconds)
        opts = {"ftol": 0, "gtol": 0}
        scipy_own = _own_time(lambda f, x, n: scipy.optimize.minimize(
            f, x, jac=True, method="L-BFGS-B", options={"maxiter": n, **opts}), obj, theta,
            iters)
    return t["raw"], t["bridge"], scipy_own, _loop_time(X, y, p, dtype, iters)


def overhead(data, p0, iters: int, seconds: float = 2.0
             ) -> list[tuple[str, float, float, float, float]]:
    """``(problem, raw, bridge, scipy's own, the default's loop)`` in microseconds."""
    Xtr, _, ytr, _ = data
    tiny_X = (np.sin(np.arange(1, 16)) / 10).reshape((5, 3), order="F")
    with jaxnn.x64():
        tiny_p = tuple(np.asarray(t) for t in jaxnn.debug_params((3, 5, 3), dtype=np.float64))
    problems = [(f"400-25-10, m={len(ytr)}", Xtr, ytr, p0, SIZES),
                ("3-5-3, m=5 (course debug)", tiny_X, np.array([1, 2, 0, 1, 2]), tiny_p,
                 (3, 5, 3))]
    out = []
    for dtype in ("float64", "float32"):
        for name, X, y, p, sizes in problems:
            times = _overhead_one(X, y, p, sizes, dtype, iters, seconds)
            out.append((f"{name}, {dtype}", *(v * 1e6 for v in times)))
    return out


BOUND_PASSES = 25  # evaluations (or pairs of products) per compiled loop timed by bound()


def bound(data, p0, seconds: float = 2.0) -> tuple[float, float, float]:
    """``(two large products, whole evaluation, FLOP floor)``: median seconds per pass on the
    training set in float32, timed here side by side; the floor is one evaluation's
    matrix-product FLOPs at the median rate of a 1024 x 1024 float32 product timed with them.

    The products and the evaluation are timed as the training loops run them: ``BOUND_PASSES``
    passes in one ``lax.fori_loop`` compiled with the loops' options
    (:data:`jaxnn.compiling.LOOPS`), each pass's output feeding the next (the forward product
    is the next pass's ``delta``, ``0 * g`` is added to the weights), so no call's dispatch
    counts. Any L-BFGS-B run of ``N`` evaluations needs at least ``N`` times either of the first
    two (the first is what no change to jaxnn's code can remove: XLA's rate for these 25-row
    products). :func:`main` runs this in a fresh process (``--child bound``), where no other
    library's threads are left from earlier rows."""
    from bench_gradients import flops_per_evaluation  # a sibling script

    from jaxnn.compiling import LOOPS, jit_with_options

    Xtr, _, ytr, _ = data
    X = jnp.asarray(Xtr, jnp.float32)
    Y = jaxnn.one_hot(jnp.asarray(ytr), SIZES[-1], jnp.float32)
    w1 = jnp.asarray(p0[0][:, 1:], jnp.float32)
    delta_t = jnp.asarray(np.random.default_rng(0).random((SIZES[1], len(ytr))), jnp.float32)
    theta = jnp.asarray(jaxnn.ravel_params(p0), jnp.float32)
    lam = jnp.asarray(LAM, jnp.float32)
    spec = jaxnn.NetSpec(SIZES)

    def products(i, c):  # backprop's layout: Theta1[:, 1:] X^T forward, delta_2 X backward
        w, d = c
        return w + 0.0 * (d @ X), w @ X.T

    def evaluation(i, c):
        t, total = c
        f, g = spec.value_and_grad(t, X, Y, lam)
        return t + 0.0 * g, total + f

    loops = {k: jit_with_options(lambda c, body=body: jax.lax.fori_loop(
        0, BOUND_PASSES, body, c), LOOPS) for k, body in (("products", products),
                                                          ("evaluation", evaluation))}
    A = jnp.asarray(np.random.default_rng(1).random((1024, 1024)), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    t = _interleaved({
        "products": lambda: jax.block_until_ready(loops["products"]((w1, delta_t))),
        "evaluation": lambda: jax.block_until_ready(
            loops["evaluation"]((theta, jnp.zeros((), jnp.float32)))),
        "matmul": lambda: matmul(A).block_until_ready()}, seconds)
    floor = flops_per_evaluation(SIZES, len(ytr)) / (2 * 1024**3 / t["matmul"])
    return t["products"] / BOUND_PASSES, t["evaluation"] / BOUND_PASSES, floor


def bound_in_child(smoke: bool) -> tuple[float, float, float]:
    """:func:`bound` in a fresh process (``--child bound``)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "bound"] + ["--smoke"] * smoke
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"child bound failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("BOUND ")]
    return tuple(json.loads(line[6:]))


# --- the course's figures -------------------------------------------------------------------------

def figures(data, p0) -> None:
    """Training and held-out accuracy after 50 and 400 iterations (jaxnn's default tolerances)."""
    print("| method | dtype | iterations | train acc | held-out acc | cost |")
    print("|---|---|---|---|---|---|")
    Xtr, _, ytr, _ = data
    for method in ("L-BFGS-B", "lbfgs", "fmincg"):
        for dtype in ("float64", "float32"):
            for maxiter in (50, 400):
                r = fit(p0, Xtr, ytr, LAM, method=method, maxiter=maxiter, dtype=dtype)
                train, test = accuracies(r.params, data)
                print(f"| {method} | {dtype} | {r.n_iter} | {100 * train:.2f}% | "
                      f"{100 * test:.2f}% | {r.cost:.5f} |")


# --- report --------------------------------------------------------------------------------------

def table(rows: list[Row], torch_warm: float | None) -> str:
    head = ("| entry | dtype | wall s | compile s | trace + lower s | iterations | evaluations "
            "| ms / eval | final cost | train acc | held-out acc | PyTorch warm / this |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        ms = f"{r.seconds / r.n_evals * 1e3:.2f}" if r.n_evals else "-"
        cost = f"{r.cost:.5f}" if r.cost is not None else "-"
        comp = f"{r.compile_s:.2f}" if r.compile_s is not None else "-"
        staging = f"{r.staging_s:.2f}" if r.staging_s is not None else "-"
        speed = f"{torch_warm / r.seconds:.2f}x" if torch_warm else "-"
        lines.append(
            f"| {r.name} | {r.dtype} | {r.seconds:.2f} | {comp} | {staging} | {r.n_iter} "
            f"| {r.n_evals} | {ms} | {cost} | {100 * r.train:.2f}% | {100 * r.test:.2f}% "
            f"| {speed} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    ap.add_argument("--maxiter", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per entry (median)")
    ap.add_argument("--cold-repeats", type=int, default=3,
                    help="fresh processes per cold entry, in rotation (the fastest is the row)")
    ap.add_argument("--recipe-evals", type=int, default=400)
    ap.add_argument("--skip-recipe", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-closeness", action="store_true")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--figures", action="store_true",
                    help="only the accuracy after 50 and 400 iterations, no timings")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes (200 digits, 5 iterations, one repeat): every row, seconds")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.smoke)
        return
    if args.smoke:
        print(SMOKE)
        args.maxiter, args.repeats, args.recipe_evals, args.cold_repeats = 5, 1, 5, 1
    os.environ["BENCH_TORCH_MAXITER"] = str(args.maxiter)
    short = min(50, args.maxiter)

    data, p0 = load_data(args.smoke)
    print(f"# {describe()}, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}; m_train={len(data[2])}, m_test={len(data[3])}, "
          f"{'-'.join(map(str, SIZES))}, lam={LAM}, maxiter={args.maxiter}, "
          f"repeats={args.repeats}; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}\n", flush=True)
    if args.figures:
        figures(data, p0)
        return

    with_torch = not args.skip_torch and torch_available()
    if not args.skip_torch and not with_torch:
        print("  torch is not installed: its rows are skipped")
    M = args.maxiter
    # cold: each in a fresh process
    cold_entries = [f"L-BFGS-B:float32:{M}", f"L-BFGS-B:float32:{M}:saved",
                    f"L-BFGS-B:float64:{M}", f"lbfgs:float32:{M}", f"fmincg:float32:{M}"]
    with tempfile.TemporaryDirectory(prefix="jaxnn-programs-") as programs:
        cold = run_cold(cold_entries + ["torch"] * with_torch, args.smoke, data, p0, programs,
                        args.cold_repeats)
    print("  done: cold rows (fresh processes)", flush=True)

    # warm: every entry compiled once here, then interleaved
    warm = {
        "default f32": partial(run_jaxnn, data, p0, "L-BFGS-B", "float32", M, "warm", M),
        "default f64": partial(run_jaxnn, data, p0, "L-BFGS-B", "float64", M, "warm", M),
        "scipy f32": partial(run_scipy_reference, data, p0, "float32", M),
        "lbfgs f32": partial(run_jaxnn, data, p0, "lbfgs", "float32", M, "warm", M),
        "lbfgs f64": partial(run_jaxnn, data, p0, "lbfgs", "float64", M, "warm", M),
        "fmincg f32": partial(run_jaxnn, data, p0, "fmincg", "float32", M, "warm", M),
        "fmincg short": partial(run_jaxnn, data, p0, "fmincg", "float32", short, "warm", M),
        "fmincg f64": partial(run_jaxnn, data, p0, "fmincg", "float64", M, "warm", M),
    }
    if with_torch:
        warm["torch f32"] = partial(run_torch, data, p0, M, "float32")
    for fn in warm.values():  # compile everything first
        fn()
    warm_rows = interleaved_warm(warm, args.repeats)
    print("  done: warm rows (interleaved)", flush=True)

    rows = [*cold, *warm_rows.values()]
    rows.append(run_jaxnn(data, p0, "L-BFGS-B", "float64", M, "warm", M, "softmax"))
    if not args.skip_sklearn:
        rows.append(run_sklearn(data, M))
        rows.append(run_sklearn(data, M, blas_threads=1))
        print("  done: scikit-learn", flush=True)
    if with_torch:
        rows.append(run_torch(data, p0, M, "float64"))
        rows.append(run_torch(data, p0, M, "float32", threads=1))
        print("  done: torch", flush=True)
    if not args.skip_recipe:
        rows.append(run_recipe(data, p0, args.recipe_evals))
        print("  done: numpy/TNC recipe", flush=True)

    torch_warm = warm_rows["torch f32"].seconds if with_torch else None
    print(f"\nload average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(table(rows, torch_warm))
    print()
    for r in rows:
        print(f"- {r.name} [{r.dtype}]: {r.note}")
    d = warm_rows["default f32"]
    c, saved = (next(r for r in cold if r.name.startswith("jaxnn fit default") and
                     r.dtype == "float32" and (SAVED in r.name) == s) for s in (False, True))
    if with_torch:
        print(f"\nPyTorch warm / default fit: warm {torch_warm / d.seconds:.2f}x (goal >= 2), "
              f"first call in a fresh process {torch_warm / c.seconds:.2f}x (goal >= 1.5); "
              f"the same with its loop saved by an earlier process (jaxnn.program_cache: "
              f"nothing compiled) {torch_warm / saved.seconds:.2f}x")
    print(f"within jaxnn (no other tool's load in the ratio): the default's first call "
          f"takes {c.seconds / d.seconds:.2f}x its warm time, "
          f"{saved.seconds / d.seconds:.2f}x with its loop saved")
    products, evaluation, floor = bound_in_child(args.smoke)
    for what, t in (("its two large products alone", products),
                    ("one evaluation in a compiled loop, no optimizer", evaluation)):
        least = d.n_evals * t
        print(f"bound: the default's {d.n_evals} evaluations x {1e3 * t:.3f} ms for {what} = "
              f"{least:.3f} s at least" + (f", so at most {torch_warm / least:.2f}x PyTorch "
                                           "warm on this machine" if with_torch else ""))
    if c.compile_s is not None:
        least = d.n_evals * evaluation + c.compile_s + c.staging_s  # both set on cold rows
        print(f"bound on the first call: those evaluations + its {c.compile_s:.2f} s of "
              f"compilation + {c.staging_s:.2f} s of tracing and lowering = "
              f"{least:.3f} s at least"
              + (f", so at most {torch_warm / least:.2f}x" if with_torch else ""))
    print(f"\nthe FLOP floor: {1e3 * floor:.3f} ms per evaluation (the matrix products at "
          f"the 1024 x 1024 float32 product's median rate); the two large products alone "
          f"{1e3 * products:.3f} ms")
    for method in ("lbfgs", "fmincg"):
        w = warm_rows[f"{method} f32"]
        c = next(r for r in cold if f'"{method}"' in r.name)
        ms = w.seconds / w.n_evals
        compiled = "-" if c.compile_s is None else f"{c.compile_s:.2f} s"
        print(f"{method}: compiled in {compiled} (goal < 0.5 s); warm {1e3 * ms:.3f} ms per "
              f"evaluation = {ms / floor:.2f}x the FLOP floor (goal <= 1.5), "
              f"{ms / products:.2f}x the two products alone")

    if not args.skip_closeness:
        print("\n## The default's iterates against scipy's L-BFGS-B (relative differences)\n")
        print("| dtype | iteration | jaxnn vs scipy | scipy vs scipy from the next float64 "
              "start |")
        print("|---|---|---|---|")
        for dtype in ("float32", "float64"):
            for k, ours, moved in closeness(data, p0, dtype, M):
                print(f"| {dtype} | {k} | {ours:.2e} | {moved:.2e} |")

    if not args.skip_overhead:
        print("\n## Per evaluation: the bridge and the optimizers' own work (microseconds)\n")
        print("| problem | raw jitted call (device theta) | bridge call (host theta -> J, g) "
              "| bridge - raw | scipy L-BFGS-B's own | default fit (compiled loop), all of it "
              "| default - raw |")
        print("|---|---|---|---|---|---|---|")
        for name, raw, bridge, scipy_own, ours in overhead(
                data, p0, 20 if args.smoke else 200, 0.1 if args.smoke else 2.0):
            print(f"| {name} | {raw:.1f} | {bridge:.1f} | {bridge - raw:+.1f} | "
                  f"{scipy_own:.1f} | {ours:.1f} | {ours - raw:+.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
