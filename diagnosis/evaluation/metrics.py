"""Classification metrics: macro AUC (one-vs-rest), accuracy, macro-F1, per-class recall, calibration error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, recall_score, roc_auc_score

__all__ = ["classification_metrics", "expected_calibration_error"]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width bins: the sample-weighted gap between confidence and accuracy.

    Args:
        confidence: ``(N,)`` predicted probability of the event.
        correct: ``(N,)`` whether the event happened (0/1).
        bins: Number of equal-width bins on [0, 1].
    """
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(float(correct[in_bin].mean()) - float(confidence[in_bin].mean()))
    return float(ece)


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str]) -> dict:
    """Metrics of predicted probabilities against true class ids.

    Args:
        y_true: ``(N,)`` class ids.
        probabilities: ``(N, C)`` rows summing to 1.
        label_names: ``C`` names.

    Returns:
        ``n``, ``accuracy``, ``macro_f1``, ``macro_auc`` (one-vs-rest over classes present with both outcomes; NaN when
        none), ``ece`` (top-label, 15 bins) and ``per_class_recall`` (name -> recall, NaN for absent classes).
    """
    y_true = np.asarray(y_true)
    n_classes = len(label_names)
    if len(y_true) == 0:
        nan = float("nan")
        return {"n": 0, "accuracy": nan, "macro_f1": nan, "macro_auc": nan, "ece": nan, "per_class_recall": {}}
    y_pred = probabilities.argmax(1)
    classes = list(range(n_classes))
    aucs = [
        roc_auc_score(y_true == c, probabilities[:, c]) for c in classes if 0 < int((y_true == c).sum()) < len(y_true)
    ]
    recalls = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=np.nan)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=sorted(set(y_true.tolist())), average="macro", zero_division=0)),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "ece": expected_calibration_error(probabilities.max(1), (y_pred == y_true).astype(float)),
        "per_class_recall": {name: float(r) for name, r in zip(label_names, recalls, strict=True)},
    }
