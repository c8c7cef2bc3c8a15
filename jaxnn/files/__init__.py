"""File formats and safe writing: atomic writes, the MATLAB ``.mat`` reader, MNIST IDX files.

* :func:`atomic_write` (:mod:`jaxnn.files.atomic`): every file jaxnn writes goes through it.
* :func:`read_mat`, :func:`mat_keys`, :func:`real_matrix` (:mod:`jaxnn.files.mat`): a level 5
  reader written here because scipy's compiled reader can crash the interpreter on a corrupt
  file.
* :func:`load_idx`, :func:`iter_idx`, :func:`idx_count` (:mod:`jaxnn.files.idx`): MNIST IDX
  files, gzipped or not (also exported by :mod:`jaxnn.datasets`).

Weights files (``.mat`` and ``.npz``) are :mod:`jaxnn.io`; datasets are :mod:`jaxnn.datasets`.
"""

from __future__ import annotations

import importlib
from typing import Any

# loaded on first use, so that the command's writers (jaxnn.files.atomic) do not import JAX
_EXPORTS = {"atomic_write": "atomic", "idx_count": "idx", "iter_idx": "idx", "load_idx": "idx",
            "Unsupported": "mat", "mat_keys": "mat", "read_mat": "mat", "real_matrix": "mat"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"jaxnn.files.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'jaxnn.files' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
