"""Idempotent bulk ingestion of cases: what a manifest row becomes in the store (its input types and fingerprint\nare in :mod:`db.cases.incoming`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from db._sql import chunked, insert_ignoring_conflicts
from db.cases.incoming import INGEST_STATUSES, CaseIn, UpsertOutcome, case_fingerprint
from db.models import Case, Image, Patient, SymptomNote, utcnow

__all__ = ["upsert_cases"]


def _existing(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, str, str]]:
    """Map stored case keys among ``keys`` to ``(id, fingerprint, status)``."""
    found: dict[str, tuple[int, str, str]] = {}
    for chunk in chunked(keys):
        rows = session.execute(
            select(Case.case_key, Case.id, Case.fingerprint, Case.status).where(Case.case_key.in_(chunk))
        )
        found.update({key: (id_, fp, status) for key, id_, fp, status in rows})
    return found


def _patient_ids(session: Session, keys: set[str]) -> dict[str, int]:
    """Return patient ids for ``keys``, creating missing patients."""
    ordered = sorted(keys)
    now = utcnow()
    new_rows = [{"patient_key": key, "created_at": now} for key in ordered]
    insert_ignoring_conflicts(session, Patient.__table__, new_rows, index_elements=["patient_key"])
    ids: dict[str, int] = {}
    for chunk in chunked(ordered):
        rows = session.execute(select(Patient.patient_key, Patient.id).where(Patient.patient_key.in_(chunk)))
        ids.update(rows.tuples().all())
    return ids


def _case_fields(case: CaseIn, fingerprint: str, patients: dict[str, int]) -> dict[str, object]:
    """Column values of ``cases`` for one incoming case (without ids or timestamps)."""
    return {
        "patient_id": patients[case.patient_key] if case.patient_key is not None else None,
        "label": case.label,
        "split": case.split,
        "status": case.status,
        "error": case.error,
        "is_synthetic": case.is_synthetic,
        "source": case.source,
        "dataset": case.dataset,
        "fingerprint": fingerprint,
    }


def _write_children(session: Session, cases: Sequence[tuple[int, CaseIn]]) -> None:
    """Insert the image and symptom-note rows of freshly written cases."""
    now = utcnow()
    images = [
        {
            "case_id": case_id,
            "path": c.image.path,
            "sha256": c.image.sha256,
            "format": c.image.format,
            "shape": [int(n) for n in c.image.shape],
            "spacing": [float(s) for s in c.image.spacing] if c.image.spacing is not None else None,
            "created_at": now,
        }
        for case_id, c in cases
        if c.image is not None
    ]
    notes = [
        {
            "case_id": case_id,
            "text": c.text,
            "sha256": hashlib.sha256(c.text.encode("utf-8")).hexdigest(),
            "created_at": now,
        }
        for case_id, c in cases
        if c.text is not None
    ]
    for chunk in chunked(images):
        session.execute(Image.__table__.insert(), list(chunk))
    for chunk in chunked(notes):
        session.execute(SymptomNote.__table__.insert(), list(chunk))


def _validate(case: CaseIn) -> None:
    """Reject malformed input before anything is written."""
    if not case.case_key:
        raise ValueError("a case has an empty case_key: every manifest row needs a case_id")
    if case.status not in INGEST_STATUSES:
        raise ValueError(
            f"case {case.case_key!r} has status {case.status!r}; ingest only with one of {INGEST_STATUSES}"
        )


def _first_of_each_key(cases: Sequence[CaseIn]) -> tuple[dict[str, tuple[CaseIn, str]], int, list[tuple[str, str]]]:
    """The first case of each ``case_key`` with its fingerprint, how many repeats were identical, and a conflict for
    each repeat that differs."""
    batch: dict[str, tuple[CaseIn, str]] = {}
    unchanged, conflicts = 0, []
    for case in cases:
        fingerprint = case_fingerprint(case)
        first = batch.get(case.case_key)
        if first is None:
            batch[case.case_key] = (case, fingerprint)
        elif first[1] == fingerprint:
            unchanged += 1
        else:
            conflicts.append((case.case_key, f"case_id {case.case_key} appears twice in this batch with different "
                                             "content; the first row was kept; give each case its own case_id"))
    return batch, unchanged, conflicts


def _replace(session: Session, cases: Sequence[tuple[int, CaseIn, str]], patients: dict[str, int],
             now: datetime) -> None:
    """Overwrite rejected cases with their corrected rows; their image and note rows are written again afterwards."""
    session.execute(update(Case), [{"id": case_id, **_case_fields(c, fp, patients), "updated_at": now}
                                   for case_id, c, fp in cases])  # fmt: skip
    for chunk in chunked([case_id for case_id, _, _ in cases]):
        session.execute(delete(Image).where(Image.case_id.in_(chunk)))
        session.execute(delete(SymptomNote).where(SymptomNote.case_id.in_(chunk)))


def upsert_cases(session: Session, cases: Sequence[CaseIn]) -> UpsertOutcome:
    """Store cases idempotently, in bulk (a few statements per 500 cases, no commit).

    Idempotency policy, keyed by ``case_key`` and :func:`case_fingerprint` (a sha256 over patient key,
    label, split, text, image sha256 and path, status and error):

    * unknown ``case_key`` -> created, together with its image and symptom-note rows;
    * same ``case_key`` and same fingerprint -> unchanged, nothing is written;
    * stored case is ``rejected`` and the new content differs -> replaced: the corrected row overwrites the
      case and its image/note rows are replaced;
    * stored case is not ``rejected`` and the content differs -> not written; reported in ``conflicts`` as
      ``"case_id X already ingested with different content; use a new case_id"``;
    * the same ``case_key`` twice in one call -> the first wins; identical repeats count as unchanged,
      differing ones are conflicts.

    Patients are created on demand from ``patient_key``. Concurrent writers are tolerated: an insert that
    loses a race to another writer is re-checked like an existing case.

    Args:
        session: An open session; the caller commits.
        cases: Incoming cases, status ``ingested`` or ``rejected``.

    Returns:
        Counts of created, unchanged and replaced cases plus the conflicts.

    Raises:
        ValueError: If a case has an empty key or a status other than ``ingested``/``rejected``.
    """
    for case in cases:
        _validate(case)
    batch, unchanged, conflicts = _first_of_each_key(cases)

    def classify(keys: Sequence[str]) -> list[tuple[int, CaseIn, str]]:
        """Count unchanged/conflicting stored cases among ``keys``; return the ones to replace."""
        nonlocal unchanged
        stored = _existing(session, keys)
        replace: list[tuple[int, CaseIn, str]] = []
        for key in keys:
            case, fingerprint = batch[key]
            case_id, stored_fingerprint, stored_status = stored[key]
            if stored_fingerprint == fingerprint:
                unchanged += 1
            elif stored_status == "rejected":
                replace.append((case_id, case, fingerprint))
            else:
                conflicts.append((key, f"case_id {key} already ingested with different content; use a new case_id"))
        return replace

    stored = _existing(session, list(batch))
    to_replace = classify([key for key in batch if key in stored])
    to_create = [batch[key] for key in batch if key not in stored]
    patients = _patient_ids(
        session, {c.patient_key for c, _ in to_create + [(c, f) for _, c, f in to_replace] if c.patient_key}
    )

    now = utcnow()
    rows = [
        {"case_key": c.case_key, **_case_fields(c, fp, patients), "created_at": now, "updated_at": now}
        for c, fp in to_create
    ]
    returned = insert_ignoring_conflicts(
        session, Case.__table__, rows, index_elements=["case_key"], returning=(Case.id, Case.case_key)
    )
    created = {key: case_id for case_id, key in returned}
    lost = [c.case_key for c, _ in to_create if c.case_key not in created]
    if lost:  # another writer stored these keys between our read and our insert
        to_replace += classify(lost)

    if to_replace:
        _replace(session, to_replace, patients, now)
    _write_children(
        session,
        [(created[c.case_key], c) for c, _ in to_create if c.case_key in created]
        + [(case_id, c) for case_id, c, _ in to_replace],
    )
    return UpsertOutcome(
        created=len(created), unchanged=unchanged, replaced=len(to_replace), conflicts=tuple(conflicts)
    )
