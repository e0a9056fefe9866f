"""Model versions: registration, metrics, and the reads that name them (``latest`` is the newest eligible one, see
:mod:`db.promotions`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ModelVersion
from db.promotions import current_model_id, held_back_model_ids

__all__ = [
    "ModelVersionView",
    "get_model_version",
    "latest_model_version",
    "list_model_versions",
    "register_model_version",
    "update_model_metrics",
]


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


def register_model_version(
    session: Session,
    *,
    name: str,
    fusion: str,
    config: dict[str, Any],
    label_names: Sequence[str],
    metrics: dict[str, Any],
    checkpoint_path: str,
) -> int:
    """Record a trained model and return its version id.

    Args:
        session: An open session.
        name: Human-readable model name.
        fusion: Fusion strategy, e.g. ``poe`` / ``moe`` / ``mopoe``.
        config: The training config (JSON-serialisable).
        label_names: Class names in output order.
        metrics: Metrics per split, e.g. ``{"val": {"accuracy": 0.9}}``.
        checkpoint_path: Where the weights were saved.

    Returns:
        The new model version id.

    Raises:
        ValueError: If ``label_names`` is empty.
    """
    if not label_names:
        raise ValueError(f"model {name!r} has no label names: pass the class names in output order")
    version = ModelVersion(
        name=name,
        fusion=fusion,
        config=dict(config),
        label_names=[str(label) for label in label_names],
        metrics=dict(metrics),
        checkpoint_path=str(checkpoint_path),
    )
    session.add(version)
    session.flush()
    return version.id


def update_model_metrics(session: Session, model_version_id: int, metrics: dict[str, Any]) -> None:
    """Merge ``metrics`` into a model version's stored metrics (top-level keys are replaced).

    ``update_model_metrics(s, 3, {"test": {...}})`` adds test metrics and keeps the stored ``val`` ones.

    Raises:
        LookupError: If the model version does not exist.
    """
    version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise LookupError(f"model version {model_version_id} not found; list versions with `diagnosis models`")
    version.metrics = {**version.metrics, **metrics}
    session.flush()


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
