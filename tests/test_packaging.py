"""The sdist and the wheel hold what they must: the sdist everything its tests need (so a
packager can run them), the wheel the whole package and no tests."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build", reason="the 'build' package (in the dev extra) builds them")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True,
                   timeout=300)
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    with tarfile.open(sdist) as tar:
        sdist_names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    with zipfile.ZipFile(wheel) as whl:
        wheel_names = set(whl.namelist())
    return sdist_names, wheel_names


def test_sdist_carries_what_the_tests_need(dists):
    sdist, _ = dists
    tracked = subprocess.run(["git", "ls-files", "tests", "jaxnn"], cwd=ROOT, text=True,
                             capture_output=True).stdout.split()
    needed = {p for p in tracked if p.endswith((".py", ".mat"))} or {
        "tests/conftest.py", "tests/reference_numpy.py"}
    assert {"LICENSE", "README.md", "pyproject.toml", "tests/conftest.py",
            "tests/reference_numpy.py"} <= sdist
    assert any(p.startswith("tests/data/octave/") and p.endswith(".mat") for p in sdist)
    assert needed <= sdist, sorted(needed - sdist)


def test_wheel_has_every_module_and_no_tests(dists):
    _, wheel = dists
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "jaxnn").rglob("*.py")}
    assert modules <= wheel, sorted(modules - wheel)
    assert not any(name.startswith("tests/") for name in wheel)
    assert any(name.endswith("licenses/LICENSE") or name.endswith("/LICENSE") for name in wheel)
