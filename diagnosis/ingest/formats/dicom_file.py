"""One DICOM file (``.dcm``), decoded by :mod:`diagnosis.ingest.dicom` (its colour and multi-frame policy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from diagnosis.ingest.dicom import DicomError, dicom_image, header_integer, read_dicom
from diagnosis.ingest.formats.base import ImageError, ImageFormat, LoadedImage, check_size, read_failure

__all__ = ["DICOM_FILE", "dicom_declared_shape", "volume_affine"]


def dicom_declared_shape(ds: Dataset) -> tuple[int, ...]:
    """Rows, columns, frames and samples per pixel that a DICOM header declares (what decoding will produce; 1 where
    a value is absent or unusable)."""
    return tuple(header_integer(ds, name, 1) for name in ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel"))


def volume_affine(spacing: tuple[float, ...] | None) -> np.ndarray | None:
    """A diagonal voxel-to-world matrix for a DICOM volume with 3 spacings (no orientation is applied)."""
    return np.diag([*spacing, 1.0]) if spacing is not None and len(spacing) == 3 else None


class DicomFile(ImageFormat):
    """A DICOM file; ``DICM`` at offset 128, or no preamble at all (such files exist, so unsigned content passes)."""

    name = "dicom"
    suffixes = (".dcm",)
    unsigned = True

    def sniff(self, head: bytes, path: Path) -> bool:
        return head[128:132] == b"DICM"

    def read(self, path: Path) -> LoadedImage:
        try:
            shape = dicom_declared_shape(read_dicom(path))  # with pixels: a file without any is named as such
        except DicomError as error:
            raise ImageError(str(error)) from error
        except Exception as error:  # header parsers raise many types on corrupt input
            raise read_failure(path, error, header=True) from error
        check_size(shape, path)
        try:
            array, spacing = dicom_image(path)
        except DicomError as error:
            raise ImageError(str(error)) from error
        return LoadedImage(array[None], spacing, volume_affine(spacing))


DICOM_FILE = DicomFile()
