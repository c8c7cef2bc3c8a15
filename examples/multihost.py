"""Data-parallel training over several processes (hosts) with ``jax.distributed``.

Every process runs this same script with its own ``--process-id``. Process 0 also serves as
the coordinator at ``--coordinator``. Each process reads only its share of the examples (rows
``[i * m/N, (i+1) * m/N)`` of the data set), and :func:`jaxnn.parallel.shard_local_examples`
assembles the global, sharded ``X`` and ``y`` from the shares; ``jaxnn.fit(...,
devices=jax.devices())`` then trains one network over all processes' devices: the examples are
split across them, the parameters replicated, and every gradient is summed across processes
by XLA's collectives (Gloo on CPU, NCCL on GPUs). Every process ends with the same parameters.

Two processes on one machine, CPU only (the example's test does this)::

    python examples/multihost.py --num-processes 2 --process-id 0 &
    python examples/multihost.py --num-processes 2 --process-id 1

Several hosts: run it on each with ``--coordinator HOST0:PORT`` (an address that all of them
can reach), ``--num-processes N`` and its ``--process-id``. ``--compare`` also trains on the
whole data in process 0 alone and prints how far the two results are apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from jaxnn.cli.options import non_negative, positive_int
    from jaxnn.names import METHODS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--num-processes", type=positive_int, required=True, metavar="N",
                   help="processes taking part, this one included")
    p.add_argument("--process-id", type=int, required=True, metavar="I",
                   help="this process's number, 0..N-1 (0 is the coordinator)")
    p.add_argument("--coordinator", default="127.0.0.1:12355",
                   help="HOST:PORT of process 0 (default: %(default)s)")
    p.add_argument("--local-devices", type=positive_int, default=1, metavar="D",
                   help="CPU devices per process (XLA's host platform device count; default: "
                        "%(default)s)")
    p.add_argument("--platform", default="cpu", help="JAX platform, e.g. cpu or cuda "
                   "(default: %(default)s)")
    p.add_argument("--dataset", choices=("synthetic", "digits", "mnist5k"), default="synthetic",
                   help="the examples (default: %(default)s)")
    p.add_argument("--examples", type=positive_int, default=1200, help="total examples "
                   "(default: %(default)s); a multiple of the total device count")
    p.add_argument("--hidden", type=positive_int, default=25, metavar="N",
                   help="hidden units (default: %(default)s)")
    p.add_argument("--lam", type=non_negative, default=1.0,
                   help="regularization strength lambda (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default="lbfgs",
                   help="a jaxnn.fit method (default: %(default)s)")
    p.add_argument("--maxiter", type=positive_int, default=30, metavar="N",
                   help="iterations (default: %(default)s)")
    p.add_argument("--float64", action="store_true", help="train in float64")
    p.add_argument("--compare", action="store_true",
                   help="process 0 also trains on all the data alone and reports the difference")
    p.add_argument("--json", metavar="PATH", help="process 0 writes its results here")
    args = p.parse_args(argv)
    if not 0 <= args.process_id < args.num_processes:
        p.error(f"argument --process-id: must be in 0..{args.num_processes - 1} for "
                f"--num-processes {args.num_processes}, got {args.process_id}")
    return args


def load(dataset: str, m: int):
    """The first ``m`` examples of a data set, the same in every process."""
    import numpy as np

    if dataset == "synthetic":  # 64 features, 10 classes, learnable
        rng = np.random.default_rng(0)
        centers = rng.normal(size=(10, 64))
        y = rng.integers(0, 10, m)
        return centers[y] + rng.normal(scale=1.5, size=(m, 64)), y
    from jaxnn import datasets

    X, y = datasets.digits() if dataset == "digits" else datasets.mnist5k()
    if m > len(y):
        raise ValueError(f"--examples {m} exceeds the {len(y)} examples of {dataset}")
    return X[:m], y[:m]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError) as exc:  # one line, as the jaxnn command says it
        raise SystemExit(f"multihost.py: error: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Join the other processes, train, print (and with --json write) this process's report."""
    # JAX reads these when it starts: set them before the first import of jax.
    os.environ.setdefault("JAX_PLATFORMS", args.platform)
    if args.platform == "cpu" and args.local_devices > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.local_devices}")
    import jax
    import numpy as np

    jax.distributed.initialize(coordinator_address=args.coordinator,
                               num_processes=args.num_processes, process_id=args.process_id)
    import jaxnn
    from jaxnn import parallel
    from jaxnn.train import fit

    n_dev, pid = jax.device_count(), jax.process_index()
    if args.examples % n_dev:
        raise ValueError(f"--examples {args.examples} must be a multiple of the {n_dev} devices")
    X, y = load(args.dataset, args.examples)
    share = args.examples // args.num_processes
    rows = slice(pid * share, (pid + 1) * share)  # this process's examples only
    sizes = (X.shape[1], args.hidden, 10)
    scope = jaxnn.x64() if args.float64 else contextlib.nullcontext()
    with scope:
        dtype = np.float64 if args.float64 else np.float32
        Xg, yg = parallel.shard_local_examples(X[rows].astype(dtype), y[rows].astype(np.int32))
        params = jaxnn.init_params(0, sizes, dtype=dtype)  # same seed: same start everywhere
        t0 = time.perf_counter()
        result = fit(params, Xg, yg, args.lam, method=args.method,
                           maxiter=args.maxiter, devices=jax.devices())
        seconds = time.perf_counter() - t0
        report = {
            "process": pid, "processes": jax.process_count(), "devices": n_dev,
            "local_devices": jax.local_device_count(),
            "examples_per_process": share, "global_X_shape": list(Xg.shape),
            "cost": result.cost, "n_iter": result.n_iter, "seconds": seconds,
            "message": result.message,
            "params_checksum": float(sum(np.abs(t).sum() for t in result.params)),
        }
        if args.compare and pid == 0:
            local = jax.local_devices()[:1]
            alone = fit(params, jax.device_put(X.astype(dtype), local[0]),
                              jax.device_put(y.astype(np.int32), local[0]), args.lam,
                              method=args.method, maxiter=args.maxiter)
            report["single_process_cost"] = alone.cost
            report["max_abs_param_difference"] = float(max(
                np.abs(a - b).max() for a, b in zip(result.params, alone.params, strict=True)))
            report["accuracy"] = float(jaxnn.accuracy(result.params, X.astype(dtype), y))
    print(json.dumps(report), flush=True)
    if args.json and pid == 0:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
