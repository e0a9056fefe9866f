"""Writes and work queues used by the flows.

Every function takes an open :class:`~sqlalchemy.orm.Session` and never commits; wrap calls in
:func:`db.engine.session_scope`. Bulk functions issue a few statements per batch, never one per row.
Case ingestion (:func:`upsert_cases`) lives in :mod:`db.upsert`, model-version and flow-run bookkeeping
in :mod:`db.runs`; both are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import Session

from db._sql import chunked, upsert
from db.models import Case, Image, Prediction, SymptomNote, utcnow
from db.runs import finish_flow_run, register_model_version, start_flow_run, update_model_metrics
from db.upsert import CaseIn, ImageIn, UpsertOutcome, case_fingerprint, upsert_cases

__all__ = [
    "CaseIn",
    "CaseInput",
    "ImageIn",
    "PredictionIn",
    "UpsertOutcome",
    "case_fingerprint",
    "finish_flow_run",
    "iter_case_inputs",
    "mark_cases_failed",
    "register_model_version",
    "save_predictions",
    "start_flow_run",
    "update_model_metrics",
    "upsert_cases",
]


@dataclass(frozen=True)
class CaseInput:
    """What a flow needs to run a model on one case.

    Attributes:
        id: Database id of the case (use it in :class:`PredictionIn`).
        case_key: The manifest's ``case_id``.
        label: True label, if known.
        split: ``train`` / ``val`` / ``test``.
        image_path: Image file, if the case has one.
        image_format: ``png`` / ``nifti`` / ``dicom`` / ``npy`` / ...
        text: Symptom description, if any.
    """

    id: int
    case_key: str
    label: str | None
    split: str | None
    image_path: str | None
    image_format: str | None
    text: str | None


def iter_case_inputs(
    session: Session,
    *,
    splits: Sequence[str] | None = None,
    labelled_only: bool = False,
    pending_for_model: int | None = None,
    include_synthetic: bool = False,
    batch_size: int = 1000,
) -> Iterator[list[CaseInput]]:
    """Stream the cases a flow should process, in batches ordered by id.

    Keyset pagination on ``cases.id``: each batch is one query, so the table is never loaded whole and
    writes made between batches (e.g. :func:`save_predictions`) do not disturb the iteration.
    Rejected cases are always excluded.

    Args:
        session: An open session.
        splits: Keep only these splits (``None`` = all, including cases without a split).
        labelled_only: Keep only cases with a true label.
        pending_for_model: Keep only cases without a prediction from this model version.
        include_synthetic: Also yield synthetic cases.
        batch_size: Cases per batch.

    Yields:
        Non-empty lists of at most ``batch_size`` cases.

    Raises:
        ValueError: If ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    stmt = (
        select(Case.id, Case.case_key, Case.label, Case.split, Image.path, Image.format, SymptomNote.text)
        .outerjoin(Image, Image.case_id == Case.id)
        .outerjoin(SymptomNote, SymptomNote.case_id == Case.id)
        .where(Case.status != "rejected")
        .order_by(Case.id)
        .limit(batch_size)
    )
    if splits is not None:
        stmt = stmt.where(Case.split.in_(list(splits)))
    if labelled_only:
        stmt = stmt.where(Case.label.is_not(None))
    if not include_synthetic:
        stmt = stmt.where(Case.is_synthetic.is_(False))
    if pending_for_model is not None:
        done = exists().where(Prediction.case_id == Case.id, Prediction.model_version_id == pending_for_model)
        stmt = stmt.where(~done)
    last_id = 0
    while True:
        rows = session.execute(stmt.where(Case.id > last_id)).all()
        if not rows:
            return
        yield [CaseInput(*row) for row in rows]
        last_id = rows[-1][0]
        if len(rows) < batch_size:
            return


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
    """

    case_id: int
    model_version_id: int
    label: str
    probabilities: dict[str, float]
    latent: Sequence[float]
    modalities: Sequence[str]
    uncertainty: float | None = None  # predictive entropy (nats)
    prediction_set: Sequence[str] | None = None  # split-conformal prediction set


def _finite(values: Sequence[float], what: str, case_id: int) -> list[float]:
    """Convert to plain floats, refusing NaN/inf (not valid JSON on PostgreSQL)."""
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"prediction for case {case_id} has non-finite {what}; check the model for NaNs")
    return out


def save_predictions(session: Session, predictions: Sequence[PredictionIn]) -> int:
    """Upsert predictions on ``(case_id, model_version_id)`` and mark their cases ``diagnosed``.

    Saving the same prediction twice leaves one row, holding the newest values. Within one call the last
    prediction for a ``(case, model)`` pair wins. The cases get ``status='diagnosed'`` and ``error=None``.

    Args:
        session: An open session.
        predictions: Model outputs; probabilities and latents must be finite.

    Returns:
        Number of prediction rows written.

    Raises:
        ValueError: If a probability or latent value is NaN or infinite.
    """
    now = utcnow()
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for p in predictions:
        probabilities = dict(
            zip(p.probabilities, _finite(list(p.probabilities.values()), "probabilities", p.case_id), strict=True)
        )
        rows[(p.case_id, p.model_version_id)] = {
            "case_id": p.case_id,
            "model_version_id": p.model_version_id,
            "label": p.label,
            "probabilities": {str(k): v for k, v in probabilities.items()},
            "latent": _finite(p.latent, "latent values", p.case_id),
            "modalities": [str(m) for m in p.modalities],
            "uncertainty": None if p.uncertainty is None else _finite([p.uncertainty], "uncertainty", p.case_id)[0],
            "prediction_set": None if p.prediction_set is None else [str(m) for m in p.prediction_set],
            "created_at": now,
        }
    upsert(
        session,
        Prediction.__table__,
        list(rows.values()),
        index_elements=["case_id", "model_version_id"],
        update_columns=["label", "probabilities", "latent", "modalities", "uncertainty", "prediction_set", "created_at"],
    )
    case_ids = sorted({case_id for case_id, _ in rows})
    for chunk in chunked(case_ids):
        session.execute(
            update(Case)
            .where(Case.id.in_(chunk))
            .values(status="diagnosed", error=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(rows)


def mark_cases_failed(session: Session, failures: Sequence[tuple[int, str]]) -> None:
    """Set ``status='failed'`` and ``error=reason`` on each ``(case_id, reason)``; unknown ids are ignored."""
    if not failures:
        return
    table = Case.__table__
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(status="failed", error=bindparam("b_error"), updated_at=utcnow())
    )
    session.execute(stmt, [{"b_id": case_id, "b_error": reason} for case_id, reason in failures])
