"""Every benchmark and example runs, in its smoke mode (tiny sizes, seconds), so a refactor
cannot break one silently. What they measure is not checked here (timings are never
asserted in tests); that they run to the end and print their report is."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "smoke run: tiny sizes, so no goal is judged; run without --smoke to measure"

SCRIPTS = [
    # (script, arguments, a line its report prints)
    ("benchmarks/bench_cli.py", ["--smoke"], "second run, same shape, from the cache"),
    ("benchmarks/bench_datasets.py", ["--smoke"], "mnist5k: X (5000, 400)"),
    ("benchmarks/bench_gradients.py", ["--smoke"], "backprop"),
    ("benchmarks/bench_training.py", ["--smoke"], "s of tracing and lowering = "),
    ("benchmarks/bench_scale.py", ["--smoke"], "bound:"),
    ("benchmarks/bench_gpu.py", ["--small"], "fit_many"),
    ("examples/mnist_stream.py", ["--synthetic", "300", "--epochs", "1", "--hidden", "5"],
     "training set: cost"),
]


def test_every_script_is_listed():
    listed = {script for script, _, _ in SCRIPTS} | {"examples/multihost.py"}  # test_parallel
    present = {str(p.relative_to(ROOT)) for p in (*ROOT.glob("benchmarks/*.py"),
                                                  *ROOT.glob("examples/*.py"))
               if '__name__ == "__main__"' in p.read_text()}  # scripts, not shared modules
    assert present <= listed, f"scripts without a smoke run: {sorted(present - listed)}"


@pytest.mark.parametrize(("script", "args", "expected"), SCRIPTS,
                         ids=[s for s, _, _ in SCRIPTS])
def test_script_smoke_mode(script, args, expected, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert expected in out.stdout, out.stdout[-3000:]
    if "--smoke" in args:  # tiny sizes: said first, and no goal judged on them
        assert out.stdout.startswith(SMOKE) or f"\n{SMOKE}\n" in out.stdout, out.stdout[:2000]
        assert "NOT met" not in out.stdout and ": met" not in out.stdout, out.stdout[-3000:]


@pytest.mark.parametrize(("script", "args", "said"), [
    ("examples/mnist_stream.py", ["missing-images", "missing-labels"],
     "mnist_stream.py: error: [Errno 2] No such file or directory: 'missing-images'"),
    ("examples/mnist_stream.py", ["--synthetic", "300", "--epochs", "0"],
     "mnist_stream.py: error: argument --epochs: must be a positive integer, got '0'"),
    ("examples/multihost.py", ["--num-processes", "2", "--process-id", "2"],
     "multihost.py: error: argument --process-id: must be in 0..1 for --num-processes 2, "
     "got 2"),
    ("examples/multihost.py", ["--num-processes", "1", "--process-id", "0", "--dataset",
                               "digits", "--examples", "5000"],
     "multihost.py: error: --examples 5000 exceeds the 1797 examples of digits"),
], ids=["missing file", "zero epochs", "process id", "too many examples"])
def test_the_examples_say_a_mistake_in_one_line(script, args, said, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == said


def _machine_module():
    spec = importlib.util.spec_from_file_location("machine", ROOT / "benchmarks" / "machine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_name_the_cpu_with_its_model_numbers():
    """Two Xeon generations both named "Intel(R) Xeon(R) Processor": the numbers tell them
    apart. The first processor's block is read; missing numbers are left out."""
    machine = _machine_module()
    two = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
           "model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 2\nflags\t\t: fpu avx512f\n"
           "\nprocessor\t: 1\ncpu family\t: 6\nmodel\t\t: 143\n"
           "model name\t: Other\nstepping\t: 8\n")
    assert (machine.cpu_from_cpuinfo(two)
            == "Intel(R) Xeon(R) Processor (family 6, model 207, stepping 2)")
    assert machine.cpu_from_cpuinfo("model name\t: AMD EPYC\nmodel\t: 17\n") == (
        "AMD EPYC (model 17)")
    assert machine.cpu_from_cpuinfo("model name\t: Some CPU\n") == "Some CPU"
    assert machine.cpu_from_cpuinfo("processor\t: 0\nCPU implementer\t: 0x41\n") is None
    assert machine.describe().endswith(" CPUs") and machine.cpu_model()
