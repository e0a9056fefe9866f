"""Reads of model versions and flow runs (re-exported by :mod:`db.queries`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import FlowRun, ModelVersion
from db.promotions import current_model_id, held_back_model_ids
from db.results import FlowRunView, ModelVersionView

__all__ = ["get_model_version", "latest_model_version", "list_flow_runs", "list_model_versions"]


def _model_view(row: ModelVersion, promoted: bool = True) -> ModelVersionView:
    """Copy an ORM model version into its frozen view."""
    return ModelVersionView(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        fusion=row.fusion,
        config=dict(row.config),
        label_names=tuple(row.label_names),
        metrics=dict(row.metrics),
        checkpoint_path=row.checkpoint_path,
        promoted=promoted,
    )


def latest_model_version(session: Session) -> ModelVersionView | None:
    """Return the current model version, or ``None`` before the first training.

    That is the newest version that was promoted (``diagnosis train`` promotes, a retrained candidate only when it
    beats the current one on val) or that no promotion decision names; see :mod:`db.promotions`.
    """
    current = current_model_id(session)
    return _model_view(session.get(ModelVersion, current)) if current is not None else None


def _not_found(session: Session, what: str) -> LookupError:
    """A ``LookupError`` for an unknown model version that lists the known ids."""
    ids = list(session.execute(select(ModelVersion.id).order_by(ModelVersion.id).limit(21)).scalars())
    if not ids:
        return LookupError(f"{what}; no model trained yet: run `diagnosis train`")
    known = ", ".join(str(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
    return LookupError(f"{what}; known: {known}")


def get_model_version(session: Session, ref: str | int) -> ModelVersionView:
    """Resolve ``"latest"`` or a model version id.

    Args:
        session: An open session.
        ref: ``"latest"``, an integer id, or an id as text (``"7"``).

    Returns:
        The model version.

    Raises:
        LookupError: If no model was trained yet or the id is unknown; the message says what to do.
    """
    if isinstance(ref, str):
        text = ref.strip().lower()
        if text == "latest":
            latest = latest_model_version(session)
            if latest is None and session.execute(select(ModelVersion.id).limit(1)).first() is not None:
                raise _not_found(session, "no model version is current yet (no candidate was promoted): pass an id")
            if latest is None:
                raise LookupError("no model trained yet: run `diagnosis train`")
            return latest
        if not text.isdigit():
            raise _not_found(session, f"model version {ref!r} is neither 'latest' nor a numeric id")
        ref = int(text)
    row = session.get(ModelVersion, ref)
    if row is None:
        raise _not_found(session, f"model version {ref} not found")
    return _model_view(row, promoted=not held_back_model_ids(session, [row.id]))


def list_model_versions(session: Session) -> list[ModelVersionView]:
    """All model versions, newest first."""
    held_back = held_back_model_ids(session)
    rows = session.execute(select(ModelVersion).order_by(ModelVersion.id.desc())).scalars()
    return [_model_view(row, promoted=row.id not in held_back) for row in rows]


def list_flow_runs(session: Session, limit: int = 50) -> list[FlowRunView]:
    """The most recent flow runs, newest first."""
    rows = session.execute(select(FlowRun).order_by(FlowRun.id.desc()).limit(limit)).scalars()
    return [
        FlowRunView(
            id=r.id,
            flow_name=r.flow_name,
            prefect_run_id=r.prefect_run_id,
            started_at=r.started_at,
            ended_at=r.ended_at,
            status=r.status,
            counts=dict(r.counts),
            model_version_id=r.model_version_id,
            error=r.error,
        )
        for r in rows
    ]
