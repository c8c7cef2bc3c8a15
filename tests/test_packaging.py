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
    return sdist_names, wheel_names, wheel


def test_sdist_carries_what_the_tests_need(dists):
    sdist, _, _ = dists
    tracked = subprocess.run(["git", "ls-files", "tests", "jaxnn"], cwd=ROOT, text=True,
                             capture_output=True).stdout.split()
    needed = {p for p in tracked if p.endswith((".py", ".mat"))} or {
        "tests/conftest.py", "tests/reference_numpy.py"}
    assert {"LICENSE", "README.md", "pyproject.toml", "tests/conftest.py",
            "tests/reference_numpy.py"} <= sdist
    assert any(p.startswith("tests/data/octave/") and p.endswith(".mat") for p in sdist)
    assert needed <= sdist, sorted(needed - sdist)


def test_wheel_has_every_module_and_no_tests(dists):
    _, wheel, _ = dists
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "jaxnn").rglob("*.py")}
    assert modules <= wheel, sorted(modules - wheel)
    assert not any(name.startswith("tests/") for name in wheel)
    assert any(name.endswith("licenses/LICENSE") or name.endswith("/LICENSE") for name in wheel)


def test_the_console_script_is_the_guarded_entry(dists):
    """``jaxnn`` runs ``jaxnn.__main__:run`` (a Ctrl-C while the command loads is one line),
    as ``python -m jaxnn`` does."""
    _, names, whl = dists
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(whl) as z:
        text = z.read(entry).decode()
    assert "jaxnn = jaxnn.__main__:run" in text, text


def test_the_package_index_description_has_no_link_into_the_repository(dists):
    """The index page has no repository beside it: each picture and link to a file of the
    repository is named as a file of the source distribution instead; the rest is README.md."""
    import email
    import re

    _, names, whl = dists
    (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(whl) as z:
        meta = email.message_from_string(z.read(meta_name).decode("utf-8"))
    assert meta["Description-Content-Type"] == "text/markdown"
    text = meta.get_payload()
    readme = (ROOT / "README.md").read_text()
    relative = re.compile(r"\]\((?!https?://|#)([^)\s]+)\)")
    assert relative.findall(readme), "README.md has no repository link left to check"
    assert relative.findall(text) == [] and "![" not in text
    for target in relative.findall(readme):
        assert f"`{target}` of the source distribution" in text, target
    # nothing else changed: undo the two rewrites and compare
    undone = re.sub(r"\*\[picture: (.*?); the file `([^`]+)` of the source distribution\]\*",
                    r"![\1](\2)", text)
    undone = re.sub(r"(\S+) \(the file `([^`]+)` of the source distribution\)", r"[\1](\2)",
                    undone)
    assert undone.strip() == readme.strip()
