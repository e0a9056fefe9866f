"""NIfTI-1 / NIfTI-2 (``.nii``, ``.nii.gz``): 2D, 3D and 4D, decoded by MONAI (nibabel); written for 3D volumes.

A 4D image (``X, Y, Z, T``) keeps its first volume (``t = 0``); the other time points or channels are ignored, but
every one counts towards the size limit, since MONAI decodes them all.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from diagnosis.ingest.formats.base import ImageError, ImageFormat, LoadedImage, check_size, read_failure
from diagnosis.ingest.formats.monai_reader import monai_affine, monai_read, monai_spacing

__all__ = ["NIFTI", "is_nifti_header"]

_NIFTI_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")
GZIP_MAGIC = b"\x1f\x8b"


def is_nifti_header(header: bytes) -> bool:
    """Whether ``header`` starts like a NIfTI-1 (size 348) or NIfTI-2 (size 540) header, either byte order."""
    if len(header) < 4:
        return False
    sizes = {struct.unpack("<i", header[:4])[0], struct.unpack(">i", header[:4])[0]}
    if 348 in sizes and len(header) >= 348:
        return header[344:348] in _NIFTI_MAGICS
    if 540 in sizes and len(header) >= 12:
        return header[4:8] in _NIFTI2_MAGICS
    return False


class Nifti(ImageFormat):
    """NIfTI, plain or gzip-compressed (only the header is decompressed to recognise it)."""

    name = "nifti"
    label = "NIfTI"
    suffixes = (".nii", ".nii.gz")
    compressed = True

    def sniff(self, head: bytes, path: Path) -> bool:
        if is_nifti_header(head):
            return True
        if not head.startswith(GZIP_MAGIC):
            return False
        try:
            with gzip.open(path, "rb") as handle:
                return is_nifti_header(handle.read(540))
        except (OSError, EOFError, zlib.error):
            return False

    def read(self, path: Path) -> LoadedImage:
        """``(1, *spatial)``: the first volume of a 4D image, with MONAI's affine and spacing."""
        self._checked_header(path)
        array, image = monai_read(path)
        if array.shape[0] > 1:
            array = array[:1]  # 4D NIfTI: MONAI moves the 4th axis to channels; the policy keeps the first volume
        return LoadedImage(array, monai_spacing(image), monai_affine(image))

    def decode(self, path: Path) -> LoadedImage:
        """The array MONAI reads (nibabel's scaled data, channel first; a 4D image's first volume), with nibabel
        alone."""
        header = self._checked_header(path)
        try:
            data = np.asarray(np.asanyarray(header.dataobj), dtype=np.float32)
        except Exception as error:  # nibabel raises many types on corrupt input
            raise read_failure(path, error) from error
        return LoadedImage(data[..., 0][None] if data.ndim == 4 else data[None], None)

    @staticmethod
    def _checked_header(path: Path):  # noqa: ANN205 - a nibabel image, pixels not yet read
        """The file opened by nibabel (header only), its declared shape checked: at most 4 axes, and every value,
        each time point included (MONAI decodes them all before the 4D policy keeps the first), within the limit."""
        import nibabel as nib

        try:
            image = nib.load(path)
            shape = tuple(int(s) for s in image.shape)
        except Exception as error:  # nibabel raises many types on corrupt headers
            raise read_failure(path, error, header=True) from error
        if len(shape) > 4:
            raise ImageError(f"{path.name}: NIfTI with {len(shape)} axes {shape}; at most 4 (X, Y, Z, T) are supported")
        check_size(shape, path)
        return image

    def write(self, array: np.ndarray, path: Path, spacing_mm: float = 1.0) -> None:
        """Write an ``(X, Y, Z)`` volume with isotropic ``spacing_mm``, centred on the origin (qform and sform set)."""
        import nibabel as nib

        if array.ndim != 3:
            raise ValueError(f"NIfTI output needs an (X, Y, Z) volume, got shape {array.shape}")
        affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
        affine[:3, 3] = -spacing_mm * (np.asarray(array.shape) - 1) / 2.0  # volume centred on the origin
        img = nib.Nifti1Image(array, affine)
        img.header.set_xyzt_units("mm")
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        nib.save(img, path)


NIFTI = Nifti()
