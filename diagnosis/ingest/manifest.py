"""Reading a case manifest (CSV) and validating each row into an ingestible case.

A manifest has the columns ``case_id`` (required, unique), ``patient_id``, ``image``, ``text``, ``label`` and
``split``, and optionally ``dataset`` (the data set a row belongs to, e.g. written by ``import-npz``). Every column but ``case_id`` may be empty, but a row needs an image or a text. Rows are streamed: memory
does not grow with the manifest. A bad row never stops the batch: it becomes a *rejected* case with a reason
(see :func:`diagnosis.ingest.validate.validate_row`).

Only a manifest that cannot be read as a whole (missing, no ``case_id`` column, a column named twice) is an error.
Line-level problems travel with the row in :attr:`ManifestRow.problem`, and the other rows go on:

- a line with more or fewer fields than the header;
- bytes that are not UTF-8: the file is decoded with ``surrogateescape`` and every cell of such a line is then
  re-decoded with U+FFFD in place of the bad bytes, so nothing downstream (pseudonyms, the store, messages) ever
  meets an unencodable string;
- NUL bytes (PostgreSQL cannot store them), and identifier cells longer than :data:`MAX_ID_CHARS` (the store's
  key width) or an image path longer than :data:`MAX_PATH_CHARS`;
- a cell longer than :data:`MAX_CELL_CHARS`: the CSV reader refuses it (so memory stays bounded), and the row is
  rejected under its line number. Over-long symptom texts below that size are rejected by the text checks.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from diagnosis.ingest.images import ImageInfo
from diagnosis.ingest.text import MAX_TEXT_CHARS

__all__ = [
    "MANIFEST_COLUMNS",
    "MAX_CELL_CHARS",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "SPLITS",
    "ManifestError",
    "ManifestRow",
    "ValidatedCase",
    "read_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("case_id", "patient_id", "image", "text", "label", "split", "dataset")  # dataset: optional
SPLITS = ("train", "val", "test")
MAX_CELL_CHARS = 1 << 20  # the CSV reader's field limit (Python's default is 131,072): one cell at most 1 Mi chars
MAX_ID_CHARS = 255  # case_id, patient_id and label: the width of the store's key columns
MAX_PATH_CHARS = 4096  # an image cell longer than this is no path
_LIMITS = {"case_id": MAX_ID_CHARS, "patient_id": MAX_ID_CHARS, "label": MAX_ID_CHARS, "split": MAX_ID_CHARS,
           "dataset": MAX_ID_CHARS,
           "image": MAX_PATH_CHARS, "text": MAX_CELL_CHARS}


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
    dataset: str | None = None  # the optional ``dataset`` column (else the ingest's data set applies)


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
    dataset: str | None = None  # the row's ``dataset`` cell, else :attr:`IngestOptions.dataset`


def _readable(value: str) -> str:
    """``value`` with undecodable bytes (lone surrogates from ``surrogateescape``) replaced by U+FFFD."""
    if not any("\udc80" <= char <= "\udcff" for char in value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _cell(row: dict[str, str | None], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    value = _readable(value).strip()
    return value or None


def _header(path: Path, fieldnames: list[str] | None) -> list[str]:
    """The stripped header; a missing ``case_id`` or a column named twice refuses the whole manifest."""
    header = [_readable(name).strip() for name in (fieldnames or [])]
    if "case_id" not in header:
        raise ManifestError(f"{path.name} has no 'case_id' column (header: {header}); expected {', '.join(MANIFEST_COLUMNS)}")
    if twice := sorted(name for name, count in Counter(header).items() if count > 1 and name):
        raise ManifestError(f"{path.name} names the column(s) {', '.join(twice)} more than once; keep one of each "
                            "(which cell wins would be a guess)")
    return header


def read_manifest(path: str | Path) -> Iterator[ManifestRow]:
    """Stream the rows of a manifest.

    Args:
        path: CSV file with a header row.

    Yields:
        One :class:`ManifestRow` per data row (a line the CSV reader refuses gives a row with only its problem).

    Raises:
        ManifestError: The file is missing, lacks a ``case_id`` column or names a column twice.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        try:
            header = _header(path, reader.fieldnames)
        except csv.Error as error:
            raise ManifestError(f"{path.name}: the header line cannot be read as CSV ({error})") from error
        reader.fieldnames = header
        ended = reader.line_num  # the line the previous record ended on
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:  # an over-long cell or broken quoting: this record only
                line, ended = ended + 1, reader.line_num
                yield ManifestRow(line, None, None, None, None, None, None,
                                  problem=f"line {line} cannot be read as CSV ({error}); cells are limited "
                                          f"to {MAX_CELL_CHARS} characters, and quotes must be closed")
                continue
            ended = reader.line_num
            yield ManifestRow(
                line=reader.line_num,
                **{name: _cell(row, name) for name in MANIFEST_COLUMNS},
                problem=_problem(row, len(header), reader.line_num),
            )


def _problem(row: dict[str | None, object], n_fields: int, line: int) -> str | None:
    """Describe a line-level defect of a parsed row, or return ``None``."""
    extra = row.get(None)
    if extra:
        return f"line {line} has {n_fields + len(extra)} fields but the header has {n_fields}; quote cells containing commas"
    if any(value is None for key, value in row.items() if key is not None):
        filled = sum(value is not None for key, value in row.items() if key is not None)
        return f"line {line} has {filled} fields but the header has {n_fields}; every row needs all columns"
    for key, value in row.items():
        if not isinstance(value, str):
            continue
        if any("\udc80" <= char <= "\udcff" for char in value):
            return f"line {line} is not valid UTF-8; re-save the manifest as UTF-8"
        if "\x00" in value:
            return f"line {line}: the {key} cell contains NUL bytes; re-export the manifest as plain text"
        limit = _LIMITS.get(str(key), MAX_CELL_CHARS)
        if len(value.strip()) > limit:
            return f"line {line}: the {key} cell has {len(value.strip())} characters; the limit is {limit}"
    return None
