"""Ingest flow: stream a manifest in batches, validate each row, store cases (rejected rows keep their reason)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import DataError, IntegrityError, StatementError

import db
from diagnosis.ingest import IngestOptions, ManifestRow, ValidatedCase, load_pseudonym_key, read_manifest, validate_row
from diagnosis.ingest.manifest import MAX_ID_CHARS
from diagnosis.settings import Settings
from flows.tracking import recorded_run

__all__ = ["MAX_LISTED_PROBLEMS", "default_dataset", "ingest_flow", "ingest_summary", "store_rows", "to_store"]

logger = logging.getLogger("flows")

MAX_LISTED_PROBLEMS = 200  # the result lists at most this many problems; the rest are counted (memory stays flat)


def to_store(case: ValidatedCase, source: str | None) -> db.CaseIn:
    """Map a validated manifest row onto the store's input record."""
    image = None
    if case.image is not None:
        image = db.ImageIn(path=case.image.path, sha256=case.image.sha256, format=case.image.format,
                           shape=case.image.shape, spacing=case.image.spacing)
    elif case.image_path is not None:  # rejected image: keep the path so the row can be fixed and re-ingested
        image = db.ImageIn(path=case.image_path, sha256="", format="unknown", shape=(), spacing=None)
    return db.CaseIn(case_key=case.case_id, patient_key=case.patient_id, label=case.label, split=case.split,
                     text=case.text, image=image, status=case.status, error=case.error, source=source,
                     dataset=case.dataset)


@task(cache_policy=NO_CACHE)
def validate_batch(rows: list[ManifestRow], base_dir: Path, options: IngestOptions) -> list[ValidatedCase]:
    """Validate a batch of manifest rows (images are read and checked, DICOM copied de-identified)."""
    return [validate_row(row, base_dir, options) for row in rows]


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def store_batch(cases: list[ValidatedCase], db_url: str, source: str) -> db.UpsertOutcome:
    """Upsert a batch of cases (idempotent); a batch the store refuses is stored row by row (see :func:`store_rows`).

    Retries are for the store being unavailable; a row the store refuses is not retried."""
    try:
        with db.session_scope(db_url) as session:
            return db.upsert_cases(session, [to_store(c, source) for c in cases])
    except (DataError, IntegrityError, StatementError) as error:
        if getattr(error, "connection_invalidated", False):
            raise
        logger.warning("ingest: the store refused a batch (%s); storing its rows one by one", type(error).__name__)
        return store_rows(cases, db_url, source)


def store_rows(cases: Sequence[ValidatedCase], db_url: str, source: str) -> db.UpsertOutcome:
    """Upsert cases one per transaction, so that a row the store refuses does not take the others with it.

    A refused row is stored as a rejected case that keeps only its key and the reason; if even that is refused, it
    is reported as a conflict. No row is dropped without a trace."""
    created = unchanged = replaced = 0
    conflicts: list[tuple[str, str]] = []
    for case in cases:
        refused = db.CaseIn(case_key=case.case_id[:MAX_ID_CHARS], patient_key=None, label=None, split=None, text=None,
                            image=None, status="rejected", source=source, dataset=case.dataset,
                            error=f"line {case.line}: the store refused this row; check its cells (lengths, characters) "
                                  "and ingest it again")
        attempts = [to_store(case, source), refused]
        for attempt in attempts:
            try:
                with db.session_scope(db_url) as session:
                    outcome = db.upsert_cases(session, [attempt])
            except (DataError, IntegrityError, StatementError) as error:
                logger.warning("ingest: line %s refused by the store (%s)", case.line, type(error).__name__)
                continue
            created, unchanged, replaced = created + outcome.created, unchanged + outcome.unchanged, replaced + outcome.replaced
            conflicts += outcome.conflicts
            break
        else:
            conflicts.append((case.case_id[:MAX_ID_CHARS], f"line {case.line}: the store refused this row"))
    return db.UpsertOutcome(created=created, unchanged=unchanged, replaced=replaced, conflicts=conflicts)


def _problems(cases: Sequence[ValidatedCase], outcome: db.UpsertOutcome) -> list[dict[str, object]]:
    """Rejected rows and store conflicts of one batch, as ``{kind, line, case_id, reason}``."""
    lines = {c.case_id: c.line for c in cases}  # a duplicate's conflict is reported at its last line
    found: list[dict[str, object]] = [
        {"kind": "rejected", "line": c.line, "case_id": c.case_id, "reason": c.error} for c in cases if c.status == "rejected"
    ]
    found += [{"kind": "conflict", "line": lines.get(key), "case_id": key, "reason": reason} for key, reason in outcome.conflicts]
    return found


@flow(name="ingest")
def ingest_flow(manifest: str, db_url: str, batch_size: int = 256, home: str | None = None,
                labels: list[str] | None = None, allow_outside_paths: bool = False,
                dataset: str | None = None, accept_burned_in: bool = False) -> dict[str, object]:
    """Ingest every row of ``manifest`` into the store.

    Policy (see also :func:`db.upsert_cases`): a re-ingest of the same content changes nothing; a case stored as
    rejected is replaced by a corrected row; a case stored as ingested is never overwritten by different content —
    the row is reported as a *conflict* (use a new ``case_id`` for new content).

    Args:
        manifest: CSV path (``case_id, patient_id, image, text, label, split``).
        db_url: Store URL.
        batch_size: Rows validated and written per task.
        home: Diagnosis home: holds the pseudonymisation key (``secrets/pseudonym.key`` unless
            ``DIAGNOSIS_PSEUDONYM_KEY`` is set) and the de-identified DICOM copies (``deid/``); default as the CLI's.
        labels: Allowed labels; ``None`` accepts any label.
        allow_outside_paths: Accept image paths resolving outside the manifest's folder.
        dataset: The data set the cases join (a row's own ``dataset`` cell wins); default: the manifest's folder
            name (see :func:`default_dataset`).
        accept_burned_in: Ingest DICOM images marked ``BurnedInAnnotation=YES`` (by default they are rejected: their
            pixels may show names that no header clean-up removes).

    Returns:
        Counts ``rows``, ``ingested``, ``rejected``, ``created``, ``unchanged``, ``replaced``, ``conflicts``; the
        ``datasets`` the rows joined; plus
        ``problems`` (up to :data:`MAX_LISTED_PROBLEMS` dicts with ``kind``, ``line``, ``case_id``, ``reason``) and
        ``problems_not_listed``.

    Raises:
        ManifestError: The manifest as a whole cannot be read.
    """
    path = Path(manifest).resolve()
    home_path = Path(home) if home else Settings.from_env().home
    options = IngestOptions(labels=tuple(labels) if labels else None, allow_outside_paths=allow_outside_paths,
                            pseudonym_key=load_pseudonym_key(home_path), deid_dir=home_path / "deid",
                            accept_burned_in=accept_burned_in, dataset=dataset or default_dataset(path))
    problems: list[dict[str, object]] = []
    not_listed, joined = 0, set[str]()
    with recorded_run(db_url, "ingest") as run:
        rows = read_manifest(path)
        while batch := list(islice(rows, batch_size)):
            cases = validate_batch(batch, path.parent, options)
            joined.update(c.dataset for c in cases if c.dataset)
            outcome = store_batch(cases, db_url, str(path))
            rejected = sum(c.status == "rejected" for c in cases)
            run.add(rows=len(cases), ingested=len(cases) - rejected, rejected=rejected, created=outcome.created,
                    unchanged=outcome.unchanged, replaced=outcome.replaced, conflicts=len(outcome.conflicts))
            found = _problems(cases, outcome)
            room = max(0, MAX_LISTED_PROBLEMS - len(problems))
            problems += found[:room]
            not_listed += len(found) - len(found[:room])
            logger.info("ingest: %d rows read, %d rejected, %d conflicts so far", run.counts["rows"],
                        run.counts["rejected"], run.counts["conflicts"])
        return {**run.counts, "datasets": sorted(joined), "problems": problems, "problems_not_listed": not_listed}


def default_dataset(manifest: Path) -> str:
    """The data set of a manifest ingested without ``--dataset``: its folder's name (``manifest.csv`` of
    ``data/pneumoniamnist/`` joins ``pneumoniamnist``)."""
    return manifest.resolve().parent.name[:MAX_ID_CHARS] or "default"


def ingest_summary(result: dict[str, object]) -> str:
    """A human-readable summary of an ingest result: counts, then one line per rejected row or conflict."""
    counts = ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int) and k != "problems_not_listed")
    joined = ", ".join(result.get("datasets") or [])  # type: ignore[arg-type]
    lines = [f"ingest into data set {joined}: {counts}" if joined else f"ingest: {counts}"]
    for problem in result.get("problems", []):  # type: ignore[union-attr]
        where = f"line {problem['line']}" if problem.get("line") else "line ?"
        lines.append(f"  {problem['kind']:<8} {where:<10} {problem['case_id']}: {problem['reason']}")
    if result.get("problems_not_listed"):
        lines.append(f"  … and {result['problems_not_listed']} more; see `diagnosis cases --status rejected`")
    return "\n".join(lines)
