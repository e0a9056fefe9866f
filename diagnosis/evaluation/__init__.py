"""Evaluation stage: metrics of stored or fresh predictions."""

from __future__ import annotations

from diagnosis.evaluation.metrics import classification_metrics, expected_calibration_error

__all__ = ["classification_metrics", "expected_calibration_error"]
