"""Validating one manifest row into an ingestible case: paths, labels, splits, texts, images, privacy.

Policies (each failure becomes ``status="rejected"`` with the reason; the rest of the manifest goes on):

- **Paths**: an ``image`` cell (a file, or a folder holding one DICOM series) relative to the manifest's folder, or
  absolute. Either way it must resolve (symbolic links followed) inside the manifest's folder, unless
  :attr:`IngestOptions.allow_outside_paths` is set; so must every file of a series folder (a slice that is a link
  to a file elsewhere would copy another patient's images into this case).
- **Containment**: an unexpected error while validating a row rejects that row with the error's type (never its
  message, which may quote identifiers); the other rows go on.
- **Labels**: with :attr:`IngestOptions.labels` only those labels are accepted; without (the default) any label is.
- **Texts**: identifiers, the row's own ``patient_id`` and ``case_id`` among them, are masked
  (:func:`diagnosis.ingest.text.mask_identifiers`) before storage; invalid UTF-8,
  control-only and over-long texts are rejected; an empty or whitespace-only text counts as no text.
- **Privacy**: with a pseudonymisation key, ``patient_id`` is replaced by its keyed pseudonym; with a
  ``deid_dir`` too, DICOM images are copied de-identified under ``<deid_dir>/<pseudonym>/<case>/`` and the case
  points at the copy.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from diagnosis.ingest.deid import write_deidentified
from diagnosis.ingest.dicom import DicomError, dicom_files
from diagnosis.ingest.images import ImageError, ImageInfo, probe_image
from diagnosis.ingest.manifest import MAX_ID_CHARS, SPLITS, ManifestRow, ValidatedCase
from diagnosis.ingest.privacy import pseudonymise
from diagnosis.ingest.text import mask_identifiers, text_problem

__all__ = ["IngestOptions", "validate_row"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOptions:
    """How rows are validated; the defaults keep a library call free of side effects."""

    labels: tuple[str, ...] | None = None  # allowed labels; None accepts any label
    allow_outside_paths: bool = False  # False: image paths must resolve inside the manifest's folder
    pseudonym_key: bytes | None = None  # HMAC key for patient ids; None stores patient ids as given
    deid_dir: Path | None = None  # where de-identified DICOM copies go; None keeps DICOM paths as given
    mask_text: bool = True  # mask e-mails, phone numbers, dates and ID-like numbers in texts
    accept_burned_in: bool = False  # False: DICOM with BurnedInAnnotation=YES is rejected (text in the pixels)
    dataset: str | None = None  # the data set of rows without a ``dataset`` cell


def _is_dicom(path: Path) -> bool:
    return path.is_dir() or path.name.lower().endswith(".dcm")


def _slug(value: str) -> str:
    """A file-system-safe folder name for a case id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._")[:80] or "case"


_OUTSIDE_HINT = "move the files under it or ingest with --allow-outside-paths"


def _resolve(cell: str, base_dir: Path, options: IngestOptions) -> tuple[str, str | None]:
    """Resolve an image cell; return the path and, when it (or a file of its series folder) escapes the manifest
    folder, why it is refused."""
    candidate = Path(cell).expanduser()
    resolved = (candidate if candidate.is_absolute() else base_dir / candidate).resolve()
    if options.allow_outside_paths:
        return str(resolved), None
    root = base_dir.resolve()
    if not resolved.is_relative_to(root):
        return str(resolved), f"image path {cell!r} resolves outside the manifest's folder; {_OUTSIDE_HINT}"
    if resolved.is_dir():
        try:
            escaping = sum(not item.resolve().is_relative_to(root) for item in dicom_files(resolved))
        except OSError as error:
            return str(resolved), f"cannot list the series folder: {type(error).__name__}: {error.strerror or error}"
        if escaping:
            return str(resolved), (f"series folder {cell!r} has {escaping} file(s) linking outside the manifest's "
                                   f"folder; {_OUTSIDE_HINT}")
    return str(resolved), None


def validate_row(row: ManifestRow, base_dir: Path, options: IngestOptions | None = None) -> ValidatedCase:
    """Check one row, probe its image and apply the privacy policies.

    Args:
        row: The raw row.
        base_dir: Folder that relative image paths are resolved against (the manifest's folder).
        options: Validation and privacy settings; default :class:`IngestOptions()`.

    Returns:
        The validated case; problems give ``status="rejected"`` and a reason instead of an exception.
    """
    options = options or IngestOptions()
    try:
        return _validate(row, base_dir, options)
    except Exception as error:  # noqa: BLE001 - one row's failure must not end the batch
        logger.warning("line %d: unexpected %s while validating; the row is rejected", row.line, type(error).__name__)
        reason = f"line {row.line}: unexpected {type(error).__name__} while validating this row; check its cells"
        patient = row.patient_id
        if patient is not None and options.pseudonym_key is not None:
            patient = pseudonymise(patient, options.pseudonym_key)
        return ValidatedCase((row.case_id or f"<line {row.line}>")[:MAX_ID_CHARS], patient, row.label, row.split, None, None, None,
                             "rejected", reason, row.line, row.dataset or options.dataset)


def _validate(row: ManifestRow, base_dir: Path, options: IngestOptions) -> ValidatedCase:
    """:func:`validate_row` without its containment of unexpected errors."""
    case_id = (row.case_id or f"<line {row.line}>")[:MAX_ID_CHARS]  # an over-long id is rejected under its first chars
    patient = row.patient_id
    if patient is not None and options.pseudonym_key is not None:
        patient = pseudonymise(patient, options.pseudonym_key)
    image_path, path_problem = _resolve(row.image, base_dir, options) if row.image else (None, None)
    problem = text_problem(row.text)
    text = row.text
    if problem is None and text is not None and options.mask_text:
        text = mask_identifiers(text, known=(row.patient_id, row.case_id))
    if problem is not None or row.problem is not None:
        text = None  # never store a text that failed its checks, or one from a defective line

    def reject(reason: str) -> ValidatedCase:
        return ValidatedCase(case_id, patient, row.label, row.split, text, None, image_path, "rejected", reason, row.line,
                             row.dataset or options.dataset)

    if row.problem:
        return reject(row.problem)
    if not row.case_id:
        return reject(f"line {row.line}: empty case_id; give every row a unique case_id")
    if row.split and row.split not in SPLITS:
        return reject(f"unknown split {row.split!r}; use one of {', '.join(SPLITS)} or leave it empty")
    if row.label and options.labels is not None and row.label not in options.labels:
        return reject(f"unknown label {row.label!r}; allowed: {', '.join(options.labels)} (or fix --labels)")
    if problem is not None:
        return reject(problem)
    if image_path is None and text is None:
        return reject("row has neither an image nor a symptom text (empty or whitespace-only cells count as missing)")
    if path_problem is not None:
        return reject(path_problem)
    info: ImageInfo | None = None
    if image_path is not None:
        try:
            info = probe_image(image_path)
            if options.deid_dir is not None and options.pseudonym_key is not None and _is_dicom(Path(image_path)):
                folder = options.deid_dir / (patient or "no-patient") / _slug(case_id)
                copy = write_deidentified(Path(image_path), folder, options.pseudonym_key, row.patient_id,
                                          accept_burned_in=options.accept_burned_in)
                info = probe_image(copy)
        except (ImageError, DicomError) as error:
            return reject(str(error))
        except OSError as error:  # permissions, disk full while writing the copy
            return reject(f"cannot read or copy the image: {type(error).__name__}: {error.strerror or error}")
    return ValidatedCase(case_id, patient, row.label, row.split, text, info, image_path, "ingested", None, row.line,
                         row.dataset or options.dataset)
