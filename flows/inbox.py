"""Inbox flow: ingest each new manifest dropped into a folder once (by content hash); a bad one never stops the rest."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.ingest import ManifestError, PrivacyError
from diagnosis.ingest.images import file_sha256
from flows.ingest import ingest_flow
from flows.tracking import recorded_run

__all__ = ["MANIFEST_PATTERN", "inbox_flow"]

logger = logging.getLogger("flows")

MANIFEST_PATTERN = "*.csv"  # every CSV under the inbox, at any depth, is a manifest
_MANIFEST_ERRORS = (ManifestError, PrivacyError, OSError, ValueError)  # the file's fault: record it, go on


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def find_new_manifests(inbox: str, db_url: str, settle_seconds: float) -> tuple[list[tuple[str, str]], int]:
    """New manifests as ``(path, sha256)``, oldest first, and how many were skipped as already ingested.

    Hidden files (``.name``, e.g. partial uploads) and files changed less than ``settle_seconds`` ago (still being
    written) are left for the next run.
    """
    folder = Path(inbox)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    files = [p for p in folder.rglob(MANIFEST_PATTERN)
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    settled = sorted((p for p in files if now - p.stat().st_mtime >= settle_seconds),
                     key=lambda p: (p.stat().st_mtime, str(p)))
    hashes = {str(p): file_sha256(p) for p in settled}
    with db.session_scope(db_url) as session:
        done = db.ingested_manifest_hashes(session, hashes.values())
    new: dict[str, str] = {}
    for path, digest in hashes.items():
        if digest not in done and digest not in new.values():  # a copy of a file in this run counts once
            new[path] = digest
    return list(new.items()), len(hashes) - len(new)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def record_manifest(db_url: str, path: str, sha256: str, counts: dict[str, int], run_id: int,
                    error: str | None) -> None:
    """Record a manifest's outcome (a failed one is retried on the next run)."""
    with db.session_scope(db_url) as session:
        db.record_inbox_manifest(session, path=path, sha256=sha256, counts=counts, flow_run_id=run_id, error=error)


@flow(name="inbox")
def inbox_flow(db_url: str, home: str, inbox: str, settle_seconds: float = 5.0) -> dict[str, int]:
    """Ingest each manifest in ``inbox`` whose content was not ingested before (via :func:`flows.ingest.ingest_flow`).

    Args:
        db_url: Store URL.
        home: Diagnosis home (pseudonymisation key, de-identified DICOM copies).
        inbox: Folder scanned recursively for ``*.csv`` manifests; image paths are relative to each manifest.
        settle_seconds: Leave files changed more recently than this for the next run (they may still be copied).

    Returns:
        Counts of manifests: ``manifests_new`` (found, not ingested before), ``manifests_ingested``,
        ``manifests_failed`` (unreadable, no ``case_id`` column, ...: recorded with the error and retried next run),
        ``manifests_skipped`` (content already ingested); and the row counts of the ingested manifests summed
        (``rows``, ``ingested``, ``rejected``, ``created``, ``unchanged``, ``replaced``, ``conflicts``).
    """
    with recorded_run(db_url, "inbox") as run:
        new, skipped = find_new_manifests(inbox, db_url, settle_seconds)
        run.add(manifests_new=len(new), manifests_ingested=0, manifests_failed=0, manifests_skipped=skipped)
        for path, digest in new:
            try:
                result = ingest_flow(path, db_url, home=home)
            except _MANIFEST_ERRORS as error:
                logger.warning("inbox: %s not ingested: %s", Path(path).name, error)
                record_manifest(db_url, path, digest, {}, run.id, f"{type(error).__name__}: {str(error)[:500]}")
                run.add(manifests_failed=1)
                continue
            counts = {k: v for k, v in result.items() if isinstance(v, int) and k != "problems_not_listed"}
            record_manifest(db_url, path, digest, counts, run.id, None)
            run.add(manifests_ingested=1, **counts)
        return dict(run.counts)
