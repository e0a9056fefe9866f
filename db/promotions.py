"""Which model version is current (``latest``) and the promotion decisions behind it.

A model version is *eligible* to be current when a promotion row promoted it, or when no promotion row names it
at all (versions registered straight through :func:`db.register_model_version`, as tests and benchmarks do).
A candidate that was compared and lost, or is still awaiting its comparison, is not eligible. ``latest`` is the
newest eligible version. Migration 0004 gave every version that existed before it a promoted row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from db._sql import chunked
from db.models import ModelPromotion, ModelVersion

__all__ = [
    "PromotionView",
    "current_model_id",
    "eligible_clause",
    "held_back_model_ids",
    "list_promotions",
    "record_promotion",
]


@dataclass(frozen=True)
class PromotionView:
    """One promotion decision: the candidate, the version it was compared with, both scores, the outcome."""

    id: int
    created_at: datetime
    candidate_id: int
    incumbent_id: int | None
    metric: str | None  # e.g. "val_macro_auc"; None when promoted without a comparison
    candidate_score: float | None
    incumbent_score: float | None
    promoted: bool
    reason: str


def eligible_clause() -> ColumnElement[bool]:
    """SQL condition on ``model_versions``: promoted by some row, or named by no promotion row at all."""
    rows = select(ModelPromotion.id).where(ModelPromotion.candidate_id == ModelVersion.id)
    return or_(~exists(rows), exists(rows.where(ModelPromotion.promoted)))


def current_model_id(session: Session) -> int | None:
    """Id of the current model version (what ``latest`` means), or ``None`` before any eligible version."""
    query = select(ModelVersion.id).where(eligible_clause()).order_by(ModelVersion.id.desc()).limit(1)
    return session.execute(query).scalar_one_or_none()


def held_back_model_ids(session: Session, ids: Iterable[int] | None = None) -> set[int]:
    """Versions (among ``ids``, default all) that have promotion rows but none that promoted them."""
    query = select(ModelVersion.id).where(~eligible_clause())
    if ids is None:
        return set(session.execute(query).scalars())
    found: set[int] = set()
    for chunk in chunked(list(ids)):
        found |= set(session.execute(query.where(ModelVersion.id.in_(chunk))).scalars())
    return found


def _score(value: float | None) -> float | None:
    """A score as stored: ``None`` when missing or not a number (e.g. AUC of a single-class split)."""
    return None if value is None or math.isnan(value) else float(value)


def record_promotion(
    session: Session,
    *,
    candidate_id: int,
    promoted: bool,
    reason: str,
    incumbent_id: int | None = None,
    metric: str | None = None,
    candidate_score: float | None = None,
    incumbent_score: float | None = None,
) -> int:
    """Store a promotion decision about ``candidate_id`` and return its id.

    Args:
        session: An open session.
        candidate_id: The model version decided on.
        promoted: Whether it becomes current (``latest``).
        reason: Why, in words a person can check.
        incumbent_id: The current version it was compared with, if any.
        metric: Name of the compared metric, e.g. ``val_macro_auc``.
        candidate_score: The candidate's score (NaN is stored as ``None``).
        incumbent_score: The incumbent's score on the same cases (NaN is stored as ``None``).

    Raises:
        LookupError: If the candidate model version does not exist.
    """
    if session.get(ModelVersion, candidate_id) is None:
        raise LookupError(f"model version {candidate_id} not found; register it before deciding on its promotion")
    row = ModelPromotion(candidate_id=candidate_id, incumbent_id=incumbent_id, metric=metric, promoted=promoted,
                         candidate_score=_score(candidate_score), incumbent_score=_score(incumbent_score),
                         reason=reason)
    session.add(row)
    session.flush()
    return row.id


def list_promotions(session: Session, limit: int = 50) -> list[PromotionView]:
    """The most recent promotion decisions, newest first."""
    rows = session.execute(select(ModelPromotion).order_by(ModelPromotion.id.desc()).limit(limit)).scalars()
    return [
        PromotionView(id=r.id, created_at=r.created_at, candidate_id=r.candidate_id, incumbent_id=r.incumbent_id,
                      metric=r.metric, candidate_score=r.candidate_score, incumbent_score=r.incumbent_score,
                      promoted=r.promoted, reason=r.reason)
        for r in rows
    ]
