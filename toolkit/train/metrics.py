"""Classification metrics of speech emotion recognition: WA, UA, macro-F1, per class, confusion.

WA (weighted accuracy) is plain accuracy. UA (unweighted accuracy) is the mean
of per-class recalls over the classes present in the true labels, so a model
that always says the majority class scores 1/num_classes, not the majority share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Rows are true labels, columns predicted labels."""
    m = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           labels: Sequence[str]) -> dict[str, Any]:
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError("need as many predictions as true labels, and at least one")
    m = confusion_matrix(y_true, y_pred, len(labels))
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    tp = np.diag(m).astype(float)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "wa": float(tp.sum() / m.sum()),
        "ua": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "num_clips": int(m.sum()),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": m.tolist(),
    }


def mean_std(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}
