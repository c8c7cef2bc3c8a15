"""File formats and safe writing: atomic writes, the MATLAB ``.mat`` reader, MNIST IDX files.

* :func:`atomic_write` (:mod:`jaxnn.files.atomic`): every file jaxnn writes goes through it.
* :func:`read_mat`, :func:`mat_keys`, :func:`real_matrix` (:mod:`jaxnn.files.mat`): a level 5
  reader written here because scipy's compiled reader can crash the interpreter on a corrupt
  file.
* :func:`load_idx`, :func:`iter_idx`, :func:`idx_count` (:mod:`jaxnn.files.idx`): MNIST IDX
  files, gzipped or not (also exported by :mod:`jaxnn.datasets`).

Weights files (``.mat`` and ``.npz``) are :mod:`jaxnn.io`; datasets are :mod:`jaxnn.datasets`.
"""

from jaxnn.files.atomic import atomic_write
from jaxnn.files.idx import idx_count, iter_idx, load_idx
from jaxnn.files.mat import Unsupported, mat_keys, read_mat, real_matrix

__all__ = ["Unsupported", "atomic_write", "idx_count", "iter_idx", "load_idx", "mat_keys",
           "read_mat", "real_matrix"]
