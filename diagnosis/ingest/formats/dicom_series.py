"""A DICOM series folder: the files of one series, assembled into a volume by :mod:`diagnosis.ingest.dicom`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diagnosis.ingest.dicom import MAX_SERIES_FILES, DicomError, dicom_files, read_dicom
from diagnosis.ingest.formats.base import MAX_VOXELS, ImageError, ImageFormat, LoadedImage
from diagnosis.ingest.formats.dicom_file import dicom_declared_shape, volume_affine
from diagnosis.ingest.series import series_volume

__all__ = ["DICOM_SERIES"]


class DicomSeries(ImageFormat):
    """A folder; recorded with the format name ``dicom``, like its files."""

    name = "dicom"
    suffixes = ()

    def read(self, path: Path) -> LoadedImage:
        self._check_size(path)
        try:
            volume, spacing = series_volume(path)
        except DicomError as error:
            raise ImageError(str(error)) from error
        return LoadedImage(volume[None], spacing, volume_affine(spacing))

    @staticmethod
    def _check_size(folder: Path) -> None:
        """Reject a folder whose slices together declare more than :data:`MAX_VOXELS` values, from headers only."""
        total, files = 0, 0
        for item in dicom_files(folder):
            files += 1
            if files > MAX_SERIES_FILES:
                break  # read_series names the file limit
            try:
                total += int(np.prod(dicom_declared_shape(read_dicom(item, pixels=False)), dtype=np.int64))
            except DicomError:
                continue  # read_series reports unreadable slices with their reason
            if total > MAX_VOXELS:
                raise ImageError(f"series folder {folder.name}: its slices declare more than {MAX_VOXELS} values in all "
                                 f"(reached after {files} files); split or downsample the series")


DICOM_SERIES = DicomSeries()
