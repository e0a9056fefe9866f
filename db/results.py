"""Frozen, ORM-free results of the read queries (re-exported by :mod:`db.queries`).

They hold plain Python values only, so they can be cached, pickled and used after the session closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["CaseDetail", "CaseSummary", "EvalRow", "FlowRunView", "ModelVersionView", "PredictionView"]


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
class PredictionView:
    """One stored prediction of a case."""

    model_version_id: int
    label: str
    probabilities: dict[str, float]
    modalities: tuple[str, ...]
    created_at: datetime
    uncertainty: float | None = None  # predictive entropy (nats)
    prediction_set: tuple[str, ...] | None = None  # split-conformal set


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


@dataclass(frozen=True)
class ModelVersionView:
    """A registered model version (``promoted``: eligible to be ``latest``, see :mod:`db.promotions`)."""

    id: int
    name: str
    created_at: datetime
    fusion: str
    config: dict[str, Any]
    label_names: tuple[str, ...]
    metrics: dict[str, Any]
    checkpoint_path: str
    promoted: bool = True  # False: a candidate that lost its comparison with the current model or awaits it


@dataclass(frozen=True)
class EvalRow:
    """A labelled case with one model's probabilities, for computing metrics."""

    case_key: str
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class FlowRunView:
    """One recorded flow run."""

    id: int
    flow_name: str
    prefect_run_id: str | None
    started_at: datetime
    ended_at: datetime | None
    status: str
    counts: dict[str, int]
    model_version_id: int | None
    error: str | None
