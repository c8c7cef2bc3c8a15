"""Every benchmark and example runs, in its smoke mode (tiny sizes, seconds), so a refactor
cannot break one silently. What they measure is not checked here (timings are never
asserted in tests); that they run to the end and print their report is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = [
    # (script, arguments, a line its report prints)
    ("benchmarks/bench_cli.py", ["--smoke"], "second run, same shape, from the cache"),
    ("benchmarks/bench_datasets.py", ["--smoke"], "mnist5k: X (5000, 400)"),
    ("benchmarks/bench_gradients.py", ["--smoke"], "backprop"),
    ("benchmarks/bench_training.py", ["--smoke"], "for one evaluation in a compiled loop"),
    ("benchmarks/bench_scale.py", ["--smoke"], "bound:"),
    ("benchmarks/bench_gpu.py", ["--small"], "fit_many"),
    ("examples/mnist_stream.py", ["--synthetic", "300", "--epochs", "1", "--hidden", "5"],
     "training set: cost"),
]


def test_every_script_is_listed():
    listed = {script for script, _, _ in SCRIPTS} | {"examples/multihost.py"}  # test_parallel
    present = {str(p.relative_to(ROOT)) for p in (*ROOT.glob("benchmarks/*.py"),
                                                  *ROOT.glob("examples/*.py"))}
    assert present <= listed, f"scripts without a smoke run: {sorted(present - listed)}"


@pytest.mark.parametrize(("script", "args", "expected"), SCRIPTS,
                         ids=[s for s, _, _ in SCRIPTS])
def test_script_smoke_mode(script, args, expected, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert expected in out.stdout, out.stdout[-3000:]
