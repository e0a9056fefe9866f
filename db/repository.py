"""Writes and work queues used by the flows.

Every function takes an open :class:`~sqlalchemy.orm.Session` and never commits; wrap calls in
:func:`db.engine.session_scope`. Bulk functions issue a few statements per batch, never one per row.
Case ingestion (:func:`upsert_cases`) lives in :mod:`db.upsert`, model-version and flow-run bookkeeping
in :mod:`db.runs`; both are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, bindparam, exists, false, func, select, update
from sqlalchemy.orm import Session

from db._sql import bind_value, update_by_ids, upsert_encoded
from db.models import Case, Image, Prediction, SymptomNote, utcnow
from db.runs import (
    fail_dead_runs,
    finish_flow_run,
    register_model_version,
    start_flow_run,
    update_model_metrics,
)
from db.upsert import CaseIn, ImageIn, UpsertOutcome, case_fingerprint, upsert_cases

__all__ = [
    "CaseIn",
    "CaseInput",
    "ImageIn",
    "PredictionIn",
    "UpsertOutcome",
    "case_fingerprint",
    "fail_dead_runs",
    "finish_flow_run",
    "NO_DATASET",
    "case_datasets",
    "in_datasets",
    "iter_case_inputs",
    "labelled_datasets",
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


def case_inputs_query() -> Select[Any]:
    """``SELECT`` of the :class:`CaseInput` columns: each case with its image and symptom note (outer joins)."""
    return (
        select(Case.id, Case.case_key, Case.label, Case.split, Image.path, Image.format, SymptomNote.text)
        .outerjoin(Image, Image.case_id == Case.id)
        .outerjoin(SymptomNote, SymptomNote.case_id == Case.id)
    )


def not_predicted_by(model_version_id: int) -> ColumnElement[bool]:
    """Condition on ``cases``: no prediction from the model version yet."""
    return ~exists().where(Prediction.case_id == Case.id, Prediction.model_version_id == model_version_id)


def iter_case_inputs(
    session: Session,
    *,
    splits: Sequence[str] | None = None,
    labelled_only: bool = False,
    pending_for_model: int | None = None,
    include_synthetic: bool = False,
    datasets: Sequence[str | None] | None = None,
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
        include_synthetic: Also yield synthetic cases (whatever their data set).
        datasets: Keep only cases of these data sets (``None`` in the list: cases without one); ``None`` = all.
        batch_size: Cases per batch.

    Yields:
        Non-empty lists of at most ``batch_size`` cases.

    Raises:
        ValueError: If ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    stmt = case_inputs_query().where(Case.status != "rejected").order_by(Case.id).limit(batch_size)
    if splits is not None:
        stmt = stmt.where(Case.split.in_(list(splits)))
    if labelled_only:
        stmt = stmt.where(Case.label.is_not(None))
    if not include_synthetic:
        stmt = stmt.where(Case.is_synthetic.is_(False))
    if pending_for_model is not None:
        stmt = stmt.where(not_predicted_by(pending_for_model))
    if datasets is not None:
        chosen = in_datasets(datasets)
        stmt = stmt.where(chosen | Case.is_synthetic.is_(True) if include_synthetic else chosen)
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


_PREDICTION_COLUMNS = ("case_id", "model_version_id", "label", "probabilities", "latent", "modalities", "uncertainty",
                       "prediction_set", "created_at")  # fmt: skip
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
            _strings_json(p.prediction_set), created,
        )  # fmt: skip
    upsert_encoded(session, table, _PREDICTION_COLUMNS, list(rows.values()), index_elements=["case_id", "model_version_id"],
                   update_columns=_PREDICTION_UPDATES)  # fmt: skip
    cases = Case.__table__
    update_by_ids(session, cases, sorted({case_id for case_id, _ in rows}),
                  {"status": "diagnosed", "error": None, "updated_at": bind_value(session, cases.c.updated_at, now)})
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
