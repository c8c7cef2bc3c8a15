"""Tables for the ``jaxnn`` command: classification report, confusion matrix, gradient check.

Metrics are numpy's (scikit-learn's definitions); tables are rich renderables, imported lazily.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from jaxnn.gradcheck import GradientCheck


def cost_text(cost: float) -> str:
    """A cost as the command prints it: six decimals (``0.318293``), or six significant digits
    where six decimals would print dozens of digits (``4.47709e+26``, a cost that overflows
    float32's penalty by little)."""
    return f"{cost:.6f}" if abs(cost) < 1e6 else f"{cost:.6g}"


def percent(correct: int, total: int) -> str:
    """``correct`` of ``total`` as a percentage with two decimals, rounded from the exact
    ratio (a half up), so that ``train`` and ``predict`` print one figure for one set of
    predictions: through a float, 829 of 4000 is ``100 * 0.20725 = 20.724999...`` one way and
    ``82900 / 4000 = 20.725000...1`` the other; here 20.73%."""
    exact = Decimal(100 * int(correct)) / Decimal(int(total))
    return f"{exact.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, K: int) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages and the
    confusion matrix (rows: true class, columns: predicted), for classes ``0..K-1``.

    The figures are scikit-learn's (``precision_recall_fscore_support(labels=range(K),
    zero_division=0)``, ``confusion_matrix``; ``tests/test_cli.py`` compares them), computed
    here from one ``bincount``: importing ``sklearn.metrics`` takes 1.1-1.3 s (it pulls in
    ``scipy.stats``), a sixth of a whole ``jaxnn train`` run, for what is a count."""
    from jaxnn.checks import check_classes, check_labels

    K = check_classes(K)
    y_true = check_labels(y_true, "y_true")
    y_pred = check_labels(y_pred, "y_pred", m=y_true.shape[0],
                          of=f"y_true has {y_true.shape[0]}")
    if not y_true.size:
        raise ValueError("y_true is empty: there is nothing to report on")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.max() >= K:
            raise ValueError(f"{name} has a label {y.max()}, but there are only {K} classes "
                             f"(0..{K - 1})")
    cm = np.bincount(K * y_true + y_pred, minlength=K * K).reshape(K, K)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:  # 0 where den is 0
        return np.divide(num, den, out=np.zeros(K), where=den > 0)

    p, r = ratio(tp, predicted), ratio(tp, support)
    f = ratio(2 * tp, support + predicted)  # = 2pr / (p + r), 0 when tp = 0
    weights = support / max(support.sum(), 1)
    averages = {
        "macro": {"precision": float(p.mean()), "recall": float(r.mean()),
                  "f1": float(f.mean())},
        "weighted": {"precision": float(p @ weights), "recall": float(r @ weights),
                     "f1": float(f @ weights)},
    }
    per_class = [
        {"class": k, "precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]),
         "support": int(support[k])}
        for k in range(K)
    ]
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "per_class": per_class,
        "averages": averages,
        "confusion_matrix": cm.tolist(),
    }


def report_table(metrics: dict[str, Any], title: str) -> Table:
    """Per-class precision, recall, F1 and support, then the averages."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("class", justify="right")
    for name in ("precision", "recall", "F1"):
        table.add_column(name, justify="right")
    table.add_column("support", justify="right")
    total = 0
    for row in metrics["per_class"]:
        total += row["support"]
        table.add_row(str(row["class"]), f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                      f"{row['f1']:.3f}", str(row["support"]))
    table.add_section()
    for avg, values in metrics["averages"].items():
        table.add_row(f"{avg} avg", f"{values['precision']:.3f}", f"{values['recall']:.3f}",
                      f"{values['f1']:.3f}", str(total))
    table.add_row("accuracy", "", "", f"{metrics['accuracy']:.3f}", str(total))
    return table


def confusion_table(cm: Any, title: str) -> Table:
    """The confusion matrix with true classes as rows and predictions as columns; the diagonal
    (correct predictions) in bold green, other non-zero cells in red."""
    from rich.table import Table

    cm = np.asarray(cm)
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("true \\ pred", justify="right", style="bold")
    for k in range(cm.shape[1]):
        table.add_column(str(k), justify="right")
    for i, row in enumerate(cm):
        cells = []
        for j, value in enumerate(row):
            style = "bold green" if i == j else ("red" if value else "dim")
            cells.append(f"[{style}]{value}[/]")
        table.add_row(str(i), *cells)
    return table


def gradient_tables(report: GradientCheck) -> list[Table]:
    """The gradient check as rich tables: every gradient entry side by side (small networks
    only, as the course prints them) and the per-layer relative differences."""
    from rich.table import Table

    from jaxnn.model import ravel_params  # numpy in, numpy out: Octave's order

    tables = []
    numerical, backprop, autodiff = (ravel_params(g) for g in
                                     (report.numerical, report.backprop, report.autodiff))
    if numerical.size <= 60:
        values = Table(title="Gradients (Octave order)", title_justify="left", show_edge=False)
        for name in ("#", "numerical", "backprop", "autodiff"):
            values.add_column(name, justify="right")
        for i, row in enumerate(zip(numerical, backprop, autodiff, strict=True)):
            values.add_row(str(i + 1), *(f"{v:.10f}" for v in row))
        tables.append(values)
    layers = Table(title="Relative differences norm(a-b)/norm(a+b)", title_justify="left",
                   show_edge=False)
    for name in ("layer", "shape", "num vs backprop", "backprop vs auto", "max |num-bp|"):
        layers.add_column(name, justify="right")
    for lc in report.layers:
        layers.add_row(f"Theta{lc.layer}", f"{lc.shape[0]}x{lc.shape[1]}",
                       f"{lc.relative_difference:.3e}", f"{lc.autodiff_difference:.3e}",
                       f"{lc.max_abs_difference:.3e}")
    layers.add_section()
    layers.add_row("all", str(numerical.size), f"{report.relative_difference:.3e}",
                   f"{report.autodiff_difference:.3e}", "")
    tables.append(layers)
    return tables
