"""``wandb.plot``: wandb's preset charts, logged here as the tables they are drawn from.

gradexp has no custom-chart presets (Vega specs); each function returns a
:class:`gradexp.Table` of exactly the data the chart would plot (``wandb.log({"roc":
wandb.plot.roc_curve(...)})`` logs that table, shown in the run's Media tab and read
back with ``Api`` ``run.table(key)``), and says so once. Titles and axis labels are not
kept. Only numpy is needed; nothing is computed that the chart would not show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradexp.wandb.term import _once

__all__ = [
    "bar",
    "confusion_matrix",
    "histogram",
    "line",
    "line_series",
    "pr_curve",
    "roc_curve",
    "scatter",
]

_AS_TABLE = (
    "wandb.plot charts are logged as the tables they are drawn from (gradexp has no "
    "chart presets): see them in the run's Media tab"
)


def _table(columns: Sequence[str], rows: list[list[Any]]) -> Any:
    from gradexp.sdk.values.table import Table

    _once("wandb.plot", _AS_TABLE)
    return Table(columns=list(columns), data=rows)


def _columns_of(table: Any, *names: str) -> Any:
    """The table (a ``wandb.Table``) with only ``names``, in that order."""
    index = [table.columns.index(n) for n in names]
    return _table(list(names), [[row[i] for i in index] for row in table.data])


def line(table: Any, x: str, y: str, stroke: str | None = None, title: str = "", **_: Any) -> Any:
    """The ``x`` and ``y`` columns of ``table`` (and ``stroke``, the series, if given)."""
    return _columns_of(table, x, y, *([stroke] if stroke else []))


def scatter(table: Any, x: str, y: str, title: str = "", **_: Any) -> Any:
    """The ``x`` and ``y`` columns of ``table``."""
    return _columns_of(table, x, y)


def bar(table: Any, label: str, value: str, title: str = "", **_: Any) -> Any:
    """The ``label`` and ``value`` columns of ``table``."""
    return _columns_of(table, label, value)


def histogram(table: Any, value: str, title: str = "", **_: Any) -> Any:
    """The ``value`` column of ``table`` (the values the histogram bins)."""
    return _columns_of(table, value)


def line_series(
    xs: Sequence[Any],
    ys: Sequence[Sequence[Any]],
    keys: Sequence[str] | None = None,
    title: str = "",
    xname: str = "x",
    **_: Any,
) -> Any:
    """Rows of (series, ``xname``, y): one per point of every series of ``ys``; ``xs`` is
    shared by all series or one sequence per series."""
    shared = not xs or not hasattr(xs[0], "__len__")  # one x sequence for every series
    names = list(keys) if keys is not None else [f"line_{i}" for i in range(len(ys))]
    rows = []
    for i, series in enumerate(ys):
        x_of = xs if shared else xs[i]
        rows += [[names[i], _plain(x), _plain(y)] for x, y in zip(x_of, series, strict=False)]
    return _table(["series", xname, "y"], rows)


def confusion_matrix(
    probs: Any = None,
    y_true: Sequence[Any] | None = None,
    preds: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    title: str = "",
    **_: Any,
) -> Any:
    """Rows of (Actual, Predicted, nPredictions) for every pair of classes, as wandb's
    confusion matrix counts them; ``preds`` or ``probs`` (the argmax is the prediction)."""
    import numpy as np

    if y_true is None or (preds is None) == (probs is None):
        raise ValueError("confusion_matrix() needs y_true and one of preds= or probs=")
    actual = np.asarray(y_true).astype(np.int64).ravel()
    predicted = (
        np.asarray(preds).astype(np.int64).ravel()
        if preds is not None
        else np.argmax(np.asarray(probs), axis=1)
    )
    if actual.shape != predicted.shape:
        raise ValueError(
            f"y_true has {actual.size} labels but there are {predicted.size} predictions"
        )
    n = len(class_names) if class_names is not None else int(max(actual.max(), predicted.max()) + 1)
    names = list(class_names) if class_names is not None else [f"Class_{i}" for i in range(n)]
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (actual, predicted), 1)
    rows = [[names[a], names[p], int(counts[a, p])] for a in range(n) for p in range(n)]
    return _table(["Actual", "Predicted", "nPredictions"], rows)


def roc_curve(
    y_true: Sequence[Any],
    y_probas: Any,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[Any] | None = None,
    title: str = "",
    **_: Any,
) -> Any:
    """Rows of (class, fpr, tpr): each class's ROC curve, one against the rest."""
    return _curves(y_true, y_probas, labels, classes_to_plot, roc=True)


def pr_curve(
    y_true: Sequence[Any],
    y_probas: Any,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[Any] | None = None,
    title: str = "",
    **_: Any,
) -> Any:
    """Rows of (class, recall, precision): each class's precision-recall curve, one
    against the rest."""
    return _curves(y_true, y_probas, labels, classes_to_plot, roc=False)


def _curves(
    y_true: Sequence[Any],
    y_probas: Any,
    labels: Sequence[str] | None,
    classes_to_plot: Sequence[Any] | None,
    roc: bool,
) -> Any:
    import numpy as np

    truth = np.asarray(y_true).ravel()
    probas = np.asarray(y_probas, dtype=np.float64)
    if probas.ndim == 1:
        probas = np.stack([1 - probas, probas], axis=1)
    if probas.shape[0] != truth.size:
        raise ValueError(f"y_true has {truth.size} labels but y_probas has {probas.shape[0]} rows")
    classes = list(range(probas.shape[1]))
    wanted = classes if classes_to_plot is None else [int(c) for c in classes_to_plot]
    rows = []
    for c in wanted:
        name = labels[c] if labels is not None else str(c)
        hit = truth == c
        order = np.argsort(-probas[:, c], kind="stable")
        tp = np.cumsum(hit[order])
        fp = np.cumsum(~hit[order])
        positives, negatives = max(int(hit.sum()), 1), max(int((~hit).sum()), 1)
        if roc:
            xs, ys = (
                np.concatenate([[0.0], fp / negatives]),
                np.concatenate([[0.0], tp / positives]),
            )
        else:
            xs = tp / positives
            ys = tp / np.maximum(tp + fp, 1)
        step = max(1, len(xs) // 1000)  # at most ~1,000 points a curve, as wandb samples
        rows += [[name, float(x), float(y)] for x, y in zip(xs[::step], ys[::step], strict=True)]
    return _table(["class", "fpr" if roc else "recall", "tpr" if roc else "precision"], rows)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
