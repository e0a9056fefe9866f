"""Reads behind the dashboard's model insight: similar cases in latent space, the graph classifier's neighbours,
latent samples, trends, samples.

Latents are stored as JSON per prediction, so nearest neighbours cannot use an index. To stay well under a
second with 100,000 cases, :func:`similar_cases` compares the case against a capped pool: the
:data:`NEIGHBOUR_POOL` most recent predictions of the same model version whose diagnosis is confirmed (a
review or a true label). The answer is exact within that pool; older cases are not searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from db.models import Case, Image, Prediction, Review, SymptomNote

__all__ = [
    "NEIGHBOUR_POOL",
    "GraphNeighbour",
    "LatentPoint",
    "SimilarCase",
    "SyntheticSample",
    "cases_per_day",
    "graph_neighbours",
    "latent_sample",
    "similar_cases",
    "synthetic_counts",
    "synthetic_samples",
]

NEIGHBOUR_POOL = 2000
"""Most recent confirmed predictions of a model version that :func:`similar_cases` searches."""


@dataclass(frozen=True)
class SimilarCase:
    """A past case near the query case in latent space."""

    case_key: str
    distance: float  # Euclidean distance between latent means
    confirmed_label: str  # the review's final diagnosis, else the true label
    predicted_label: str


@dataclass(frozen=True)
class LatentPoint:
    """One stored latent mean with the diagnoses known for its case."""

    case_key: str
    latent: tuple[float, ...]  # (D,)
    label: str | None  # reviewed, else true diagnosis
    predicted_label: str


@dataclass(frozen=True)
class SyntheticSample:
    """A generated case: image and/or text."""

    case_key: str
    label: str | None
    image_path: str | None
    image_format: str | None
    text: str | None
    source: str | None = None  # e.g. "augment (gan): model version 3"

    @property
    def generator(self) -> str:
        """``vae`` or ``gan``: what generated it (samples stored before the generator was recorded: ``vae``)."""
        return "gan" if (self.source or "").startswith("augment (gan)") else "vae"


def similar_cases(
    session: Session, case_key: str, model_version_id: int, *, k: int = 5, pool: int = NEIGHBOUR_POOL
) -> list[SimilarCase]:
    """The ``k`` confirmed cases nearest to ``case_key`` among the ``pool`` most recent of a model version.

    Args:
        session: An open session.
        case_key: The query case.
        model_version_id: Latents of different model versions live in different spaces: compare within one.
        k: Neighbours to return.
        pool: Candidates compared (bounded cost; see the module docstring).

    Returns:
        Up to ``k`` neighbours, nearest first; empty if the case has no prediction from this model version.
    """
    target = session.execute(
        select(Prediction.latent)
        .join(Case, Case.id == Prediction.case_id)
        .where(Case.case_key == case_key, Prediction.model_version_id == model_version_id)
    ).scalar_one_or_none()
    if target is None:
        return []
    confirmed = func.coalesce(Review.final_label, Case.label)
    rows = session.execute(
        select(Case.case_key, Prediction.latent, confirmed, Prediction.label)
        .select_from(Prediction)
        .join(Case, Case.id == Prediction.case_id)
        .outerjoin(Review, Review.case_id == Case.id)
        .where(
            Prediction.model_version_id == model_version_id,
            Case.case_key != case_key,
            Case.is_synthetic.is_(False),
            or_(Review.id.is_not(None), Case.label.is_not(None)),
        )
        .order_by(Prediction.id.desc())
        .limit(pool)
    ).all()
    if not rows:
        return []
    latents = np.asarray([row[1] for row in rows], dtype=np.float64)  # (N, D)
    distances = np.linalg.norm(latents - np.asarray(target, dtype=np.float64), axis=1)  # (N,)
    nearest = np.argsort(distances, kind="stable")[:k]
    return [SimilarCase(rows[i][0], float(distances[i]), rows[i][2], rows[i][3]) for i in nearest]


@dataclass(frozen=True)
class GraphNeighbour:
    """A training case the graph classifier joined a diagnosed case to, and how much it mattered."""

    case_key: str
    weight: float  # its share of the case's logit of the predicted diagnosis
    confirmed_label: str | None  # the review's final diagnosis, else the true label (None: no longer in the store)


def graph_neighbours(session: Session, neighbours: Sequence[Mapping[str, Any]]) -> list[GraphNeighbour]:
    """The stored neighbours of a graph-classifier prediction with their confirmed diagnoses, in the stored order."""
    keys = [str(n["case_key"]) for n in neighbours]
    if not keys:
        return []
    labels = dict(session.execute(
        select(Case.case_key, func.coalesce(Review.final_label, Case.label))
        .outerjoin(Review, Review.case_id == Case.id)
        .where(Case.case_key.in_(keys))
    ).tuples().all())  # fmt: skip
    return [GraphNeighbour(str(n["case_key"]), float(n["weight"]), labels.get(str(n["case_key"]))) for n in neighbours]


def latent_sample(session: Session, model_version_id: int, *, limit: int = NEIGHBOUR_POOL) -> list[LatentPoint]:
    """The latents of the ``limit`` most recent non-synthetic predictions of a model version."""
    rows = session.execute(
        select(Case.case_key, Prediction.latent, func.coalesce(Review.final_label, Case.label), Prediction.label)
        .select_from(Prediction)
        .join(Case, Case.id == Prediction.case_id)
        .outerjoin(Review, Review.case_id == Case.id)
        .where(Prediction.model_version_id == model_version_id, Case.is_synthetic.is_(False))
        .order_by(Prediction.id.desc())
        .limit(limit)
    ).all()
    return [LatentPoint(key, tuple(float(v) for v in latent), label, pred) for key, latent, label, pred in rows]


def cases_per_day(session: Session) -> dict[str, int]:
    """Non-synthetic cases stored per UTC day (``YYYY-MM-DD``), oldest first."""
    day = func.date(Case.created_at)
    rows = session.execute(
        select(day, func.count()).where(Case.is_synthetic.is_(False)).group_by(day).order_by(day)
    ).all()
    return {str(d): int(n) for d, n in rows}


def synthetic_counts(session: Session) -> dict[str, int]:
    """Generated cases per label."""
    rows = session.execute(
        select(func.coalesce(Case.label, "unlabelled"), func.count()).where(Case.is_synthetic.is_(True))
        .group_by(Case.label)
    ).all()  # fmt: skip
    return {str(label): int(n) for label, n in rows}


def synthetic_samples(session: Session, label: str | None = None, *, limit: int = 12) -> list[SyntheticSample]:
    """The newest generated cases (of one label when given), with their image and text."""
    stmt = (
        select(Case.case_key, Case.label, Image.path, Image.format, SymptomNote.text, Case.source)
        .outerjoin(Image, Image.case_id == Case.id)
        .outerjoin(SymptomNote, SymptomNote.case_id == Case.id)
        .where(Case.is_synthetic.is_(True))
        .order_by(Case.id.desc())
        .limit(limit)
    )
    if label is not None:
        stmt = stmt.where(Case.label == label)
    return [SyntheticSample(*row) for row in session.execute(stmt).all()]
