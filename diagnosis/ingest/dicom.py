"""DICOM specifics: series folders assembled into a volume in patient-space slice order, and pixel-data checks.

MONAI's ``PydicomReader`` orders a series by ``InstanceNumber`` only, which scanners do not always assign along the
slice axis; here slices are ordered by their position along the slice normal (``ImagePositionPatient`` projected on
the cross product of the ``ImageOrientationPatient`` row and column vectors), falling back to ``InstanceNumber``
when a slice has no geometry. Single DICOM files are read by MONAI ``LoadImage``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

__all__ = ["MAX_SERIES_FILES", "DicomError", "dicom_files", "read_dicom", "read_series", "series_volume"]

logger = logging.getLogger(__name__)

MAX_SERIES_FILES = 4096  # a folder with more files is not one plausible series


class DicomError(ValueError):
    """A DICOM file or series that cannot be used; the message says why and what to do."""


def dicom_files(folder: Path) -> Iterator[Path]:
    """Regular files of ``folder`` (not recursive, hidden files skipped) in name order."""
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            yield path


def read_dicom(path: Path, pixels: bool = True) -> pydicom.Dataset:
    """Read one DICOM file, turning pydicom's errors into :class:`DicomError`.

    Raises:
        DicomError: Not DICOM, truncated, or (``pixels=True``) without pixel data.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as error:
        raise DicomError(f"{path.name} is not a readable DICOM file: {type(error).__name__}: {str(error)[:160]}") from error
    if pixels and "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(
            f"{path.name} is a DICOM file without pixel data (e.g. a structured report or a dose record); "
            "point the manifest at the image instances"
        )
    return ds


def _slice_position(ds: pydicom.Dataset) -> float | None:
    """Distance of a slice along its normal, or ``None`` when the slice has no geometry."""
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if position is None or orientation is None or len(orientation) != 6:
        return None
    row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return float(np.dot(np.cross(row, column), np.asarray(position, float)))


def read_series(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """Read every slice of a one-series folder, ordered along the slice axis.

    Args:
        folder: Folder holding the files of exactly one DICOM series.

    Returns:
        ``(file, dataset)`` pairs in slice order.

    Raises:
        DicomError: Empty folder, non-DICOM files, several series, slices without pixel data or of different sizes.
    """
    files = list(dicom_files(folder))
    if not files:
        raise DicomError(f"image folder {folder.name} is empty; a folder must hold the files of one DICOM series")
    if len(files) > MAX_SERIES_FILES:
        raise DicomError(f"image folder {folder.name} has {len(files)} files; at most {MAX_SERIES_FILES} per series")
    slices = [(path, read_dicom(path)) for path in files]
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) > 1:
        raise DicomError(f"image folder {folder.name} holds {len(series)} DICOM series; put each series in its own folder")
    sizes = {(int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) for _, ds in slices}
    if len(sizes) > 1:
        raise DicomError(f"slices of series folder {folder.name} differ in size {sorted(sizes)}; the series is inconsistent")
    positions = [_slice_position(ds) for _, ds in slices]
    if all(p is not None for p in positions):
        order = np.argsort(np.asarray(positions, float), kind="stable")
        if len(set(positions)) != len(positions):
            raise DicomError(f"series folder {folder.name} has several slices at the same position; remove duplicates")
    else:
        order = np.argsort([int(ds.get("InstanceNumber", 0) or 0) for _, ds in slices], kind="stable")
    return [slices[i] for i in order]


def _pixels(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    """Modality pixel values (rescale slope and intercept applied) of one slice as float32 ``(rows, columns)``."""
    try:
        array = ds.pixel_array.astype(np.float32)
    except (ValueError, RuntimeError, AttributeError, NotImplementedError) as error:
        raise DicomError(f"cannot decode the pixels of {path.name}: {str(error)[:160]}") from error
    if array.ndim != 2:
        raise DicomError(f"{path.name} has pixel data of shape {array.shape}; a series needs single-frame grayscale slices")
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    return array * slope + intercept


def series_volume(folder: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Assemble a series folder into a volume.

    Returns:
        The volume as float32 ``(columns, rows, slices)`` (laid out like MONAI's DICOM reader) and its spacing
        ``(column, row, slice)`` in mm when the slices record it.

    Raises:
        DicomError: See :func:`read_series`.
    """
    slices = read_series(folder)
    volume = np.stack([_pixels(path, ds).T for path, ds in slices], axis=-1)  # (columns, rows) per slice, as MONAI
    pixel_spacing = slices[0][1].get("PixelSpacing")
    positions = [_slice_position(ds) for _, ds in slices]
    spacing = None
    if pixel_spacing is not None and len(pixel_spacing) == 2:
        if len(slices) > 1 and all(p is not None for p in positions):
            step = float(np.mean(np.diff(np.asarray(positions, float))))
        else:
            step = float(slices[0][1].get("SliceThickness", 1.0) or 1.0)
        spacing = (float(pixel_spacing[1]), float(pixel_spacing[0]), abs(step))
    return volume, spacing
