"""``jaxnn show``: the hidden units of a weights file as a picture."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxnn.cli.common import EXIT_OK, Subcommands, UsageError, require
from jaxnn.cli.inputs import load_weights
from jaxnn.cli.run_directory import refuse_a_runs_file
from jaxnn.cli.writers import check_output_file, write_or_fail


def add_parser(sub: Subcommands) -> None:
    """Add this subcommand to the ``jaxnn`` parser."""
    p = sub.add_parser(
        "show", help="picture of the hidden units of a weights file",
        description="Draw each first-layer hidden unit (a row of Theta1 without its bias) as an "
                    "image, as in the course's figure, and write it as a PNG (for a network "
                    "without hidden layers, its units: one per class).")
    p.add_argument("--weights", required=True, metavar="FILE", help="weights (.mat or .npz)")
    p.add_argument("--out", default="hidden_units.png", metavar="PNG",
                   help="picture to write (default: %(default)s)")
    p.add_argument("--shape", metavar="HxW", help="image size (default: square; 400 inputs are "
                   "the course's 20x20)")
    p.add_argument("--order", choices=("C", "F"), help="pixel order: F column-major (the "
                   "course's, default for 400 inputs) or C row-major (default otherwise)")
    p.add_argument("--no-title", action="store_true", help="no title above the picture")
    p.set_defaults(func=run)


def image_shape(text: str | None, n_in: int, order: str | None) -> tuple[tuple[int, int], str]:
    """The image layout for ``n_in`` inputs: ``--shape HxW`` and ``--order``, or the default."""
    from jaxnn.plot import image_layout, pixel_order

    if text:
        try:
            h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise UsageError(f"--shape must look like 20x20, got {text!r}") from None
        if h < 1 or w < 1 or h * w != n_in:
            raise UsageError(f"--shape {text} has {h * w} pixels but the weights take {n_in} "
                             "inputs")
        return (h, w), order or pixel_order(n_in)
    layout = image_layout(n_in)
    if layout is None:
        raise UsageError(f"the weights take {n_in} inputs, not a square image: pass --shape HxW")
    return layout[0], order or layout[1]


def run(args: argparse.Namespace) -> int:
    """Write the hidden-unit picture of a weights file."""
    require("matplotlib")
    from jaxnn.plot import hidden_units, save_png

    check_output_file(args.out)
    if Path(args.out).suffix.lower() != ".png":  # never over a file of another kind
        raise UsageError(f"--out {args.out}: the picture is a PNG; give a name ending in .png")
    refuse_a_runs_file(args.out)  # nor over a run's own pictures
    params = load_weights(args.weights).params
    shape, order = image_shape(args.shape, params[0].shape[1] - 1, args.order)
    out = Path(args.out)
    units = "hidden units" if len(params) > 1 else "units"  # one layer: its rows are classes
    title = None if args.no_title else f"{units.capitalize()} of {Path(args.weights).name}"
    fig = hidden_units(params, shape, order, title=title)
    write_or_fail(str(out), lambda: save_png(fig, out))
    print(f"wrote {out}: {params[0].shape[0]} {units} as {shape[0]}x{shape[1]} images "
          f"({'column' if order == 'F' else 'row'}-major)")
    return EXIT_OK
