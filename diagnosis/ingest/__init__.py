"""Ingest stage: manifests, image files (via MONAI ``LoadImage``), MedMNIST npz conversion."""

from __future__ import annotations

from diagnosis.ingest.images import ImageError, ImageInfo, LoadedImage, load_image, probe_image
from diagnosis.ingest.manifest import ManifestError, ManifestRow, ValidatedCase, read_manifest, validate_row
from diagnosis.ingest.npz import import_npz

__all__ = [
    "ImageError",
    "ImageInfo",
    "LoadedImage",
    "ManifestError",
    "ManifestRow",
    "ValidatedCase",
    "import_npz",
    "load_image",
    "probe_image",
    "read_manifest",
    "validate_row",
]
