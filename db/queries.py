"""Read queries for the CLI and the dashboard, returning frozen dataclasses from :mod:`db.results`.

Lists are paginated and built from a constant number of queries (no N+1): the newest prediction of each
case is the one with no prediction from a newer model version (an anti-join answered by the
``(case_id, model_version_id)`` unique index), so a page costs about the same with 100 or 100k cases.
Model-version and flow-run reads live in :mod:`db.run_queries` and are re-exported here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from db.models import CASE_STATUSES, Case, Image, Patient, Prediction, SymptomNote
from db.run_queries import get_model_version, latest_model_version, list_flow_runs, list_model_versions
from db.results import CaseDetail, CaseSummary, EvalRow, FlowRunView, ModelVersionView, PredictionView

__all__ = [
    "CaseDetail",
    "CaseSummary",
    "EvalRow",
    "FlowRunView",
    "ModelVersionView",
    "PredictionView",
    "count_cases",
    "get_case",
    "get_model_version",
    "label_counts",
    "latest_model_version",
    "list_cases",
    "list_flow_runs",
    "list_model_versions",
    "predicted_label_counts",
    "predictions_for_evaluation",
    "status_counts",
]

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


def _filter(
    stmt: Select[Any],
    *,
    status: str | None,
    split: str | None,
    label: str | None,
    predicted_label: str | None,
    search: str | None,
) -> Select[Any]:
    """Apply the case-list filters (``predicted_label`` needs ``_Latest`` joined)."""
    if status is not None:
        stmt = stmt.where(Case.status == status)
    if split is not None:
        stmt = stmt.where(Case.split == split)
    if label is not None:
        stmt = stmt.where(Case.label == label)
    if predicted_label is not None:
        stmt = stmt.where(_Latest.label == predicted_label)
    if search:
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


def list_cases(
    session: Session,
    *,
    status: str | None = None,
    split: str | None = None,
    label: str | None = None,
    predicted_label: str | None = None,
    search: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[CaseSummary]:
    """Return one page of cases, ordered by id.

    Args:
        session: An open session.
        status: Keep only this status.
        split: Keep only this split.
        label: Keep only this true label.
        predicted_label: Keep only cases whose newest-model prediction is this label.
        search: Keep only cases whose ``case_key`` contains this text (case-insensitive).
        limit: Page size (``None`` = no limit).
        offset: Rows to skip.

    Returns:
        At most ``limit`` summaries, built with two queries.
    """
    stmt = _filter(
        _summary_select(), status=status, split=split, label=label, predicted_label=predicted_label, search=search
    )
    return _summaries(session, stmt.limit(limit).offset(offset))


def count_cases(
    session: Session,
    *,
    status: str | None = None,
    split: str | None = None,
    label: str | None = None,
    predicted_label: str | None = None,
    search: str | None = None,
) -> int:
    """Count the cases :func:`list_cases` would return with the same filters and no limit."""
    stmt = select(func.count(Case.id))
    if predicted_label is not None:
        stmt = stmt.join(_Latest, _latest_join_condition())
    stmt = _filter(stmt, status=status, split=split, label=label, predicted_label=predicted_label, search=search)
    return int(session.execute(stmt).scalar_one())


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
            )
            for p in predictions
        ),
    )


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
