"""Reading medical images (MONAI ``LoadImage``; Pillow directly for PNG / JPEG) and checking that they are usable.

Supported inputs: PNG / JPEG (2D, grayscale or RGB), NIfTI ``.nii`` / ``.nii.gz`` (2D, 3D, 4D), DICOM ``.dcm``
files, DICOM **series folders** (see :mod:`diagnosis.ingest.dicom`) and NumPy ``.npy``. Every reader returns a
channel-first float array; colour channels are averaged into one channel, singleton spatial axes are dropped.

Policies:

- **DICOM** files and series folders are decoded by :mod:`diagnosis.ingest.dicom` (not MONAI): colour becomes its
  channel average, a multi-frame file a volume of its frames (or a rejection, see there), pydicom stays quiet.
- **4D NIfTI** (``X, Y, Z, T``): the first volume (``t = 0``) is used; the other time points / channels are ignored.
- **Content beats extension**: the first bytes are sniffed (:mod:`diagnosis.ingest.sniff`) and a file whose content
  is another format than its extension says is rejected.
- **Pixel axes of PNG / JPEG** follow MONAI's ``PILReader``: the first spatial axis is the picture's width (x).
  Pillow is called directly for them, as MONAI would, without MONAI's metadata tracking (five times faster per
  small picture, where batch diagnosis spends its reading time).
- **Size before reading**: what decoding will cost is read from the headers first, and an image whose decoded
  values would exceed :data:`MAX_VOXELS` is rejected without being decoded. Every value counts: all spatial axes,
  time points of a 4D NIfTI (MONAI decodes them all, even though one is kept), colour channels and alpha of a
  picture, frames and samples per pixel of a DICOM file, and the sum over the slices of a series folder.
  Peak memory per case is the readers' libraries (about 0.5 GB, once per process) plus :data:`BYTES_PER_VALUE`
  (8 measured for int16 NIfTI: the float32 array and the reader's buffer; up to 12 for float64 sources) times the
  values: at most about 1.6 GB at the 512³ limit. ``tests/diagnosis/test_ingest_hostile.py`` measures the slope.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from diagnosis.ingest.dicom import MAX_SERIES_FILES, DicomError, dicom_files, dicom_image, read_dicom, series_volume
from diagnosis.ingest.sniff import sniff_format

__all__ = [
    "IMAGE_FORMATS",
    "ImageError",
    "ImageInfo",
    "LoadedImage",
    "content_sha256",
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
BYTES_PER_VALUE = 12  # documented upper bound of reading memory per decoded value (see the module docstring)
MIN_SIDE = 8  # smaller spatial sides carry no usable structure
SERIES_FORMAT = "dicom"  # format recorded for a DICOM series folder
PICTURE_FORMATS = ("png", "jpeg")  # decoded by Pillow directly (see _read_picture)
PICTURE_SPACING = (1.0, 1.0)  # PNG / JPEG record no spacing; MONAI reports unit pixels for them


class ImageError(ValueError):
    """An image file that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class LoadedImage:
    """A loaded image: ``array`` is channel-first float32 ``(1, *spatial)``; ``spacing`` in mm per axis.

    ``affine`` is the voxel-to-world matrix (4x4) when the format records one and no axis was dropped; orientation
    and spacing resampling in preprocessing need it.
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    affine: np.ndarray | None = None


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


def content_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a series folder's file names and file hashes (in name order)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in dicom_files(path):
        digest.update(f"{item.name}\0{file_sha256(item)}\n".encode())
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
    if path.is_dir():
        _check_series_size(path)
        try:
            volume, spacing = series_volume(path)
        except DicomError as error:
            raise ImageError(str(error)) from error
        affine = np.diag([*spacing, 1.0]) if spacing is not None and len(spacing) == 3 else None
        return _finish(volume[None], spacing, path, affine)
    if not path.exists():
        raise ImageError(f"image file not found: {path.name}; check the path in the manifest (relative to its folder)")
    if not path.is_file():
        raise ImageError(f"image path {path.name} is neither a file nor a folder")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty (0 bytes): {path.name}; re-export it")
    fmt = image_format(path)
    _check_content(path, fmt)
    picture = fmt in PICTURE_FORMATS
    if not picture:
        _check_declared_shape(path, fmt)
    if fmt == "dicom":
        return _load_dicom(path)
    try:
        if picture:
            return _finish(_read_picture(path), PICTURE_SPACING, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _loader()(str(path))
    except ImageError:
        raise
    except Exception as error:  # MONAI and Pillow raise many types on corrupt input
        raise ImageError(f"cannot read image {path.name} (corrupt or truncated?): {type(error).__name__}: {str(error)[:200]}") from error
    array = np.asarray(image, dtype=np.float32)
    if fmt == "nifti" and array.shape[0] > 1:
        array = array[:1]  # 4D NIfTI: MONAI moves the 4th axis to channels; the policy keeps the first volume
    affine = getattr(image, "affine", None)
    return _finish(array, _spacing(image), path, None if affine is None else np.asarray(affine, dtype=np.float64))


def _load_dicom(path: Path) -> LoadedImage:
    """One DICOM file, decoded by :func:`diagnosis.ingest.dicom.dicom_image` (its colour and multi-frame policy)."""
    try:
        array, spacing = dicom_image(path)
    except DicomError as error:
        raise ImageError(str(error)) from error
    affine = np.diag([*spacing, 1.0]) if spacing is not None and len(spacing) == 3 else None
    return _finish(array[None], spacing, path, affine)


def _read_picture(path: Path) -> np.ndarray:
    """Decode a PNG / JPEG channel-first as MONAI's ``PILReader`` + ``EnsureChannelFirst`` would: ``(C, x, y)``."""
    from PIL import Image

    with warnings.catch_warnings():  # our own MAX_VOXELS limit applies, not Pillow's bomb warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as picture:  # reads the header only; pixels are decoded by asarray
            _check_size(picture.size, path, channels=len(picture.getbands()))
            data = np.asarray(picture)
    data = np.moveaxis(data, 0, 1)  # (rows, cols[, C]) -> (x, y[, C]), MONAI's reverse indexing
    return (data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)).astype(np.float32)


def _finish(array: np.ndarray, spacing: tuple[float, ...] | None, path: Path, affine: np.ndarray | None = None) -> LoadedImage:
    """Average channels, drop singleton axes, align the spacing and run the usability checks."""
    array = array.mean(axis=0, keepdims=True) if array.shape[0] > 1 else array
    spatial = [side for side in array.shape[1:] if side > 1] or list(array.shape[1:])
    if len(spatial) != array.ndim - 1 or len(spatial) != 3:
        affine = None  # only kept for volumes whose axes all survive
    if spacing is not None and len(spacing) != len(spatial):
        kept = [s for s, side in zip(spacing, array.shape[1:], strict=False) if side > 1]
        spacing = tuple(kept) if len(kept) == len(spatial) else None
    array = array.reshape(1, *spatial).astype(np.float32, copy=False)
    _check(array, path)
    return LoadedImage(array=array, spacing=spacing, affine=affine)


def _check_content(path: Path, fmt: str) -> None:
    """Reject files whose first bytes say they are another format than their extension."""
    content = sniff_format(path)
    if content == fmt or (fmt == "dicom" and content is None):  # DICOM without the 128-byte preamble exists
        return
    if fmt == "nifti" and content == "gzip":
        raise ImageError(f"{path.name}: gzip data without a NIfTI header (corrupt, truncated or not NIfTI); re-export it")
    found = f"{content} data" if content else "not a recognised image format"
    raise ImageError(
        f"{path.name}: the extension says {fmt} but the content is {found}; fix the extension or re-export the file"
    )


def _check_declared_shape(path: Path, fmt: str) -> None:
    """Read the shape from the header alone and reject absurd sizes and dimensionalities before decoding.

    For NIfTI, NumPy and DICOM files; pictures (PNG / JPEG) check theirs in :func:`_read_picture`, opened once.
    """
    try:
        if fmt == "nifti":
            import nibabel as nib

            shape = tuple(int(s) for s in nib.load(path).shape)
            if len(shape) > 4:
                raise ImageError(f"{path.name}: NIfTI with {len(shape)} axes {shape}; at most 4 (X, Y, Z, T) are supported")
            # every time point counts: MONAI decodes them all before the 4D policy keeps the first
        elif fmt == "npy":
            shape = tuple(np.load(path, mmap_mode="r").shape)
        else:
            shape = _dicom_shape(read_dicom(path))  # with pixels: a file without any is named as such
    except DicomError as error:
        raise ImageError(str(error)) from error
    except ImageError:
        raise
    except Exception as error:  # header parsers raise many types on corrupt input
        raise ImageError(f"cannot read the header of {path.name} (corrupt or truncated?): {type(error).__name__}: {str(error)[:160]}") from error
    _check_size(shape, path)


def _dicom_shape(ds: Dataset) -> tuple[int, ...]:
    """Rows, columns, frames and samples per pixel that a DICOM header declares (what decoding will produce)."""
    return tuple(_header_int(ds.get(name), 1) for name in ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel"))


def _header_int(value: object, default: int) -> int:
    try:
        return max(int(value), 0) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _check_series_size(folder: Path) -> None:
    """Reject a series folder whose slices together declare more than :data:`MAX_VOXELS` values, from headers only."""
    total, files = 0, 0
    for item in dicom_files(folder):
        files += 1
        if files > MAX_SERIES_FILES:
            break  # read_series names the file limit
        try:
            total += int(np.prod(_dicom_shape(read_dicom(item, pixels=False)), dtype=np.int64))
        except DicomError:
            continue  # read_series reports unreadable slices with their reason
        if total > MAX_VOXELS:
            raise ImageError(f"series folder {folder.name}: its slices declare more than {MAX_VOXELS} values in all "
                             f"(reached after {files} files); split or downsample the series")


def _check_size(shape: tuple[int, ...], path: Path, channels: int = 1) -> None:
    """Reject a declared shape (times ``channels``) above :data:`MAX_VOXELS` before any pixel is decoded."""
    if int(np.prod(shape, dtype=np.int64)) * max(channels, 1) > MAX_VOXELS:
        what = f"{tuple(shape)} × {channels} channels" if channels > 1 else f"{tuple(shape)}"
        raise ImageError(f"{path.name}: declared size {what} exceeds the limit of {MAX_VOXELS} values; "
                         "downsample or crop the image before ingest")


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
        format=SERIES_FORMAT if Path(path).is_dir() else image_format(path),
        shape=tuple(int(s) for s in loaded.array.shape[1:]),
        spacing=loaded.spacing,
    )
