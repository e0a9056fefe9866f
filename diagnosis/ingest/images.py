"""Reading medical images and checking that they are usable: the format-independent policies over the format
registry of :mod:`diagnosis.ingest.formats` (MONAI ``LoadImage`` for NIfTI / NumPy, Pillow for PNG / JPEG,
:mod:`diagnosis.ingest.dicom` for DICOM files and series folders).

Supported inputs: PNG / JPEG (2D, grayscale or RGB), NIfTI ``.nii`` / ``.nii.gz`` (2D, 3D, 4D), DICOM ``.dcm``
files, DICOM **series folders** (see :mod:`diagnosis.ingest.dicom`) and NumPy ``.npy``. Every reader returns a
channel-first float array; colour channels are averaged into one channel, singleton spatial axes are dropped.

Policies (each format's own are in its module):

- **Content beats extension**: the first bytes are sniffed and a file whose content is another format than its
  extension says is rejected.
- **Size before reading**: what decoding will cost is read from the headers first, and an image whose decoded
  values would exceed :data:`MAX_VOXELS` is rejected without being decoded. Every value counts: all spatial axes,
  time points of a 4D NIfTI (MONAI decodes them all, even though one is kept), colour channels and alpha of a
  picture, frames and samples per pixel of a DICOM file, and the sum over the slices of a series folder.
  Peak memory per case is the readers' libraries (about 0.5 GB, once per process) plus :data:`BYTES_PER_VALUE`
  (8 measured for int16 NIfTI: the float32 array and the reader's buffer; up to 12 for float64 sources) times the
  values: at most about 1.6 GB at the 512³ limit. ``tests/diagnosis/ingest/test_ingest_hostile.py`` measures the slope.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diagnosis.ingest.dicom import dicom_files
from diagnosis.ingest.formats import (
    MAX_VOXELS,
    ImageError,
    ImageFormat,
    LoadedImage,
    check_content,
    format_for,
    one_channel,
)

__all__ = [
    "ImageError",
    "ImageInfo",
    "LoadedImage",
    "content_sha256",
    "file_sha256",
    "image_format",
    "load_image",
    "probe_image",
]

BYTES_PER_VALUE = 12  # documented upper bound of reading memory per decoded value (see the module docstring)
MIN_SIDE = 8  # smaller spatial sides carry no usable structure


@dataclass(frozen=True)
class ImageInfo:
    """What ingest records about an image file."""

    path: str
    sha256: str
    format: str
    shape: tuple[int, ...]  # spatial shape after channel reduction
    spacing: tuple[float, ...] | None


def image_format(path: str | Path) -> str:
    """Return the format name for a file's suffix (``dicom`` for a series folder).

    Raises:
        ImageError: The suffix is not a supported image type.
    """
    return format_for(path).name


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a series folder's file names and file hashes (in name order)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in dicom_files(path):
        digest.update(f"{item.name}\0{file_sha256(item)}\n".encode())
    return digest.hexdigest()


def load_image(path: str | Path) -> LoadedImage:
    """Load an image file or a DICOM series folder as a one-channel float32 array.

    Args:
        path: Image file, or a folder holding the files of one DICOM series.

    Returns:
        The image, channel-first ``(1, *spatial)`` with 2 or 3 spatial axes, and its spacing.

    Raises:
        ImageError: Missing, empty, unreadable, mislabelled, oversized, non-finite, constant or wrongly shaped
            images; DICOM without pixel data.
    """
    path = Path(path)
    fmt = format_for(path) if path.is_dir() else _checked_file(path)
    raw = fmt.read(path)
    return _finish(raw.array, raw.spacing, path, raw.affine)

def _checked_file(path: Path) -> ImageFormat:
    """The format of an image file that exists, holds bytes and whose content is what its name says.

    Raises:
        ImageError: Missing, not a regular file, empty, unsupported suffix or mislabelled content.
    """
    if not path.exists():
        raise ImageError(f"image file not found: {path.name}; check the path in the manifest (relative to its folder)")
    if not path.is_file():
        raise ImageError(f"image path {path.name} is neither a file nor a folder")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty (0 bytes): {path.name}; re-export it")
    fmt = format_for(path)
    check_content(path, fmt)
    return fmt


def _finish(array: np.ndarray, spacing: tuple[float, ...] | None, path: Path, affine: np.ndarray | None = None) -> LoadedImage:
    """Average channels, drop singleton axes, align the spacing and run the usability checks."""
    image = one_channel(LoadedImage(array, spacing, affine))
    _check(image.array, path)
    return image


def _check(array: np.ndarray, path: Path) -> None:
    """Reject arrays no model can use."""
    spatial = array.shape[1:]
    if len(spatial) not in (2, 3):
        raise ImageError(
            f"{path.name}: wrong dimensionality, expected a 2D or 3D image, got {len(spatial)} spatial axes {tuple(spatial)}"
        )
    if min(spatial) < MIN_SIDE:
        raise ImageError(f"{path.name}: image too small {tuple(spatial)}; each side needs at least {MIN_SIDE} pixels")
    if int(np.prod(spatial)) > MAX_VOXELS:
        raise ImageError(f"{path.name}: image of {tuple(spatial)} voxels exceeds the limit of {MAX_VOXELS}")
    if not np.isfinite(array).all():
        raise ImageError(f"{path.name}: image contains NaN or infinite values")
    if float(array.max()) == float(array.min()):
        raise ImageError(f"{path.name}: image is constant (every pixel {float(array.max()):g}); nothing to diagnose")


def probe_image(path: str | Path) -> ImageInfo:
    """Load and validate an image, returning what ingest stores about it.

    Raises:
        ImageError: The image cannot be used; the message is the reason stored against the case.
    """
    loaded = load_image(path)
    return ImageInfo(
        path=str(Path(path).resolve()),
        sha256=content_sha256(path),
        format=image_format(path),
        shape=tuple(int(s) for s in loaded.array.shape[1:]),
        spacing=loaded.spacing,
    )
