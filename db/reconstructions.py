"""Decoded views of a case under a model version (``diagnosis reconstruct``): written by the flow, read by the case
page. One row per case and model version; computing the views again replaces it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import Case, Reconstruction, utcnow

__all__ = ["ReconstructionView", "get_reconstruction", "save_reconstruction"]


@dataclass(frozen=True)
class ReconstructionView:
    """A case's decoded views: image paths (None where the case lacks the modality the view starts from) and the
    real symptom texts nearest to the text decoded from its image."""

    case_key: str
    model_version_id: int
    reconstruction_path: str | None
    image_from_text_path: str | None
    nearest_texts: list[dict[str, str]]  # [{"text": ..., "label": ...}], nearest first
    created_at: datetime


def save_reconstruction(session: Session, case_key: str, model_version_id: int, *, reconstruction_path: str | None,
                        image_from_text_path: str | None, nearest_texts: list[dict[str, str]]) -> ReconstructionView:
    """Store (or replace) the decoded views of ``case_key`` under ``model_version_id``.

    Raises:
        LookupError: The case is not in the store.
    """
    case_id = session.scalar(select(Case.id).where(Case.case_key == case_key))
    if case_id is None:
        raise LookupError(f"case {case_key!r} not found")
    session.execute(delete(Reconstruction).where(Reconstruction.case_id == case_id,
                                                 Reconstruction.model_version_id == model_version_id))
    row = Reconstruction(case_id=case_id, model_version_id=model_version_id, reconstruction_path=reconstruction_path,
                         image_from_text_path=image_from_text_path, nearest_texts=list(nearest_texts), created_at=utcnow())
    session.add(row)
    session.flush()
    return _view(case_key, row)


def get_reconstruction(session: Session, case_key: str, model_version_id: int) -> ReconstructionView | None:
    """The decoded views of a case under a model version, or None when none were computed."""
    row = session.scalar(select(Reconstruction).join(Case, Case.id == Reconstruction.case_id)
                         .where(Case.case_key == case_key, Reconstruction.model_version_id == model_version_id))
    return None if row is None else _view(case_key, row)


def _view(case_key: str, row: Reconstruction) -> ReconstructionView:
    return ReconstructionView(case_key=case_key, model_version_id=row.model_version_id,
                              reconstruction_path=row.reconstruction_path, image_from_text_path=row.image_from_text_path,
                              nearest_texts=[dict(t) for t in row.nearest_texts], created_at=row.created_at)
