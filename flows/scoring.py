"""Metrics of a model version's stored predictions against the labels (synthetic cases never count).

Kept apart from :mod:`flows.evaluate` so that ``diagnosis evaluate``, which runs no flow, never imports Prefect.
"""

from __future__ import annotations

import numpy as np

import db
from diagnosis.evaluation import classification_metrics

__all__ = ["evaluate_model"]


def evaluate_model(db_url: str, model: str = "latest", split: str | None = "test") -> dict:
    """Metrics of one model version's stored predictions on a split.

    Returns:
        ``model_version_id``, ``split``, ``excluded`` (labelled cases whose label the model does not know) and the
        metrics of :func:`diagnosis.evaluation.classification_metrics`.
    """
    with db.session_scope(db_url) as session:
        version = db.get_model_version(session, model)
        rows = db.predictions_for_evaluation(session, version.id, split)
    names = list(version.label_names)
    index = {n: i for i, n in enumerate(names)}
    known = [r for r in rows if r.label in index]
    y = np.array([index[r.label] for r in known], dtype=np.int64)
    probs = np.array([[r.probabilities.get(n, 0.0) for n in names] for r in known], dtype=np.float64).reshape(-1, len(names))
    metrics = classification_metrics(y, probs, names)
    return {"model_version_id": version.id, "split": split or "all", "excluded": len(rows) - len(known), **metrics}
