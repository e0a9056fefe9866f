"""What ingestion hands the store for a case (:class:`CaseIn` with its :class:`ImageIn`), the content
fingerprint that makes ingestion idempotent, and what :func:`db.cases.upsert.upsert_cases` reports back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

__all__ = [
    "INGEST_STATUSES",
    "CaseIn",
    "ImageIn",
    "UpsertOutcome",
    "case_fingerprint",
]


INGEST_STATUSES: tuple[str, ...] = ("ingested", "rejected")
"""Statuses a case may be ingested with."""


@dataclass(frozen=True)
class ImageIn:
    """The image of a case as found by ingestion.

    Attributes:
        path: Where the image file lives.
        sha256: Hash of the file content.
        format: ``png``, ``nifti``, ``dicom``, ``npy``, ...
        shape: Array shape after loading, e.g. ``(H, W)`` or ``(D, H, W)``.
        spacing: Voxel spacing in mm when the format carries it.
    """

    path: str
    sha256: str
    format: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...] | None


@dataclass(frozen=True)
class CaseIn:
    """One manifest row to store.

    Attributes:
        case_key: The manifest's ``case_id``.
        patient_key: The manifest's ``patient_id``.
        label: True diagnosis label, if known.
        split: ``train`` / ``val`` / ``test``.
        text: Symptom description.
        image: The image, if the case has one.
        status: ``ingested`` or ``rejected``.
        error: Why the row was rejected (a reason a person can act on).
        source: Manifest path the row came from.
        is_synthetic: Whether the case was generated rather than collected.
        dataset: The data set the case belongs to (not part of its content: a re-ingest under another data set
            name changes nothing).
    """

    case_key: str
    patient_key: str | None
    label: str | None
    split: str | None
    text: str | None
    image: ImageIn | None
    status: str = "ingested"
    error: str | None = None
    source: str | None = None
    is_synthetic: bool = False
    dataset: str | None = None


@dataclass(frozen=True)
class UpsertOutcome:
    """What :func:`upsert_cases` did.

    Attributes:
        created: New cases written.
        unchanged: Cases already stored with the same content (nothing written).
        replaced: Previously rejected cases overwritten by corrected content.
        conflicts: ``(case_key, reason)`` for every case that was not written.
    """

    created: int
    unchanged: int
    replaced: int
    conflicts: tuple[tuple[str, str], ...]


def case_fingerprint(case: CaseIn) -> str:
    """Hash the content of a case that decides whether a re-ingest changes it.

    Covers patient key, label, split, text, image sha256 and path, status and error; not ``source`` or
    ``is_synthetic``.

    Args:
        case: The case.

    Returns:
        A 64-character hex sha256 digest.
    """
    image = case.image
    payload = [
        case.patient_key,
        case.label,
        case.split,
        case.text,
        image.sha256 if image else None,
        image.path if image else None,
        case.status,
        case.error,
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()
