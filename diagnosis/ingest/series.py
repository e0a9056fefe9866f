"""DICOM series folders: the files of one series read, checked and ordered along the slice normal (falling back to
``InstanceNumber`` when a slice has no geometry), then assembled into one volume by the policy of
:mod:`diagnosis.ingest.dicom`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from diagnosis.ingest.dicom import (
    MAX_SERIES_FILES,
    DicomError,
    decode_frames,
    dicom_files,
    header_integer,
    header_number,
    pixel_spacing,
    read_dicom,
    slice_position,
)

__all__ = ["read_series", "series_volume"]


def read_series(folder: Path) -> list[tuple[Path, Dataset]]:
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
    try:
        slices = [(path, read_dicom(path)) for path in files]
    except DicomError as error:
        raise DicomError(f"series folder {folder.name}: {error}") from error
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) > 1:
        raise DicomError(f"image folder {folder.name} holds {len(series)} DICOM series; put each series in its own folder")
    sizes = {(header_integer(ds, "Rows"), header_integer(ds, "Columns")) for _, ds in slices}
    if len(sizes) > 1:
        raise DicomError(f"slices of series folder {folder.name} differ in size {sorted(sizes)}; the series is inconsistent")
    positions = [slice_position(ds) for _, ds in slices]
    if all(p is not None for p in positions):
        order = np.argsort(np.asarray(positions, float), kind="stable")
        if len(set(positions)) != len(positions):
            raise DicomError(f"series folder {folder.name} has several slices at the same position; remove duplicates")
    else:
        order = np.argsort([header_integer(ds, "InstanceNumber") for _, ds in slices], kind="stable")
    return [slices[i] for i in order]


def series_volume(folder: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Assemble a series folder into a volume (colour slices averaged, as for single files).

    Returns:
        The volume as float32 ``(columns, rows, slices)`` (laid out like MONAI's DICOM reader) and its spacing
        ``(column, row, slice)`` in mm when the slices record it.

    Raises:
        DicomError: See :func:`read_series`; also multi-frame slices and undecodable pixels.
    """
    slices = read_series(folder)
    planes = []
    for path, ds in slices:
        try:
            frames = decode_frames(path, ds)
        except DicomError as error:
            raise DicomError(f"series folder {folder.name}: {error}") from error
        if frames.shape[0] != 1:
            raise DicomError(f"{path.name} in series folder {folder.name} holds {frames.shape[0]} frames; a series "
                             "folder needs single-frame slices (ingest a multi-frame file on its own)")
        planes.append(frames[0].T)  # (columns, rows) per slice, as MONAI
    volume = np.stack(planes, axis=-1)
    in_plane = pixel_spacing(slices[0][1])
    positions = [slice_position(ds) for _, ds in slices]
    spacing = None
    if in_plane is not None:
        if len(slices) > 1 and all(p is not None for p in positions):
            step = float(np.mean(np.diff(np.asarray(positions, float))))
        else:
            step = header_number(slices[0][1].get("SliceThickness"), 1.0) or 1.0
        spacing = (in_plane[1], in_plane[0], abs(step))
    return volume, spacing
