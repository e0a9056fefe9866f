"""Evaluation metrics on values worked out by hand, against scikit-learn where it has the same metric."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from diagnosis.evaluation import ECE_BINS, classification_metrics, expected_calibration_error, reliability_bins
from diagnosis.evaluation.metrics import binary_auc


def test_metrics_on_known_values() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics(np.array([0, 1, 1, 1]), probs, ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.75) and m["per_class_recall"] == {"a": 1.0, "b": pytest.approx(2 / 3)}
    assert m["macro_auc"] == pytest.approx(1.0) and m["n"] == 4
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_auc_and_f1_agree_with_scikit_learn_with_ties_and_three_classes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + np.eye(3)[labels] * 1.5
    logits[:40] = np.round(logits[:40])  # ties
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(labels, probs, ["a", "b", "c"])
    assert m["macro_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))
    assert binary_auc(labels == 0, probs[:, 0]) == pytest.approx(roc_auc_score(labels == 0, probs[:, 0]))


def test_reliability_bins_are_the_ece_s_bins_and_empty_input_is_nan() -> None:
    confidence = np.array([0.05, 0.5, 0.52, 0.99, 1.0])
    correct = np.array([0, 1, 0, 1, 1])
    bins = reliability_bins(confidence, correct)
    assert [n for _, _, n in bins] == [1, 2, 2] and ECE_BINS == 15  # 0.5, 0.52 share (7/15, 8/15]; 0.99, 1.0 the last
    gap = sum(n * abs(accuracy - mean) for mean, accuracy, n in bins) / 5
    assert expected_calibration_error(confidence, correct) == pytest.approx(gap)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))
    empty = classification_metrics(np.array([], dtype=int), np.zeros((0, 2)), ["a", "b"])
    assert empty["n"] == 0 and np.isnan(empty["accuracy"])
