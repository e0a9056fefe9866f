"""Reading a case manifest (CSV) and validating each row into an ingestible case.

A manifest has the columns ``case_id`` (required, unique), ``patient_id``, ``image``, ``text``, ``label`` and
``split``. Every column but ``case_id`` may be empty, but a row needs an image or a text. Rows are streamed: memory
does not grow with the manifest. A bad row never stops the batch: it becomes a *rejected* case with a reason
(see :func:`diagnosis.ingest.validate.validate_row`).

Only a manifest that cannot be read as a whole (missing, not CSV, no ``case_id`` column) is an error. Line-level
problems travel with the row in :attr:`ManifestRow.problem`: a line with more or fewer fields than the header, and
bytes that are not UTF-8 (the file is decoded with ``surrogateescape``, so one bad line does not stop the others).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from diagnosis.ingest.images import ImageInfo
from diagnosis.ingest.text import MAX_TEXT_CHARS

__all__ = [
    "MANIFEST_COLUMNS",
    "MAX_TEXT_CHARS",
    "SPLITS",
    "ManifestError",
    "ManifestRow",
    "ValidatedCase",
    "read_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("case_id", "patient_id", "image", "text", "label", "split")
SPLITS = ("train", "val", "test")


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
    problem: str | None = None  # a line-level defect (field count, encoding) that rejects the row


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
    line: int | None = None  # manifest line, for the summary


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
        ManifestError: The file is missing, not CSV or lacks a ``case_id`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
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
                    problem=_problem(row, len(header), reader.line_num),
                )
    except csv.Error as error:
        raise ManifestError(f"{path.name} is not valid CSV: {error}; fix the quoting near that line") from error


def _problem(row: dict[str | None, object], n_fields: int, line: int) -> str | None:
    """Describe a line-level defect of a parsed row, or return ``None``."""
    extra = row.get(None)
    if extra:
        return f"line {line} has {n_fields + len(extra)} fields but the header has {n_fields}; quote cells containing commas"
    if any(value is None for key, value in row.items() if key is not None):
        filled = sum(value is not None for key, value in row.items() if key is not None)
        return f"line {line} has {filled} fields but the header has {n_fields}; every row needs all columns"
    for value in row.values():
        if isinstance(value, str) and any("\udc80" <= char <= "\udcff" for char in value):
            return f"line {line} is not valid UTF-8; re-save the manifest as UTF-8"
    return None
