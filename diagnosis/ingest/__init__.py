"""Ingest stage: manifests, image files and DICOM series (via MONAI ``LoadImage``), validation, de-identification,
pseudonymisation, text masking, MedMNIST npz conversion."""

from __future__ import annotations

from diagnosis.ingest.deid import deidentify_dataset, write_deidentified
from diagnosis.ingest.deid_audit import remaining_phi
from diagnosis.ingest.dicom import DicomError
from diagnosis.ingest.images import ImageError, ImageInfo, LoadedImage, load_image, probe_image
from diagnosis.ingest.manifest import ManifestError, ManifestRow, ValidatedCase, read_manifest
from diagnosis.ingest.npz import import_npz
from diagnosis.ingest.privacy import PSEUDONYM_KEY_ENV, PrivacyError, load_pseudonym_key, pseudonymise
from diagnosis.ingest.text import MAX_TEXT_CHARS, mask_identifiers
from diagnosis.ingest.validate import IngestOptions, validate_row

__all__ = [
    "MAX_TEXT_CHARS",
    "PSEUDONYM_KEY_ENV",
    "DicomError",
    "ImageError",
    "ImageInfo",
    "IngestOptions",
    "LoadedImage",
    "ManifestError",
    "ManifestRow",
    "PrivacyError",
    "ValidatedCase",
    "deidentify_dataset",
    "import_npz",
    "load_image",
    "load_pseudonym_key",
    "mask_identifiers",
    "probe_image",
    "pseudonymise",
    "read_manifest",
    "remaining_phi",
    "validate_row",
    "write_deidentified",
]
