"""NumPy ``.npy`` arrays (``\\x93NUMPY``), decoded by MONAI; the project writes them for 3D MedMNIST volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diagnosis.ingest.formats.base import ImageFormat, LoadedImage, check_size, read_failure
from diagnosis.ingest.formats.monai_reader import monai_affine, monai_read, monai_spacing

__all__ = ["NPY"]


class Npy(ImageFormat):
    """A plain array file; its shape is read from the header (memory-mapped) before decoding."""

    name = "npy"
    suffixes = (".npy",)

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith(b"\x93NUMPY")

    def read(self, path: Path) -> LoadedImage:
        self._checked_header(path)
        array, image = monai_read(path)
        return LoadedImage(array, monai_spacing(image), monai_affine(image))

    def decode(self, path: Path) -> LoadedImage:
        """The array MONAI reads (channel first), with NumPy alone."""
        data = self._checked_header(path)
        try:
            return LoadedImage(np.asarray(data, dtype=np.float32)[None], None)
        except (TypeError, ValueError) as error:  # truncated data or values that are not numbers
            raise read_failure(path, error) from error

    @staticmethod
    def _checked_header(path: Path) -> np.ndarray:
        """The array memory-mapped (its header read, no pixel yet), its declared shape within the limit."""
        try:
            data = np.load(path, mmap_mode="r")
        except Exception as error:  # NumPy raises many types on corrupt headers
            raise read_failure(path, error, header=True) from error
        check_size(tuple(data.shape), path)
        return data

    def write(self, array: np.ndarray, path: Path, spacing_mm: float = 1.0) -> None:
        """Write the array as it is (no spacing is stored)."""
        np.save(path, array)


NPY = Npy()
