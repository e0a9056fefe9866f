"""Build the DataFrames the pages display from the store's frozen views (no Streamlit, no queries)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

import db

__all__ = [
    "METRIC_NAMES",
    "cases_frame",
    "counts_frame",
    "flow_runs_frame",
    "history_frame",
    "metrics_frame",
    "modalities",
    "probabilities_frame",
    "recall_frame",
    "worklist_frame",
]

METRIC_NAMES: dict[str, str] = {  # stored metric key -> row label, in display order
    "n": "cases",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "macro_auc": "macro AUC",
    "ece": "calibration error (ECE)",
}


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` for missing / NaN / non-numeric metric values."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def modalities(summary: db.CaseSummary) -> str:
    """The modalities a case has, e.g. ``"image + text"``."""
    present = [name for name, has in (("image", summary.has_image), ("text", summary.has_text)) if has]
    return " + ".join(present) or "none"


def cases_frame(rows: Sequence[db.CaseSummary]) -> pd.DataFrame:
    """One row per case: id, status, reason, true label, split, modalities, prediction and its probability."""
    return pd.DataFrame(
        {
            "case": [r.case_key for r in rows],
            "status": [r.status for r in rows],
            "reason": [r.error or "" for r in rows],
            "diagnosis": [r.label or "" for r in rows],
            "split": [r.split or "" for r in rows],
            "modalities": [modalities(r) for r in rows],
            "prediction": [r.predicted_label or "" for r in rows],
            "probability": [r.predicted_probability for r in rows],
        }
    )


def counts_frame(true: Mapping[str, int], predicted: Mapping[str, int] | None) -> pd.DataFrame:
    """Cases per diagnosis: a ``true`` column and, when a model exists, a ``predicted`` column."""
    names = sorted(set(true) | set(predicted or {}))
    frame = pd.DataFrame({"diagnosis": names, "true": [int(true.get(n, 0)) for n in names]})
    if predicted is not None:
        frame["predicted"] = [int(predicted.get(n, 0)) for n in names]
    return frame


def metrics_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Summary metrics per split: one row per split present (``val`` before ``test``), one column per metric."""
    splits = [s for s in ("train", "val", "test") if isinstance(metrics.get(s), Mapping)]
    splits += [s for s, v in metrics.items() if s not in splits and isinstance(v, Mapping)]
    rows = [[_number(metrics[split].get(key)) for key in METRIC_NAMES] for split in splits]
    index = pd.Index(splits, name="split")
    return pd.DataFrame(rows, columns=list(METRIC_NAMES.values()), index=index, dtype="float64")  # None -> NaN


def recall_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Per-class recall per split: rows are diagnoses, columns the splits that report it."""
    columns = {
        split: {name: _number(value) for name, value in (values.get("per_class_recall") or {}).items()}
        for split, values in metrics.items()
        if isinstance(values, Mapping) and values.get("per_class_recall")
    }
    frame = pd.DataFrame(columns, dtype="float64")
    frame.index.name = "diagnosis"
    return frame


def probabilities_frame(prediction: db.PredictionView) -> pd.DataFrame:
    """The probability of each diagnosis in one prediction, most likely first."""
    items = sorted(prediction.probabilities.items(), key=lambda item: -item[1])
    return pd.DataFrame({"diagnosis": [k for k, _ in items], "probability": [float(v) for _, v in items]})


def history_frame(predictions: Sequence[db.PredictionView], names: Mapping[int, str]) -> pd.DataFrame:
    """One row per prediction of a case: model version, predicted label, its probability, modalities used."""
    return pd.DataFrame(
        {
            "model version": [p.model_version_id for p in predictions],
            "model": [names.get(p.model_version_id, "") for p in predictions],
            "prediction": [p.label for p in predictions],
            "probability": [float(p.probabilities.get(p.label, float("nan"))) for p in predictions],
            "modalities": [" + ".join(p.modalities) for p in predictions],
            "predicted at": [p.created_at for p in predictions],
        }
    )


def flow_runs_frame(runs: Sequence[db.FlowRunView]) -> pd.DataFrame:
    """Recent flow runs: flow, status, start / end times, outcome counts and error."""
    return pd.DataFrame(
        {
            "flow": [r.flow_name for r in runs],
            "status": [r.status for r in runs],
            "started": [r.started_at for r in runs],
            "ended": [r.ended_at for r in runs],
            "counts": [", ".join(f"{k}: {v}" for k, v in r.counts.items()) for r in runs],
            "error": [r.error or "" for r in runs],
        }
    )


def worklist_frame(rows: Sequence[db.WorklistRow]) -> pd.DataFrame:
    """One row per case to review: prediction, probability, uncertainty, conformal set, review, modalities."""
    return pd.DataFrame(
        {
            "case": [r.case_key for r in rows],
            "prediction": [r.predicted_label for r in rows],
            "probability": [r.probability for r in rows],
            "uncertainty": [r.uncertainty for r in rows],  # None -> NaN: shown empty
            "conformal set": [", ".join(r.prediction_set) if r.prediction_set is not None else "" for r in rows],
            "review": [r.reviewed_label or "" for r in rows],
            "modalities": [" + ".join(r.modalities) for r in rows],
            "stored": [r.created_at for r in rows],
        }
    )
