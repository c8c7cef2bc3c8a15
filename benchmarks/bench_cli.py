"""How fast the ``jaxnn`` command answers: ``--help`` and an argument error against
``python -c "import jax"``, and a first and a second ``jaxnn train`` (the second loads its
compiled programs from the persistent compilation cache).

Each timing is a fresh process, interleaved with the others, median of ``--repeats``::

    python benchmarks/bench_cli.py             # latency, and train twice with an empty cache
    python benchmarks/bench_cli.py --smoke     # a few seconds: that it runs
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from goals import SMOKE, verdict
from machine import describe

JAXNN = [sys.executable, "-m", "jaxnn"]


def wall(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env)
    return time.perf_counter() - start, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iterations", type=int, default=400, help="train: iterations")
    p.add_argument("--smoke", action="store_true", help="two repeats, a tiny training run")
    args = p.parse_args(argv)
    repeats = 2 if args.smoke else args.repeats
    if args.smoke:
        print(SMOKE)
    cases = {
        "python -c 'import jax'": [sys.executable, "-c", "import jax"],
        "jaxnn --help": [*JAXNN, "--help"],
        "jaxnn train --help": [*JAXNN, "train", "--help"],
        "jaxnn train --lam -1 (argument error)": [*JAXNN, "train", "--lam", "-1"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, cmd in cases.items():
            times[name].append(wall(cmd)[0])
    print(f"CPU: {describe()}; Python {platform.python_version()}; "
          f"median of {repeats} fresh processes each, interleaved")
    base = statistics.median(times["python -c 'import jax'"])
    print("\n| command | median s | of `import jax` |\n|---|---:|---:|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.3f} | {m / base:.2f} |")
    worst = max(statistics.median(times[k]) for k in cases if k.startswith("jaxnn"))
    print(f"\nslowest jaxnn answer: {worst / base:.2f} of `import jax` (target <= 0.25: "
          f"{verdict(worst <= 0.25 * base, args.smoke)})")

    # a first and a second run of the same shape, the second from the compilation cache
    iterations = 5 if args.smoke else args.iterations
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JAXNN_COMPILE_CACHE": "1",
               "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        mnist = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxnn"
        (Path(tmp) / "cache" / "jaxnn").mkdir(parents=True)
        if (mnist / "mnist5k.npz").is_file():  # the converted digits, not compiled programs
            os.symlink(mnist / "mnist5k.npz", Path(tmp) / "cache" / "jaxnn" / "mnist5k.npz")
        runs = []
        for k in range(2):
            cmd = [*JAXNN, "train", "--iterations", str(iterations), "--no-progress",
                   "--out", str(Path(tmp) / f"run{k}")]
            runs.append(wall(cmd, env))
        off = [*JAXNN, "train", "--iterations", str(iterations), "--no-progress",
               "--no-compile-cache", "--out", str(Path(tmp) / "run-off")]
        runs.append(wall(off, env))
    print(f"\njaxnn train --iterations {iterations} (L-BFGS-B, float32), whole process:")
    for label, (t, rc) in zip(("first run, empty compilation cache",
                               "second run, same shape, from the cache",
                               "--no-compile-cache"), runs, strict=True):
        print(f"  {label}: {t:.2f} s (exit {rc})")
    return 0 if all(rc == 0 for _, rc in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
