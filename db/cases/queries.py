"""Reads of cases for the CLI and the dashboard: pages of the case list, counts, one case's detail, data sets.

Lists are paginated and built from a constant number of queries (no N+1): the newest prediction of each
case is the one with no prediction from a newer model version (an anti-join answered by the
``(case_id, model_version_id)`` unique index), so a page costs about the same with 100 or 100k cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, select
from sqlalchemy.orm import Session, aliased

from db.models import CASE_STATUSES, Case, Image, Patient, Prediction, SymptomNote
from db.predictions import PredictionView

__all__ = [
    "NO_DATASET",
    "UNLABELLED",
    "CaseDetail",
    "CaseFilters",
    "CaseSummary",
    "case_datasets",
    "count_cases",
    "get_case",
    "in_datasets",
    "label_counts",
    "labelled_datasets",
    "list_cases",
    "status_counts",
]


@dataclass(frozen=True)
class CaseSummary:
    """One row of the case list.

    Attributes:
        id: Database id.
        case_key: The manifest's ``case_id``.
        patient_key: The manifest's ``patient_id``.
        status: ``ingested`` / ``rejected`` / ``diagnosed`` / ``failed``.
        error: Why the case was rejected or failed.
        label: True label.
        split: ``train`` / ``val`` / ``test``.
        has_image: Whether an image is stored.
        has_text: Whether a symptom note is stored.
        is_synthetic: Whether the case was generated.
        predicted_label: Label predicted by the newest model version that has a prediction for the case.
        predicted_probability: That model's probability for ``predicted_label``.
        predicted_by: That model version's id.
        predictions_per_model: Model version id -> number of predictions for this case.
        updated_at: Last change of the case row (UTC).
    """

    id: int
    case_key: str
    patient_key: str | None
    status: str
    error: str | None
    label: str | None
    split: str | None
    has_image: bool
    has_text: bool
    is_synthetic: bool
    predicted_label: str | None
    predicted_probability: float | None
    predicted_by: int | None
    predictions_per_model: dict[int, int]
    updated_at: datetime


@dataclass(frozen=True)
class CaseDetail:
    """Everything stored about one case.

    Attributes:
        summary: The list row of the case.
        image_path: Image file, if any.
        image_format: ``png`` / ``nifti`` / ``dicom`` / ``npy`` / ...
        image_shape: Array shape of the loaded image.
        image_spacing: Voxel spacing in mm, if known.
        text: Symptom description, if any.
        predictions: All predictions, newest model version first.
    """

    summary: CaseSummary
    image_path: str | None
    image_format: str | None
    image_shape: tuple[int, ...] | None
    image_spacing: tuple[float, ...] | None
    text: str | None
    predictions: tuple[PredictionView, ...]


UNLABELLED = "unlabelled"
"""Key used by :func:`label_counts` for cases without a true label."""


_Latest = aliased(Prediction, name="latest_prediction")
"""The newest-model prediction of a case, outer-joined into case lists."""


def _latest_join_condition() -> ColumnElement[bool]:
    """ON clause picking, for each case, the prediction with no newer model version (an anti-join)."""
    newer = aliased(Prediction, name="newer_prediction")
    has_newer = exists().where(newer.case_id == _Latest.case_id, newer.model_version_id > _Latest.model_version_id)
    return and_(_Latest.case_id == Case.id, ~has_newer)


def _escape_like(text: str) -> str:
    """Escape LIKE wildcards so that ``search`` matches literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CaseFilters(TypedDict, total=False):
    """The case list's filters, each optional (absent or None: not filtered)."""

    status: str | None  # keep only this status
    split: str | None  # keep only this split
    label: str | None  # keep only this true label
    predicted_label: str | None  # keep only cases whose newest-model prediction is this label
    search: str | None  # keep only cases whose ``case_key`` contains this text (case-insensitive)


def _filter(stmt: Select[Any], filters: CaseFilters) -> Select[Any]:
    """Apply the case-list filters (``predicted_label`` needs ``_Latest`` joined).

    Raises:
        TypeError: A filter that :class:`CaseFilters` does not name.
    """
    if unknown := set(filters) - set(CaseFilters.__annotations__):
        raise TypeError(f"unknown case filter(s) {sorted(unknown)}; known: {', '.join(CaseFilters.__annotations__)}")
    for column, name in ((Case.status, "status"), (Case.split, "split"), (Case.label, "label"),
                         (_Latest.label, "predicted_label")):  # fmt: skip
        if filters.get(name) is not None:
            stmt = stmt.where(column == filters[name])
    if search := filters.get("search"):
        stmt = stmt.where(Case.case_key.ilike(f"%{_escape_like(search)}%", escape="\\"))
    return stmt


def _summary_select() -> Select[Any]:
    """Columns of :class:`CaseSummary`, one row per case, ordered by case id."""
    return (
        select(
            Case.id, Case.case_key, Patient.patient_key, Case.status, Case.error, Case.label, Case.split,
            Image.id, SymptomNote.id, Case.is_synthetic,
            _Latest.label, _Latest.probabilities, _Latest.model_version_id, Case.updated_at,
        )
        .outerjoin(Patient, Patient.id == Case.patient_id)
        .outerjoin(Image, Image.case_id == Case.id)
        .outerjoin(SymptomNote, SymptomNote.case_id == Case.id)
        .outerjoin(_Latest, _latest_join_condition())
        .order_by(Case.id)
    )  # fmt: skip


def _summaries(session: Session, stmt: Select[Any]) -> list[CaseSummary]:
    """Run a :func:`_summary_select` statement and attach per-model prediction counts (one more query)."""
    rows = session.execute(stmt).all()
    per_model: dict[int, dict[int, int]] = {row[0]: {} for row in rows}
    if rows:
        counts = session.execute(
            select(Prediction.case_id, Prediction.model_version_id, func.count())
            .where(Prediction.case_id.in_(list(per_model)))
            .group_by(Prediction.case_id, Prediction.model_version_id)
        )
        for case_id, model_id, n in counts:
            per_model[case_id][model_id] = n
    out = []
    for (id_, key, patient, status, error, label, split, image_id, note_id, synthetic,
         p_label, p_probs, p_model, updated) in rows:  # fmt: skip
        probability = p_probs.get(p_label) if p_probs is not None else None
        out.append(
            CaseSummary(
                id=id_, case_key=key, patient_key=patient, status=status, error=error, label=label,
                split=split, has_image=image_id is not None, has_text=note_id is not None,
                is_synthetic=bool(synthetic), predicted_label=p_label,
                predicted_probability=float(probability) if probability is not None else None,
                predicted_by=p_model, predictions_per_model=per_model[id_], updated_at=updated,
            )
        )  # fmt: skip
    return out


def list_cases(session: Session, *, limit: int | None = 100, offset: int = 0,
               **filters: Unpack[CaseFilters]) -> list[CaseSummary]:
    """Return one page of cases, ordered by id.

    Args:
        session: An open session.
        limit: Page size (``None`` = no limit).
        offset: Rows to skip.
        **filters: :class:`CaseFilters` (status, split, label, predicted_label, search).

    Returns:
        At most ``limit`` summaries, built with two queries.
    """
    return _summaries(session, _filter(_summary_select(), filters).limit(limit).offset(offset))


def count_cases(session: Session, **filters: Unpack[CaseFilters]) -> int:
    """Count the cases :func:`list_cases` would return with the same filters and no limit."""
    stmt = select(func.count(Case.id))
    if filters.get("predicted_label") is not None:
        stmt = stmt.join(_Latest, _latest_join_condition())
    return int(session.execute(_filter(stmt, filters)).scalar_one())


def status_counts(session: Session) -> dict[str, int]:
    """Cases per status; every known status is present (0 when none)."""
    counts = dict.fromkeys(CASE_STATUSES, 0)
    counts.update(session.execute(select(Case.status, func.count()).group_by(Case.status)).tuples().all())
    return counts


def label_counts(session: Session) -> dict[str, int]:
    """Non-synthetic cases per true label; cases without a label count under ``"unlabelled"``."""
    rows = (
        session.execute(select(Case.label, func.count()).where(Case.is_synthetic.is_(False)).group_by(Case.label))
        .tuples()
        .all()
    )
    return {label if label is not None else UNLABELLED: n for label, n in rows}


def get_case(session: Session, case_key: str) -> CaseDetail | None:
    """Return everything stored about the case ``case_key``, or ``None`` if there is no such case."""
    summaries = _summaries(session, _summary_select().where(Case.case_key == case_key))
    if not summaries:
        return None
    summary = summaries[0]
    image = session.execute(
        select(Image.path, Image.format, Image.shape, Image.spacing).where(Image.case_id == summary.id)
    ).one_or_none()
    text = session.execute(select(SymptomNote.text).where(SymptomNote.case_id == summary.id)).scalar_one_or_none()
    predictions = session.execute(
        select(Prediction)
        .where(Prediction.case_id == summary.id)
        .order_by(Prediction.model_version_id.desc())
        .execution_options(populate_existing=True)  # rows may have been upserted behind the ORM's back
    ).scalars()
    return CaseDetail(
        summary=summary,
        image_path=image.path if image else None,
        image_format=image.format if image else None,
        image_shape=tuple(image.shape) if image else None,
        image_spacing=tuple(image.spacing) if image and image.spacing is not None else None,
        text=text,
        predictions=tuple(
            PredictionView(
                model_version_id=p.model_version_id,
                label=p.label,
                probabilities=dict(p.probabilities),
                modalities=tuple(p.modalities),
                created_at=p.created_at,
                uncertainty=p.uncertainty,
                prediction_set=tuple(p.prediction_set) if p.prediction_set is not None else None,
                neighbours=tuple(p.neighbours) if p.neighbours is not None else None,
            )
            for p in predictions
        ),
    )


NO_DATASET = "(none)"  # the name of "no data set" (cases stored before data sets existed) in messages and options


def in_datasets(datasets: Sequence[str | None]) -> ColumnElement[bool]:
    """``cases`` of these data sets (``None`` in the list: cases stored without one)."""
    named = [d for d in datasets if d is not None]
    return Case.dataset.in_(named) | (Case.dataset.is_(None) if None in datasets else false())


def case_datasets(session: Session) -> list[str]:
    """The data sets the stored cases belong to, sorted (``NO_DATASET`` last when some cases have none)."""
    names = session.scalars(select(Case.dataset).distinct()).all()
    return sorted(n for n in names if n is not None) + ([NO_DATASET] if None in names else [])


def labelled_datasets(session: Session) -> dict[str | None, int]:
    """Labelled, non-rejected, collected (not synthetic) cases per data set (``None``: cases stored without one)."""
    rows = session.execute(
        select(Case.dataset, func.count()).where(Case.status != "rejected", Case.label.is_not(None),
                                                 Case.is_synthetic.is_(False)).group_by(Case.dataset)
    ).all()
    return {dataset: int(count) for dataset, count in rows}
