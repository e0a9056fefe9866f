"""Evaluation stage: metrics of stored or fresh predictions."""

from __future__ import annotations

from diagnosis.evaluation.metrics import ECE_BINS, classification_metrics, expected_calibration_error, reliability_bins

__all__ = ["ECE_BINS", "classification_metrics", "expected_calibration_error", "reliability_bins"]
