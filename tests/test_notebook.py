"""examples/ex4.ipynb, the course's exercise walked part by part: it runs from top to bottom in
a fresh kernel of this interpreter, and the values it prints are the right ones (checked against
the course's published values and against tests/reference_numpy.py); the committed copy carries
its outputs, pictures included, so that it reads on a repository page.

The notebook runs twice: with the course's ``ex4weights.mat`` (when ``$JAXNN_EX4WEIGHTS`` or
``../shared`` has it), and without it, where it must say so and train weights of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EX4WEIGHTS
from reference_numpy import cost_and_grad, one_hot
from scipy.io import loadmat
from scipy.special import expit

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat "
                               "(in the notebook and dev extras: pip install -e '.[notebook]')")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient "
                               "(in the notebook and dev extras: pip install -e '.[notebook]')")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel, the kernel it "
                    "runs the notebook in (in the notebook and dev extras: "
                    "pip install -e '.[notebook]')")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "ex4.ipynb"
EX4DATA = os.environ.get("JAXNN_EX4DATA", "")
COURSE_SIGMOID_GRADIENT = [0.196612, 0.235004, 0.250000, 0.235004, 0.196612]
COURSE_COSTS = {0.0: 0.287629, 1.0: 0.383770, 3.0: 0.576051}  # ex4weights on ex4data1
KERNEL = "jaxnn-test"  # a kernel spec of its own: this very interpreter, whatever is installed
CELL_TIMEOUT_S = 300  # the slowest cell trains for a few seconds
PRINTED = {
    0.0: r"^Cost at parameters(?: \(loaded from ex4weights\))?\s+([0-9.]+)",
    1.0: r"^Cost at parameters, lambda = 1\s+([0-9.]+)",
    3.0: r"^Cost at \(fixed\) debugging parameters, lambda = 3\s+([0-9.]+)",
}


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: str | None) -> tuple[str, dict]:
    """Execute a copy of the notebook in ``tmp_path`` (its working directory) with
    ``$JAXNN_EX4WEIGHTS`` set to ``weights`` (unset if None); returns everything it printed
    and the executed notebook."""
    kernels = tmp_path / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jaxnn test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    if weights is None:
        monkeypatch.delenv("JAXNN_EX4WEIGHTS", raising=False)
    else:
        monkeypatch.setenv("JAXNN_EX4WEIGHTS", weights)
    work = tmp_path / "work"  # no pyproject.toml above it: ../shared is not found from here
    work.mkdir()
    copy = work / NOTEBOOK.name
    shutil.copyfile(NOTEBOOK, copy)
    nb = nbformat.read(copy, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys; print('kernel python:', sys.executable)"))
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S,
                                     startup_timeout=120, resources={"metadata": {"path": work}})
    client.execute()
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for out in cell.outputs if out.output_type == "stream")
    return printed, nb


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} not found in the notebook's output:\n{text}"
    return float(match.group(1))


def _check_course_parts(printed: str, nb: dict) -> None:
    """What holds with or without the course's weights."""
    assert f"kernel python: {sys.executable}\n" in printed
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error" or out.get("name") == "stderr"]
    assert not errors, errors
    match = re.search(r"Sigmoid gradient evaluated at \[-1 -0.5 0 0.5 1\]:\n\s*\[([^\]]+)\]",
                      printed)
    assert match, printed
    g = np.array(match.group(1).split(), dtype=float)
    np.testing.assert_allclose(g, COURSE_SIGMOID_GRADIENT, atol=5e-7)
    z = np.array([-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(g, expit(z) * (1 - expit(z)), atol=5e-7)
    assert _number(r"^Relative Difference: (\S+)", printed) < 1e-9
    assert _number(r"^Relative Difference \(lambda = 3\): (\S+)", printed) < 1e-9
    # the course: about 95.3%, give or take 1% with the random initialization
    assert 94.0 <= _number(r"^Training Set Accuracy: ([0-9.]+)%", printed) <= 97.0
    assert "maximum number of iterations (50) reached" in printed
    assert "Iteration   50 | Cost:" in printed
    pictures = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
                if "image/png" in out.get("data", {})]
    assert len(pictures) == 4  # digits, cost curve, hidden units, confusion matrix


def _data() -> tuple[np.ndarray, np.ndarray]:
    if EX4DATA:
        from jaxnn.datasets import load_mat

        return load_mat(EX4DATA)
    from jaxnn.datasets import mnist5k

    return mnist5k()


@pytest.mark.skipif(not EX4WEIGHTS.is_file(), reason=f"the course's ex4weights.mat is not at "
                    f"{EX4WEIGHTS} (set JAXNN_EX4WEIGHTS): the run without it is tested below")
def test_notebook_with_the_course_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    printed, nb = _run(tmp_path, monkeypatch, str(EX4WEIGHTS))
    _check_course_parts(printed, nb)
    assert "pretrained weights: the course's" in printed
    # the costs of the pretrained weights, against the plain-numpy reference (the course's
    # label order: its row k of Theta2 is digit k mod 10)
    mat = loadmat(EX4WEIGHTS)
    thetas = (mat["Theta1"], np.roll(mat["Theta2"], 1, axis=0))
    X, y = _data()
    for lam, pattern in PRINTED.items():
        expected = cost_and_grad(thetas, X, one_hot(y, 10), lam)[0]
        assert _number(pattern, printed) == pytest.approx(expected, abs=1e-6), lam
        if EX4DATA:  # the course's data: its published values
            assert _number(pattern, printed) == pytest.approx(COURSE_COSTS[lam], abs=1e-6)
    if not EX4DATA:
        assert "not the course's ex4data1.mat" in printed
        for lam, pattern in PRINTED.items():  # close to the course's, not equal
            assert 0 < COURSE_COSTS[lam] - _number(pattern, printed) < 0.01


def test_notebook_without_the_course_weights(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    printed, nb = _run(tmp_path, monkeypatch, None)
    _check_course_parts(printed, nb)
    assert "The course's ex4weights.mat was not found" in printed
    costs = [_number(pattern, printed) for pattern in PRINTED.values()]
    assert 0 < costs[0] < costs[1] < costs[2] < 1  # the penalty grows with lam


def test_committed_notebook_shows_its_outputs() -> None:
    """The committed file was executed top to bottom, its pictures embedded, and is small."""
    assert NOTEBOOK.stat().st_size < 1_000_000
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    printed = "".join(out.get("text", "") for cell in code for out in cell.outputs
                      if out.output_type == "stream")
    assert "pretrained weights: the course's ex4weights.mat" in printed
    assert 94.0 <= _number(r"^Training Set Accuracy: ([0-9.]+)%", printed) <= 97.0
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    pictures = [out for cell in code for out in cell.outputs if "image/png" in out.get("data", {})]
    assert len(pictures) == 4
