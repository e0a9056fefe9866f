"""Reading a case manifest (CSV) and validating each row into an ingestible case.

A manifest has the columns ``case_id`` (required, unique), ``patient_id``, ``image``, ``text``, ``label`` and
``split``. Every column but ``case_id`` may be empty, but a row needs an image or a text. Rows are streamed: memory
does not grow with the manifest. A bad row never stops the batch: it becomes a *rejected* case with a reason.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from diagnosis.ingest.images import ImageError, ImageInfo, probe_image

__all__ = [
    "MANIFEST_COLUMNS",
    "MAX_TEXT_CHARS",
    "SPLITS",
    "ManifestError",
    "ManifestRow",
    "ValidatedCase",
    "read_manifest",
    "validate_row",
]

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("case_id", "patient_id", "image", "text", "label", "split")
SPLITS = ("train", "val", "test")
MAX_TEXT_CHARS = 10_000  # longer symptom notes are rejected: they are almost always pasted documents


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (missing file, no ``case_id`` column, not CSV)."""


@dataclass(frozen=True)
class ManifestRow:
    """One raw manifest row; empty cells are ``None``. ``line`` is the 1-based CSV line for messages."""

    line: int
    case_id: str | None
    patient_id: str | None
    image: str | None
    text: str | None
    label: str | None
    split: str | None


@dataclass(frozen=True)
class ValidatedCase:
    """A row after validation: ``status`` is ``ingested`` or ``rejected`` (then ``error`` says why)."""

    case_id: str
    patient_id: str | None
    label: str | None
    split: str | None
    text: str | None
    image: ImageInfo | None
    image_path: str | None  # the resolved path, kept even when the image was rejected
    status: str
    error: str | None = None


def _cell(row: dict[str, str | None], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    value = value.strip()
    return value or None


def read_manifest(path: str | Path) -> Iterator[ManifestRow]:
    """Stream the rows of a manifest.

    Args:
        path: CSV file with a header row.

    Yields:
        One :class:`ManifestRow` per data row.

    Raises:
        ManifestError: The file is missing, empty, not UTF-8 or lacks a ``case_id`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            if "case_id" not in header:
                raise ManifestError(
                    f"{path.name} has no 'case_id' column (header: {header}); expected {', '.join(MANIFEST_COLUMNS)}"
                )
            reader.fieldnames = header
            for row in reader:
                yield ManifestRow(
                    line=reader.line_num,
                    **{name: _cell(row, name) for name in MANIFEST_COLUMNS},
                )
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path.name} is not UTF-8 text: {error}") from error
    except csv.Error as error:
        raise ManifestError(f"{path.name} is not valid CSV: {error}") from error


def validate_row(row: ManifestRow, base_dir: Path) -> ValidatedCase:
    """Check one row and probe its image.

    Args:
        row: The raw row.
        base_dir: Folder that relative image paths are resolved against (the manifest's folder).

    Returns:
        The validated case; problems give ``status="rejected"`` and a reason instead of an exception.
    """
    case_id = row.case_id or f"<line {row.line}>"
    image_path = None
    if row.image:
        candidate = Path(row.image).expanduser()
        image_path = str(candidate if candidate.is_absolute() else (base_dir / candidate).resolve())
    text = row.text

    def reject(reason: str) -> ValidatedCase:
        return ValidatedCase(case_id, row.patient_id, row.label, row.split, text, None, image_path, "rejected", reason)

    if not row.case_id:
        return reject(f"line {row.line}: empty case_id")
    if row.split and row.split not in SPLITS:
        return reject(f"unknown split {row.split!r}; use one of {', '.join(SPLITS)} or leave it empty")
    if image_path is None and text is None:
        return reject("row has neither an image nor a symptom text")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        return reject(f"symptom text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    info = None
    if image_path is not None:
        try:
            info = probe_image(image_path)
        except ImageError as error:
            return reject(str(error))
    return ValidatedCase(case_id, row.patient_id, row.label, row.split, text, info, image_path, "ingested")
