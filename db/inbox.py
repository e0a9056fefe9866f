"""The inbox manifests the scheduled ingestion has seen, by content hash, so that none is ingested twice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db._sql import chunked
from db.models import InboxManifest, utcnow

__all__ = [
    "InboxManifestView",
    "ingested_manifest_hashes",
    "list_inbox_manifests",
    "record_inbox_manifest",
]


@dataclass(frozen=True)
class InboxManifestView:
    """A manifest the inbox ingestion saw: where, its content hash, when, the run and its counts or error."""

    id: int
    path: str
    sha256: str
    ingested_at: datetime
    flow_run_id: int | None
    counts: dict[str, int]
    error: str | None


def ingested_manifest_hashes(session: Session, hashes: Iterable[str]) -> set[str]:
    """Those of ``hashes`` whose manifest was already ingested without error (failed ones are retried)."""
    found: set[str] = set()
    for chunk in chunked(list(dict.fromkeys(hashes))):
        query = select(InboxManifest.sha256).where(InboxManifest.sha256.in_(chunk), InboxManifest.error.is_(None))
        found |= set(session.execute(query).scalars())
    return found


def record_inbox_manifest(
    session: Session,
    *,
    path: str,
    sha256: str,
    counts: Mapping[str, int],
    flow_run_id: int | None = None,
    error: str | None = None,
) -> int:
    """Record an inbox manifest's outcome by content hash (a retried one updates its row); returns the row id."""
    row = session.execute(select(InboxManifest).where(InboxManifest.sha256 == sha256)).scalar_one_or_none()
    if row is None:
        row = InboxManifest(sha256=sha256)
        session.add(row)
    row.path, row.ingested_at, row.flow_run_id, row.error = path, utcnow(), flow_run_id, error
    row.counts = {str(k): int(v) for k, v in counts.items()}
    session.flush()
    return row.id


def list_inbox_manifests(session: Session, limit: int = 100) -> list[InboxManifestView]:
    """The inbox manifests seen, most recently handled first."""
    query = select(InboxManifest).order_by(InboxManifest.ingested_at.desc(), InboxManifest.id.desc()).limit(limit)
    return [
        InboxManifestView(id=r.id, path=r.path, sha256=r.sha256, ingested_at=r.ingested_at, flow_run_id=r.flow_run_id,
                          counts=dict(r.counts), error=r.error)
        for r in session.execute(query).scalars()
    ]
