"""Predictions: bulk writes (a few statements per batch, never one per row), counts and the rows evaluation reads.

Every function takes an open :class:`~sqlalchemy.orm.Session` and never commits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db._sql import bind_value, update_by_ids, upsert_encoded
from db.models import Case, Prediction, utcnow

__all__ = [
    "EvalRow",
    "PredictionIn",
    "PredictionView",
    "predicted_label_counts",
    "predictions_for_evaluation",
    "save_predictions",
]


@dataclass(frozen=True)
class PredictionView:
    """One stored prediction of a case."""

    model_version_id: int
    label: str
    probabilities: dict[str, float]
    modalities: tuple[str, ...]
    created_at: datetime
    uncertainty: float | None = None  # predictive entropy (nats)
    prediction_set: tuple[str, ...] | None = None  # split-conformal set
    neighbours: tuple[dict, ...] | None = None  # graph classifier: training cases that mattered (case_key, weight)


@dataclass(frozen=True)
class EvalRow:
    """A labelled case with one model's probabilities, for computing metrics."""

    case_key: str
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class PredictionIn:
    """One model output to store.

    Attributes:
        case_id: Database id of the case (:attr:`CaseInput.id`).
        model_version_id: The model version that produced it.
        label: Predicted label.
        probabilities: Label -> probability.
        latent: Fused latent mean, shape ``(D,)``.
        modalities: Modalities the model saw, e.g. ``("image", "text")``.
        uncertainty: Predictive entropy in nats, when the model estimated it.
        prediction_set: Labels of the split-conformal prediction set, when the model is calibrated for one.
        neighbours: With a graph classifier, the training cases that mattered: ``{"case_key", "weight"}`` each.
    """

    case_id: int
    model_version_id: int
    label: str
    probabilities: dict[str, float]
    latent: Sequence[float]
    modalities: Sequence[str]
    uncertainty: float | None = None  # predictive entropy (nats)
    prediction_set: Sequence[str] | None = None  # split-conformal prediction set
    neighbours: Sequence[Mapping[str, Any]] | None = None  # graph classifier: [{"case_key", "weight"}]


_PREDICTION_COLUMNS = ("case_id", "model_version_id", "label", "probabilities", "latent", "modalities", "uncertainty",
                       "prediction_set", "neighbours", "created_at")  # fmt: skip


_PREDICTION_UPDATES = _PREDICTION_COLUMNS[2:]  # what a newer prediction of the same (case, model) overwrites


def _floats_json(values: Sequence[float] | Mapping[str, float], what: str, case_id: int) -> str:
    """JSON text of a float list (or numpy array) or of a label -> float mapping, refusing NaN/inf.

    NaN and infinities are not valid JSON (PostgreSQL refuses them), and they mean a broken model.
    """
    if hasattr(values, "tolist"):  # a numpy array: plain floats, exactly as float(v) would give
        values = values.tolist()  # type: ignore[union-attr]
    numbers = list(values.values()) if isinstance(values, Mapping) else values
    if not math.isfinite(sum(numbers)) and not all(math.isfinite(v) for v in numbers):  # a finite sum: all finite
        raise ValueError(f"prediction for case {case_id} has non-finite {what}; check the model for NaNs")
    try:
        return orjson.dumps(values).decode()  # orjson: a tenth of the stdlib's time on float lists
    except TypeError:  # numpy scalars or keys that are not strings
        if isinstance(values, Mapping):
            return orjson.dumps({str(k): float(v) for k, v in values.items()}).decode()
        return orjson.dumps([float(v) for v in numbers]).decode()


def _strings_json(values: Sequence[str] | None) -> str:
    """JSON text of a list of strings (``None`` is stored as JSON ``null``, as the JSON column type does)."""
    return "null" if values is None else orjson.dumps([str(v) for v in values]).decode()


def _neighbours_json(values: Sequence[Mapping[str, Any]] | None) -> str:
    """JSON text of the graph neighbours (``null`` without a graph classifier)."""
    if values is None:
        return "null"
    return orjson.dumps([{"case_key": str(v["case_key"]), "weight": float(v["weight"])} for v in values]).decode()


def save_predictions(session: Session, predictions: Sequence[PredictionIn]) -> int:
    """Upsert predictions on ``(case_id, model_version_id)`` and mark their cases ``diagnosed``.

    Saving the same prediction twice leaves one row, holding the newest values. Within one call the last
    prediction for a ``(case, model)`` pair wins. The cases get ``status='diagnosed'`` and ``error=None``.
    A bulk write: one ``executemany`` (SQLite) or a few multi-row statements (PostgreSQL) for the whole batch,
    plus one ``UPDATE`` per :data:`~db._sql.IN_CHUNK` cases (one on PostgreSQL); values are encoded once, in Python.

    Args:
        session: An open session.
        predictions: Model outputs; probabilities and latents must be finite (lists or numpy arrays).

    Returns:
        Number of prediction rows written.

    Raises:
        ValueError: If a probability or latent value is NaN or infinite.
    """
    now = utcnow()
    table = Prediction.__table__
    created = bind_value(session, table.c.created_at, now)
    rows: dict[tuple[int, int], tuple[Any, ...]] = {}
    for p in predictions:
        uncertainty = None
        if p.uncertainty is not None:
            uncertainty = float(p.uncertainty)
            if not math.isfinite(uncertainty):
                raise ValueError(f"prediction for case {p.case_id} has non-finite uncertainty; check the model for NaNs")
        rows[(p.case_id, p.model_version_id)] = (
            p.case_id, p.model_version_id, str(p.label), _floats_json(p.probabilities, "probabilities", p.case_id),
            _floats_json(p.latent, "latent values", p.case_id), _strings_json(p.modalities), uncertainty,
            _strings_json(p.prediction_set), _neighbours_json(p.neighbours), created,
        )  # fmt: skip
    upsert_encoded(session, table, _PREDICTION_COLUMNS, list(rows.values()), index_elements=["case_id", "model_version_id"],
                   update_columns=_PREDICTION_UPDATES)  # fmt: skip
    cases = Case.__table__
    update_by_ids(session, cases, sorted({case_id for case_id, _ in rows}),
                  {"status": "diagnosed", "error": None, "updated_at": bind_value(session, cases.c.updated_at, now)})
    return len(rows)


def predicted_label_counts(session: Session, model_version_id: int) -> dict[str, int]:
    """Predictions per predicted label for one model version."""
    rows = (
        session.execute(
            select(Prediction.label, func.count())
            .where(Prediction.model_version_id == model_version_id)
            .group_by(Prediction.label)
        )
        .tuples()
        .all()
    )
    return dict(rows)


def predictions_for_evaluation(session: Session, model_version_id: int, split: str | None) -> list[EvalRow]:
    """Labelled, non-synthetic cases predicted by a model version, ordered by case id.

    Args:
        session: An open session.
        model_version_id: The model version whose predictions to evaluate.
        split: Keep only this split (``None`` = all splits).

    Returns:
        One row per case: its key, true label and the model's probabilities.
    """
    stmt = (
        select(Case.case_key, Case.label, Prediction.probabilities)
        .join(Prediction, Prediction.case_id == Case.id)
        .where(
            Prediction.model_version_id == model_version_id,
            Case.label.is_not(None),
            Case.is_synthetic.is_(False),
        )
        .order_by(Case.id)
    )
    if split is not None:
        stmt = stmt.where(Case.split == split)
    return [EvalRow(case_key=k, label=lbl, probabilities=dict(p)) for k, lbl, p in session.execute(stmt)]
