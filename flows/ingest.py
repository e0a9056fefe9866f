"""Ingest flow: stream a manifest in batches, validate each row, store cases (rejected rows keep their reason)."""

from __future__ import annotations

import logging
from itertools import islice
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.ingest import ManifestRow, ValidatedCase, read_manifest, validate_row
from flows.tracking import recorded_run

__all__ = ["ingest_flow", "to_store"]

logger = logging.getLogger("flows")


def to_store(case: ValidatedCase, source: str | None) -> db.CaseIn:
    """Map a validated manifest row onto the store's input record."""
    image = None
    if case.image is not None:
        image = db.ImageIn(path=case.image.path, sha256=case.image.sha256, format=case.image.format,
                           shape=case.image.shape, spacing=case.image.spacing)
    elif case.image_path is not None:  # rejected image: keep the path so the row can be fixed and re-ingested
        image = db.ImageIn(path=case.image_path, sha256="", format="unknown", shape=(), spacing=None)
    return db.CaseIn(case_key=case.case_id, patient_key=case.patient_id, label=case.label, split=case.split,
                     text=case.text, image=image, status=case.status, error=case.error, source=source)


@task(cache_policy=NO_CACHE)
def validate_batch(rows: list[ManifestRow], base_dir: Path) -> list[ValidatedCase]:
    """Validate a batch of manifest rows (images are read and checked)."""
    return [validate_row(row, base_dir) for row in rows]


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def store_batch(cases: list[ValidatedCase], db_url: str, source: str) -> db.UpsertOutcome:
    """Upsert a batch of cases (idempotent)."""
    with db.session_scope(db_url) as session:
        return db.upsert_cases(session, [to_store(c, source) for c in cases])


@flow(name="ingest")
def ingest_flow(manifest: str, db_url: str, batch_size: int = 256) -> dict[str, int]:
    """Ingest every row of ``manifest`` into the store.

    Args:
        manifest: CSV path (``case_id, patient_id, image, text, label, split``).
        db_url: Store URL.
        batch_size: Rows validated and written per task.

    Returns:
        Counts: ``rows``, ``ingested``, ``rejected``, ``created``, ``unchanged``, ``replaced``, ``conflicts``.
    """
    path = Path(manifest).resolve()
    with recorded_run(db_url, "ingest") as run:
        rows = read_manifest(path)
        while batch := list(islice(rows, batch_size)):
            cases = validate_batch(batch, path.parent)
            outcome = store_batch(cases, db_url, str(path))
            rejected = sum(c.status == "rejected" for c in cases)
            run.add(rows=len(cases), ingested=len(cases) - rejected, rejected=rejected, created=outcome.created,
                    unchanged=outcome.unchanged, replaced=outcome.replaced, conflicts=len(outcome.conflicts))
            for key, reason in outcome.conflicts[:20]:
                logger.warning("case %s not stored: %s", key, reason)
            logger.info("ingest: %d rows read", run.counts["rows"])
        return dict(run.counts)
