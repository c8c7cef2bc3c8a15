"""Tables for the ``jaxnn`` command: classification report, confusion matrix, gradient check.

Metrics come from scikit-learn; tables are rich renderables. Both are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from jaxnn.gradcheck import GradientCheck


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, K: int) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages and the
    confusion matrix (rows: true class, columns: predicted), for classes ``0..K-1``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.arange(K)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0)
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    per_class = [
        {"class": int(k), "precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]),
         "support": int(s[k])}
        for k in labels
    ]
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "per_class": per_class,
        "averages": averages,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
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
