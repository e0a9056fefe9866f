"""Classification metrics: macro AUC (one-vs-rest), accuracy, macro-F1, per-class recall, calibration error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ECE_BINS", "classification_metrics", "expected_calibration_error", "reliability_bins"]


ECE_BINS = 15  # equal-width confidence bins of the ECE and of the dashboard's reliability curve


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """``(mean confidence, accuracy, cases)`` of each non-empty equal-width bin on [0, 1], in order.

    Bin ``b`` holds confidences in ``(b / bins, (b + 1) / bins]`` (0 falls in the first). The ECE and the
    dashboard's reliability curve both read these bins.

    Examples:
        >>> reliability_bins(np.array([0.1, 0.9, 0.95]), np.array([0, 1, 0]), bins=2)
        [(0.1, 0.0, 1), (0.925, 0.5, 2)]
    """
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [(float(confidence[which == b].mean()), float(correct[which == b].mean()), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]  # fmt: skip


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width bins (:func:`reliability_bins`): the sample-weighted gap between confidence and accuracy.

    Args:
        confidence: ``(N,)`` predicted probability of the event.
        correct: ``(N,)`` whether the event happened (0/1).
        bins: Number of equal-width bins on [0, 1].
    """
    if len(confidence) == 0:
        return float("nan")
    return float(sum(n * abs(accuracy - mean) for mean, accuracy, n in reliability_bins(confidence, correct, bins))
                 / len(confidence))  # fmt: skip


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (as ``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U statistic (ties count half); numpy only, so the CLI need not import sklearn."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


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
    aucs = [binary_auc(y_true == c, probabilities[:, c]) for c in classes if 0 < int((y_true == c).sum()) < len(y_true)]
    tp = np.array([int(((y_pred == c) & (y_true == c)).sum()) for c in classes], dtype=np.float64)
    support = np.array([int((y_true == c).sum()) for c in classes], dtype=np.float64)
    predicted = np.array([int((y_pred == c).sum()) for c in classes], dtype=np.float64)
    recalls = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    present = sorted(set(y_true.tolist()))  # macro-F1 over the classes present (zero when never predicted right)
    f1 = [2 * tp[c] / (support[c] + predicted[c]) if support[c] + predicted[c] > 0 else 0.0 for c in present]
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": float(np.mean(f1)),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "ece": expected_calibration_error(probabilities.max(1), (y_pred == y_true).astype(float)),
        "per_class_recall": {name: float(r) for name, r in zip(label_names, recalls, strict=True)},
    }
