"""Regenerate the fixtures of tests/test_fmincg.py: the course's ``fmincg.m`` run in GNU Octave.

    python tests/data/octave/regenerate_fmincg.py PATH/TO/fmincg.m   # or FMINCG_M=PATH/TO/...

Needs GNU Octave on PATH and a copy of the course's ``fmincg.m`` (the ex4 folder of the course's
exercises; it is not part of this project and is never copied into it: Octave reads it from a
temporary folder). The objective Octave minimizes is written here (:data:`COST_M`): the
regularized sigmoid cross-entropy of a one-hidden-layer network in the course's layout and its
backpropagated gradient, from the logits as jaxnn computes it, counting its evaluations.

Two fixtures, each one ``.mat`` file holding the problem in jaxnn's conventions (classes
``0..K-1``, ``ravel_params`` order with jaxnn's row order of the last layer) and, per ``lam``,
Octave's ``fX`` (cost after each successful line search), the final ``theta`` (converted back
to jaxnn's row order), its iteration count ``i`` and its evaluation count:

* ``fmincg_digits.mat``: 400-25-10 from ``init_params(0, (400, 25, 10))`` in float64, the first
  50 digits of each class of ``jaxnn.datasets.mnist5k()`` (500 rows, stored as row indices
  with a SHA-256 of the rows), ``lam = 1``, 50 iterations;
* ``fmincg_debug.mat``: the course's gradient-check network 3-5-3 (``debug_params``, ``X =
  sin(1..15)/10`` column-major ``(5, 3)``, ``y = [1, 2, 0, 1, 2]``), ``lam = 0`` and ``3``,
  50 iterations.

Octave gets the course's conventions: labels ``1..K`` (``K`` for class 0) and the last layer's
rows in label order (jaxnn's rows rolled by one).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.io

import jaxnn as nn
from jaxnn.datasets import mnist5k

HERE = Path(__file__).resolve().parent
MAXITER = 50

# The objective, written for this project (not the course's nnCostFunction.m).
COST_M = r"""
function [J, grad] = jaxnn_cost(theta, sizes, X, y, lam)
  % Regularized sigmoid cross-entropy of an n0-n1-K network and its gradient, theta in
  % Octave's unrolled order [W1(:); W2(:)], labels y in 1..K. From the logits Z:
  % loss = max(Z, 0) + log1p(exp(-|Z|)) - Y .* Z and sigmoid(Z) from the same exp(-|Z|).
  global jaxnn_n_evals
  jaxnn_n_evals = jaxnn_n_evals + 1;
  n0 = sizes(1); n1 = sizes(2); K = sizes(3);
  m = size(X, 1);
  k = n1 * (n0 + 1);
  W1 = reshape(theta(1:k), n1, n0 + 1);
  W2 = reshape(theta(k + 1:end), K, n1 + 1);
  Y = double(repmat(1:K, m, 1) == repmat(y(:), 1, K));
  A0 = [ones(m, 1), X];
  A1 = 1 ./ (1 + exp(-(A0 * W1')));
  A1b = [ones(m, 1), A1];
  Z = A1b * W2';
  E = exp(-abs(Z));
  L = max(Z, 0) + log1p(E) - Y .* Z;
  H = ((Z >= 0) + (Z < 0) .* E) ./ (1 + E);
  R = sum(sum(W1(:, 2:end) .^ 2)) + sum(sum(W2(:, 2:end) .^ 2));
  J = sum(L(:)) / m + lam / (2 * m) * R;
  D2 = (H - Y) / m;
  D1 = (D2 * W2(:, 2:end)) .* A1 .* (1 - A1);
  G1 = D1' * A0 + (lam / m) * [zeros(n1, 1), W1(:, 2:end)];
  G2 = D2' * A1b + (lam / m) * [zeros(K, 1), W2(:, 2:end)];
  grad = [G1(:); G2(:)];
end
"""

RUN_M = r"""
global jaxnn_n_evals
load('problem.mat');
assert(isa(X, 'double') && isa(theta0, 'double'), 'the run must be in double precision');
out = struct();
for j = 1:numel(lams)
  jaxnn_n_evals = 0;
  cost = @(t) jaxnn_cost(t, sizes, X, y, lams(j));
  [theta, fX, i] = fmincg(cost, theta0, optimset('MaxIter', maxiter));
  out.(sprintf('fX_%d', j)) = fX;
  out.(sprintf('theta_%d', j)) = theta;
  out.(sprintf('i_%d', j)) = i;
  out.(sprintf('n_evals_%d', j)) = jaxnn_n_evals;
end
out.version = OCTAVE_VERSION;
save('-v7', 'result.mat', '-struct', 'out');
"""


def octave_theta(theta: np.ndarray, sizes: tuple[int, ...], to_octave: bool) -> np.ndarray:
    """Roll the last layer's rows between jaxnn's class order and Octave's label order (float64
    numpy throughout: the unrolled vector is column-major ``[W1(:); W2(:)]``)."""
    theta = np.asarray(theta, np.float64)
    start = len(theta) - sizes[-1] * (1 + sizes[-2])
    last = theta[start:].reshape(sizes[-1], 1 + sizes[-2], order="F")
    last = np.roll(last, -1 if to_octave else 1, axis=0)
    return np.concatenate([theta[:start], last.ravel(order="F")])


def run_octave(fmincg_m: Path, X: np.ndarray, y: np.ndarray, theta0: np.ndarray,
               sizes: tuple[int, ...], lams: list[float]) -> dict:
    """fmincg.m from ``theta0`` (jaxnn order) for each ``lam``; results in jaxnn order."""
    K = sizes[-1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copy(fmincg_m, tmp / "fmincg.m")
        (tmp / "jaxnn_cost.m").write_text(COST_M)
        scipy.io.savemat(tmp / "problem.mat", {
            "X": np.asarray(X, np.float64), "y": np.where(y == 0, K, y).astype(np.float64)[:, None],
            "theta0": octave_theta(theta0, sizes, True)[:, None],
            "sizes": np.asarray(sizes, np.float64), "lams": np.asarray(lams, np.float64),
            "maxiter": float(MAXITER)})
        subprocess.run(["octave", "--no-gui", "--quiet", "--eval", RUN_M], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        r = scipy.io.loadmat(tmp / "result.mat")
    out = {"octave_version": str(r["version"][0])}
    for j in range(len(lams)):
        out[f"fX_{j}"] = r[f"fX_{j + 1}"].ravel()
        out[f"theta_{j}"] = octave_theta(r[f"theta_{j + 1}"].ravel(), sizes, False)
        out[f"i_{j}"] = int(r[f"i_{j + 1}"].ravel()[0])
        out[f"n_evals_{j}"] = int(r[f"n_evals_{j + 1}"].ravel()[0])
    return out


def digit_rows(y: np.ndarray, per_class: int = 50) -> np.ndarray:
    """The first ``per_class`` rows of each class, in class order."""
    return np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])


def x_digest(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, np.float64).tobytes()).hexdigest()


def debug_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    sizes = (3, 5, 3)
    X = (np.sin(np.arange(1, 16)) / 10).reshape(5, 3, order="F")
    y = np.array([1, 2, 0, 1, 2])
    with nn.x64():
        theta0 = np.asarray(nn.ravel_params(nn.debug_params(sizes)))
    return X, y, theta0, sizes


def main(fmincg_m: Path) -> None:
    Xall, yall = mnist5k()
    rows = digit_rows(yall)
    X, y = Xall[rows], yall[rows]
    sizes = (400, 25, 10)
    with nn.x64():
        theta0 = np.asarray(nn.ravel_params(nn.init_params(0, sizes)))
    res = run_octave(fmincg_m, X, y, theta0, sizes, [1.0])
    scipy.io.savemat(HERE / "fmincg_digits.mat", {
        "rows": rows.astype(np.int32), "x_sha256": x_digest(X), "sizes": np.asarray(sizes),
        "lams": np.asarray([1.0]), "maxiter": MAXITER, "theta0": theta0, **res,
    }, do_compression=True)

    X, y, theta0, sizes = debug_problem()
    lams = [0.0, 3.0]
    res = run_octave(fmincg_m, X, y, theta0, sizes, lams)
    scipy.io.savemat(HERE / "fmincg_debug.mat", {
        "X": X, "y": y, "sizes": np.asarray(sizes), "lams": np.asarray(lams),
        "maxiter": MAXITER, "theta0": theta0, **res,
    }, do_compression=True)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FMINCG_M")
    if not path or not Path(path).is_file():
        sys.exit("usage: regenerate_fmincg.py PATH/TO/fmincg.m (or set FMINCG_M): the course's "
                 "fmincg.m from its ex4 folder")
    main(Path(path))
