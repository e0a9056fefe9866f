"""Model-page figures computed from stored predictions: confusion matrix, calibration, recall, PCA (no Streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

import db
from diagnosis.evaluation.metrics import ECE_BINS, reliability_bins

__all__ = ["calibration_frame", "confusion_frame", "pca_2d", "recall_from_confusion", "version_metrics_frame"]


def confusion_frame(rows: Sequence[db.EvalRow], labels: Sequence[str]) -> pd.DataFrame:
    """Counts of true (rows) against predicted (columns) diagnoses; the prediction is the most probable label."""
    names = list(labels) + sorted({r.label for r in rows} - set(labels))
    matrix = pd.DataFrame(0, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))
    for row in rows:
        predicted = max(row.probabilities, key=row.probabilities.__getitem__)
        if predicted in matrix.columns:
            matrix.loc[row.label, predicted] += 1
    return matrix


def recall_from_confusion(matrix: pd.DataFrame) -> pd.Series:
    """Recall per true diagnosis (NaN where a diagnosis has no case)."""
    totals = matrix.sum(axis=1).astype("float64")
    hits = pd.Series(np.diag(matrix.to_numpy()), index=matrix.index, dtype="float64")
    return (hits / totals.where(totals > 0)).rename("recall")


def calibration_frame(rows: Sequence[db.EvalRow], bins: int = ECE_BINS) -> pd.DataFrame:
    """Reliability curve: per confidence bin, mean confidence, accuracy and case count (empty bins dropped); the
    bins of the ECE that ``evaluate`` reports (:func:`diagnosis.evaluation.metrics.reliability_bins`)."""
    if not rows:
        return pd.DataFrame(columns=["confidence", "accuracy", "cases"])
    confidence = np.array([max(r.probabilities.values()) for r in rows])  # (N,)
    correct = np.array([max(r.probabilities, key=r.probabilities.__getitem__) == r.label for r in rows], dtype=float)
    return pd.DataFrame(reliability_bins(confidence, correct, bins), columns=["confidence", "accuracy", "cases"])


def pca_2d(latents: np.ndarray) -> np.ndarray:
    """Project ``(N, D)`` latents on their first two principal components; returns ``(N, 2)``."""
    if latents.ndim != 2 or latents.shape[0] == 0:
        return np.zeros((0, 2))
    centred = latents - latents.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)  # rows: principal directions
    projected = centred @ components[:2].T  # (N, <=2)
    if projected.shape[1] < 2:
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
    return projected


def version_metrics_frame(versions: Sequence[db.ModelVersionView], split: str = "test") -> pd.DataFrame:
    """One row per model version: the data sets it was trained on and its ``split`` metrics as registered (NaN where
    missing; versions from before data sets show an empty cell)."""
    keys = ("accuracy", "macro_f1", "macro_auc", "ece")
    rows = []
    for version in versions:
        values = version.metrics.get(split) if isinstance(version.metrics.get(split), dict) else {}
        trained_on = version.config.get("datasets") if isinstance(version.config, dict) else None
        names = ", ".join(str(name) for name in trained_on) if isinstance(trained_on, list) else ""
        rows.append({"model": version.name, "id": version.id, "created": version.created_at, "data sets": names,
                     **{key: pd.to_numeric(values.get(key), errors="coerce") for key in keys}})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "id", "created", "data sets", *keys])
