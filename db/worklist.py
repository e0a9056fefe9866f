"""The review worklist: one model version's predicted cases, most uncertain first, one page at a time.

Ordering by ``uncertainty`` walks the ``(model_version_id, uncertainty)`` index backwards and stops after
one page, so the first page costs the same with 100 or 100,000 predictions. Rows without an uncertainty
(predictions made before migration 0002) come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from db.models import Case, Prediction, Review
from db.repository import NO_DATASET, in_datasets

__all__ = ["REVIEW_STATES", "WorklistFilter", "WorklistRow", "count_worklist", "list_worklist"]

REVIEW_STATES: tuple[str, ...] = ("unreviewed", "reviewed", "disagreement")
"""``disagreement``: reviewed with a final diagnosis other than this model's prediction."""


@dataclass(frozen=True)
class WorklistFilter:
    """Which predictions of a model version the worklist shows (``None`` = no restriction)."""

    model_version_id: int
    review: str | None = None  # one of REVIEW_STATES
    predicted_label: str | None = None
    min_uncertainty: float | None = None
    max_uncertainty: float | None = None
    since: datetime | None = None  # case stored at or after
    until: datetime | None = None  # case stored before
    dataset: str | None = None  # cases of this data set (``db.NO_DATASET``: cases stored without one)


@dataclass(frozen=True)
class WorklistRow:
    """One case to review."""

    case_key: str
    status: str
    true_label: str | None
    predicted_label: str
    probability: float | None
    uncertainty: float | None
    prediction_set: tuple[str, ...] | None
    modalities: tuple[str, ...]
    reviewed_label: str | None  # the current review's final diagnosis
    created_at: datetime


def _apply(stmt: Select[Any], where: WorklistFilter) -> Select[Any]:
    """Join reviews when needed and apply the filters."""
    stmt = stmt.where(Prediction.model_version_id == where.model_version_id)
    if where.review is not None:
        if where.review not in REVIEW_STATES:
            raise ValueError(f"unknown review filter {where.review!r}: use one of {', '.join(REVIEW_STATES)}")
        if where.review == "unreviewed":
            stmt = stmt.where(Review.id.is_(None))
        elif where.review == "reviewed":
            stmt = stmt.where(Review.id.is_not(None))
        else:
            stmt = stmt.where(Review.id.is_not(None), Review.final_label != Prediction.label)
    if where.predicted_label is not None:
        stmt = stmt.where(Prediction.label == where.predicted_label)
    if where.min_uncertainty is not None:
        stmt = stmt.where(Prediction.uncertainty >= where.min_uncertainty)
    if where.max_uncertainty is not None:
        stmt = stmt.where(Prediction.uncertainty <= where.max_uncertainty)
    if where.since is not None:
        stmt = stmt.where(Case.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(Case.created_at < where.until)
    if where.dataset is not None:
        stmt = stmt.where(in_datasets([None if where.dataset == NO_DATASET else where.dataset]))
    return stmt


def _joined(stmt: Select[Any]) -> Select[Any]:
    """Predictions joined to their case and (outer) to its review."""
    return stmt.join(Case, Case.id == Prediction.case_id).outerjoin(Review, Review.case_id == Prediction.case_id)


def list_worklist(session: Session, where: WorklistFilter, *, limit: int = 50, offset: int = 0) -> list[WorklistRow]:
    """One page of the worklist, most uncertain first (then by prediction id).

    Args:
        session: An open session.
        where: The model version and filters.
        limit: Page size.
        offset: Rows to skip.

    Returns:
        At most ``limit`` rows, from one query.

    Raises:
        ValueError: If ``where.review`` is not one of :data:`REVIEW_STATES`.
    """
    stmt = _joined(
        select(Case.case_key, Case.status, Case.label, Prediction.label, Prediction.probabilities,
               Prediction.uncertainty, Prediction.prediction_set, Prediction.modalities, Review.final_label,
               Case.created_at)
        .select_from(Prediction)
    )  # fmt: skip
    stmt = _apply(stmt, where).order_by(Prediction.uncertainty.desc().nulls_last(), Prediction.id)
    rows = session.execute(stmt.limit(limit).offset(offset)).all()
    return [
        WorklistRow(case_key=key, status=status, true_label=label, predicted_label=p_label,
                    probability=float(probs[p_label]) if p_label in probs else None,
                    uncertainty=uncertainty, prediction_set=tuple(p_set) if p_set is not None else None,
                    modalities=tuple(modalities), reviewed_label=reviewed, created_at=created)
        for key, status, label, p_label, probs, uncertainty, p_set, modalities, reviewed, created in rows
    ]  # fmt: skip


def count_worklist(session: Session, where: WorklistFilter) -> int:
    """Number of rows :func:`list_worklist` pages through with the same filters."""
    stmt = select(func.count(Prediction.id)).select_from(Prediction)
    if where.since is not None or where.until is not None or where.dataset is not None:  # join only what the filters need
        stmt = stmt.join(Case, Case.id == Prediction.case_id)
    if where.review is not None:
        stmt = stmt.outerjoin(Review, Review.case_id == Prediction.case_id)
    return int(session.execute(_apply(stmt, where)).scalar_one())
