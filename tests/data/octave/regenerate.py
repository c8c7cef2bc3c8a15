"""Regenerate the Octave fixtures of tests/test_octave_files.py (needs GNU Octave on PATH).

    python tests/data/octave/regenerate.py

1. jaxnn writes a 6-4-3 network (``jaxnn_weights.mat``, :func:`jaxnn.save_weights`) and 20
   examples (``examples.mat``, written by scipy);
2. Octave loads both, classifies the examples with the course's ``predict.m`` formulas (labels
   ``1..K``) and saves the labels, the unrolled ``[Theta1(:); Theta2(:)]``, the same weights
   in its three MAT formats and a data file (``X``, ``y``) as ``-v6`` and ``-v7``.

Octave writes every file here except ``jaxnn_weights.mat`` and ``examples.mat``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import scipy.io

import jaxnn as nn

HERE = Path(__file__).resolve().parent
SIZES = (6, 4, 3)

OCTAVE = r"""
load('jaxnn_weights.mat'); load('examples.mat');
m = size(X, 1);
h1 = 1 ./ (1 + exp(-([ones(m, 1) X] * Theta1')));
h2 = 1 ./ (1 + exp(-([ones(m, 1) h1] * Theta2')));
[dummy, p] = max(h2, [], 2);
save('-v7', 'octave_predict.mat', 'p');
nn_params = [Theta1(:); Theta2(:)];
save('-v7', 'octave_unrolled.mat', 'nn_params');
save('-v7', 'octave_weights_v7.mat', 'Theta1', 'Theta2');
save('-v6', 'octave_weights_v6.mat', 'Theta1', 'Theta2');
save('-mat7-binary', 'octave_weights_mat7_binary.mat', 'Theta1', 'Theta2');
y = p;
save('-v6', 'octave_data_v6.mat', 'X', 'y');
save('-v7', 'octave_data_v7.mat', 'X', 'y');
"""


def main() -> None:
    X = np.random.default_rng(7).normal(size=(20, SIZES[0]))
    with nn.x64():
        for seed in range(100):  # the first network that predicts every class on X
            params = tuple(np.asarray(t) for t in nn.init_params(seed, SIZES, epsilon=2.0))
            if len(set(np.asarray(nn.predict(params, X)).tolist())) == SIZES[-1]:
                break
    nn.save_weights(HERE / "jaxnn_weights.mat", params)
    scipy.io.savemat(HERE / "examples.mat", {"X": X})
    subprocess.run(["octave", "--no-gui", "--quiet", "--eval", OCTAVE], cwd=HERE, check=True)


if __name__ == "__main__":
    main()
