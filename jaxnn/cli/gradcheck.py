"""``jaxnn gradcheck``: numerical, hand-written and automatic gradients side by side."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxnn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Subcommands,
    UsageError,
    make_console,
    require,
)
from jaxnn.cli.inputs import check_fits, class_count, data_packages, load_data, load_weights
from jaxnn.cli.options import (
    ListOnce,
    add_data_options,
    add_model_options,
    non_negative,
    positive,
    positive_int,
    seed_int,
    step,
)
from jaxnn.cli.report import cost_text
from jaxnn.defaults import ACTIVATION, GRADCHECK_EPS, GRADCHECK_TOL, HIDDEN, OUTPUT
from jaxnn.rules import STEP

SMALL_SIZES = (3, 5, 3)
# numerical vs backprop differences below this are what central differences can resolve in
# float64: a failure beneath it is the tolerance's, not the backprop's
FD_FLOOR = 1e-9


def add_parser(sub: Subcommands) -> None:
    """Add this subcommand to the ``jaxnn`` parser."""
    p = sub.add_parser(
        "gradcheck", help="compare numerical, hand-written and automatic gradients",
        description="Compare the numerical gradient (central differences), the hand-written "
                    "backprop and jax.grad, in float64. By default on the course's small 3-5-3 "
                    "network at lam 0 and 3; --full checks every parameter of the 400-25-10 "
                    "network on all of mnist5k (the finite differences are evaluated "
                    "incrementally, reusing the layers a perturbation leaves unchanged; "
                    "--examples N checks on N examples). Exit status 0 if both whole-gradient "
                    "relative differences (numerical vs backprop, backprop vs jax.grad) are at "
                    "most --tol at every --lam, 1 otherwise; the per-layer rows show where a "
                    "failure lies.")
    p.add_argument("--full", action="store_true", help="the 400-25-10 network on data")
    p.add_argument("--examples", type=positive_int, metavar="N",
                   help="with --full: check on N random examples")
    p.add_argument("--weights", metavar="FILE", help="with --full: check at these weights "
                   "(.mat or .npz) instead of random ones")
    add_data_options(p, None)
    p.add_argument("--hidden", nargs="+", action=ListOnce, type=positive_int,
                   default=None, metavar="N",
                   help="with --full and random weights: hidden layer sizes (default: "
                        f"{' '.join(map(str, HIDDEN))})")
    p.add_argument("--lam", nargs="+", action=ListOnce, type=non_negative, metavar="LAM",
                   help="one or more lambdas (default: 0 3; with --full: 1)")
    p.add_argument("--eps", type=step, default=GRADCHECK_EPS,
                   help=f"{STEP} (default: %(default)g)")
    p.add_argument("--tol", type=positive, default=GRADCHECK_TOL,
                   help="largest relative difference that passes (default: %(default)g)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed for random weights and examples (default: %(default)s)")
    add_model_options(p, from_weights=True)
    p.set_defaults(func=run)


def course_problem() -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The course's ``checkNNGradients`` problem: a 3-5-3 network with ``debug_params``,
    ``X = sin(1..15)/10`` column-major ``(5, 3)`` and ``y = [1, 2, 0, 1, 2]``."""
    from jaxnn.model import debug_params
    from jaxnn.precision import x64

    X = (np.sin(np.arange(1, 16, dtype=np.float64)) / 10).reshape((5, 3), order="F")
    with x64():
        params = tuple(np.asarray(t) for t in debug_params(SMALL_SIZES, np.float64))
    return params, X, np.array([1, 2, 0, 1, 2])


def full_problem(args: argparse.Namespace) -> tuple[tuple[np.ndarray, ...], np.ndarray,
                                                       np.ndarray]:
    """The 400-25-10 network on mnist5k (or ``--data``), random or ``--weights``, optionally
    on ``--examples N`` of the examples."""
    from jaxnn.model import init_params

    data = load_data(args.data, args.dataset, need_labels=True)
    X, y = data.X, data.y
    K = class_count(data) if not args.weights else None  # the data's classes, not a sample's
    if args.examples is not None:
        if not 1 <= args.examples <= X.shape[0]:
            raise UsageError(f"--examples must be in 1..{X.shape[0]}, got {args.examples}")
        rows = np.random.default_rng(args.seed).permutation(X.shape[0])[: args.examples]
        X, y = X[rows], y[rows]
    if args.weights:
        if args.hidden is not None:
            raise UsageError("--hidden sizes random weights; --weights brings its own layers")
        weights = load_weights(args.weights, args.activation, args.output)
        check_fits(weights.params, data, args.weights)
        params = weights.params
        args.activation, args.output = weights.activation, weights.output
    else:
        sizes = (X.shape[1], *(args.hidden or HIDDEN), K)
        params = tuple(np.asarray(t, np.float64) for t in init_params(args.seed, sizes))
    return params, X, y


def run(args: argparse.Namespace) -> int:
    """Compare numerical, hand-written and automatic gradients; 0 if they agree, 1 if not."""
    require("rich", *(data_packages(args.data, args.dataset) if args.full else ()))
    from jaxnn.gradcheck import check_gradients

    if args.full:
        params, X, y = full_problem(args)
        lams = args.lam if args.lam is not None else [1.0]
    else:
        if args.weights or args.data or args.dataset or args.examples is not None \
                or args.hidden is not None:
            raise UsageError("--weights, --data, --dataset, --examples and --hidden need "
                             "--full (without it, the course's 3-5-3 network)")
        params, X, y = course_problem()
        lams = args.lam if args.lam is not None else [0.0, 3.0]
    args.activation, args.output = args.activation or ACTIVATION, args.output or OUTPUT
    out, ok = make_console(), True
    sizes = "-".join(str(n) for n in (params[0].shape[1] - 1, *(t.shape[0] for t in params)))
    for lam in lams:
        model = "" if (args.activation, args.output) == (ACTIVATION, OUTPUT) else \
            f", {args.activation}/{args.output}"
        out.print(f"[bold]Gradient check[/]: {sizes} network{model}, {X.shape[0]} examples, "
                  f"lam={lam:g}, eps={args.eps:g}, float64")
        started = time.perf_counter()
        # the overflows of weights too large for float64 are found in the report (below), not
        # shown as numpy's warnings on the way
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            report = check_gradients(params, X, y, lam, eps=args.eps,
                                     activation=args.activation, output=args.output)
        _refuse_non_finite(report, args, params)
        out.print(f"cost J = {cost_text(report.cost)}; checked in "
                  f"{time.perf_counter() - started:.1f} s")
        ok &= _print_gradcheck(out, report, args.tol)
    return EXIT_OK if ok else EXIT_FAILED


def _refuse_non_finite(report, args: argparse.Namespace,  # noqa: ANN001
                       params: tuple[np.ndarray, ...]) -> None:
    """A :class:`UsageError` when the cost or a gradient of the ``report`` is not finite in
    float64 (inf or NaN: the weights, ``--lam`` or the examples are too large for it, and
    gradcheck has no wider dtype): a table of NaN would be no check of the backprop."""
    lam, eps, J = report.lam, report.eps, report.cost
    where = f"at --lam {lam:g}"
    if args.weights:
        largest = max(float(np.max(np.abs(t), initial=0.0)) for t in params)
        where = f"{args.weights}: at these weights (largest |weight| {largest:.2g}) and --lam " \
                f"{lam:g}"
    fixes = ["smaller weights"] if args.weights else []
    fixes += ["a smaller --lam"] if lam > 0 else []
    fixes = fixes or ["examples of smaller magnitude"]  # random weights at lam 0: only X is left
    fix = _either(fixes)
    wide = "float64, gradcheck's precision"
    if not np.isfinite(J):
        what = "NaN: its terms overflow" if np.isnan(J) else "inf: it overflows"
        raise UsageError(f"{where} the cost J is {what} {wide}, so no gradient can be checked; "
                         f"use {fix}")
    if not all(np.isfinite(g).all() for g in (*report.backprop, *report.autodiff)):
        raise UsageError(f"{where} the gradient is not finite: its entries overflow {wide} "
                         f"(the cost J = {J:.6g} does not), so it cannot be checked; use {fix}")
    if not all(np.isfinite(g).all() for g in report.numerical):
        steps = [] if eps == GRADCHECK_EPS else [f"the default --eps {GRADCHECK_EPS:g}"]
        raise UsageError(f"{where} the numerical gradient at --eps {eps:g} is not finite: the "
                         f"perturbed costs overflow {wide}, so it cannot be checked; rerun "
                         f"with {_either(steps + fixes)}")


def _either(choices: list[str]) -> str:
    """``"a, b or c"``."""
    return " or ".join(filter(None, (", ".join(choices[:-1]), choices[-1])))


def _step_advice(eps: float) -> str:
    """Why central differences with step ``eps`` can miss a right gradient, and the step to
    try instead: too large a step errs by the cost's curvature, too small a one by rounding
    (``theta + eps`` keeps few of ``eps``'s digits in float64)."""
    if eps > 10 * GRADCHECK_EPS:
        return (f"At eps={eps:g} the central differences' own error (the cost's curvature over "
                f"the step) dominates: rerun with a smaller --eps (e.g. {eps / 10:g}); a "
                "difference that shrinks with it is the numerical estimate's, not the backprop's")
    if eps < GRADCHECK_EPS / 100:
        return (f"At eps={eps:g} the step is lost to rounding (theta + eps keeps few of its "
                f"digits in float64): rerun with a larger --eps (the default is "
                f"{GRADCHECK_EPS:g}); a difference that shrinks with it is the numerical "
                "estimate's, not the backprop's")
    return ("Where the gradient is small (near a minimum) or units saturate, the central "
            f"differences' own error can dominate: rerun with --eps {eps / 10:g} and "
            f"{eps * 10:g}; a difference that changes with the step is the numerical "
            "estimate's, not the backprop's")


def _print_gradcheck(out, report, tol: float) -> bool:  # noqa: ANN001
    from jaxnn.cli.report import gradient_tables

    for table in gradient_tables(report):
        out.print(table)
    passed = report.passed(tol)
    if passed:
        out.print(f"[bold green]PASS[/]: both whole-gradient relative differences are at most "
                  f"{tol:g}\n")
    elif report.autodiff_difference <= tol and report.relative_difference <= FD_FLOOR:
        out.print(f"[bold red]FAIL[/] at --tol {tol:g}: backprop and jax.grad agree to "
                  f"{report.autodiff_difference:.1e}, and the numerical gradient is within "
                  f"{report.relative_difference:.1e} of them. That is the error of central "
                  f"differences with eps={report.eps:g} (of order 1e-10 for this network), "
                  "not a wrong backprop: a tolerance below it cannot pass\n")
    elif report.autodiff_difference <= tol:
        out.print(f"[bold red]FAIL[/] at --tol {tol:g}: backprop and jax.grad agree to "
                  f"{report.autodiff_difference:.1e}, but the numerical gradient differs from "
                  f"them by {report.relative_difference:.1e}. "
                  + _step_advice(report.eps) + "\n")
    else:
        out.print(f"[bold red]FAIL[/]: backprop and jax.grad differ by "
                  f"{report.autodiff_difference:.1e} (above {tol:g}): the gradients disagree\n")
    return passed


