"""Reading medical images through MONAI ``LoadImage`` and checking that they are usable.

Supported files: PNG / JPEG (2D, grayscale or RGB), NIfTI ``.nii`` / ``.nii.gz`` (2D, 3D, 4D), DICOM ``.dcm`` and
NumPy ``.npy``. Every reader returns a channel-first float array; colour and 4D channels are averaged into one
channel, singleton spatial axes are dropped.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_FORMATS",
    "ImageError",
    "ImageInfo",
    "LoadedImage",
    "file_sha256",
    "image_format",
    "load_image",
    "probe_image",
]

logger = logging.getLogger(__name__)

# suffix -> format name stored with the case
IMAGE_FORMATS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".dcm": "dicom",
    ".npy": "npy",
}
MAX_VOXELS = 512 * 512 * 512  # larger images are rejected as absurd rather than exhausting memory
MIN_SIDE = 8  # smaller spatial sides carry no usable structure


class ImageError(ValueError):
    """An image file that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class LoadedImage:
    """A loaded image: ``array`` is channel-first float32 ``(1, *spatial)``; ``spacing`` in mm per axis."""

    array: np.ndarray
    spacing: tuple[float, ...] | None


@dataclass(frozen=True)
class ImageInfo:
    """What ingest records about an image file."""

    path: str
    sha256: str
    format: str
    shape: tuple[int, ...]  # spatial shape after channel reduction
    spacing: tuple[float, ...] | None


def image_format(path: str | Path) -> str:
    """Return the format name for a file's suffix.

    Raises:
        ImageError: The suffix is not a supported image type.
    """
    name = str(path).lower()
    for suffix in sorted(IMAGE_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return IMAGE_FORMATS[suffix]
    raise ImageError(f"unsupported image type {Path(path).suffix!r}; use one of {', '.join(sorted(IMAGE_FORMATS))}")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _loader():  # noqa: ANN202 - MONAI transform
    """One shared MONAI ``LoadImage`` (construction scans readers, so do it once)."""
    # MONAI logs a warning on every start when NVIDIA's optional nvImageCodec is absent; pydicom decodes instead.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*nvimgcodec.*")
        from monai.transforms import LoadImage

        return LoadImage(image_only=True, ensure_channel_first=True)


def load_image(path: str | Path) -> LoadedImage:
    """Load an image file as a one-channel float32 array.

    Args:
        path: Image file.

    Returns:
        The image, channel-first ``(1, *spatial)`` with 2 or 3 spatial axes, and its spacing.

    Raises:
        ImageError: Missing, empty, unreadable, non-finite or wrongly shaped images.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty (0 bytes): {path.name}")
    image_format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _loader()(str(path))
    except Exception as error:  # MONAI wraps reader errors in many types
        raise ImageError(f"cannot read image {path.name}: {type(error).__name__}: {str(error)[:200]}") from error
    array = np.asarray(image, dtype=np.float32)
    spacing = _spacing(image)
    array = array.mean(axis=0, keepdims=True) if array.shape[0] > 1 else array
    spatial = [side for side in array.shape[1:] if side > 1] or list(array.shape[1:])
    if spacing is not None and len(spacing) != len(spatial):
        kept = [s for s, side in zip(spacing, array.shape[1:], strict=False) if side > 1]
        spacing = tuple(kept) if len(kept) == len(spatial) else None
    array = array.reshape(1, *spatial)
    _check(array, path)
    return LoadedImage(array=array, spacing=spacing)


def _spacing(image: object) -> tuple[float, ...] | None:
    """Voxel spacing from a MONAI MetaTensor, when the format records one."""
    pixdim = getattr(image, "pixdim", None)
    if pixdim is None:
        return None
    values = tuple(float(v) for v in np.asarray(pixdim).ravel())
    return values or None


def _check(array: np.ndarray, path: Path) -> None:
    """Reject arrays no model can use."""
    spatial = array.shape[1:]
    if len(spatial) not in (2, 3):
        raise ImageError(f"{path.name}: expected a 2D or 3D image, got {len(spatial)} spatial axes {tuple(spatial)}")
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
        sha256=file_sha256(path),
        format=image_format(path),
        shape=tuple(int(s) for s in loaded.array.shape[1:]),
        spacing=loaded.spacing,
    )
