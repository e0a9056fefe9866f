"""What every image format shares: the loaded image, the error a user sees, the size limit checked from headers,
and the :class:`ImageFormat` interface that each format module implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

__all__ = ["MAX_VOXELS", "ImageError", "ImageFormat", "LoadedImage", "check_size", "one_channel", "read_failure"]

MAX_VOXELS = 512 * 512 * 512  # larger images are rejected as absurd rather than exhausting memory


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


def one_channel(image: LoadedImage) -> LoadedImage:
    """Average the channels into one, drop singleton spatial axes and align the spacing (and the affine) with them.

    Examples:
        >>> one_channel(LoadedImage(np.ones((3, 4, 5, 1), np.float32), (1.0, 1.0, 2.0))).array.shape
        (1, 4, 5)
    """
    array, spacing, affine = image.array, image.spacing, image.affine
    array = array.mean(axis=0, keepdims=True) if array.shape[0] > 1 else array
    spatial = [side for side in array.shape[1:] if side > 1] or list(array.shape[1:])
    if len(spatial) != array.ndim - 1 or len(spatial) != 3:
        affine = None  # only kept for volumes whose axes all survive
    if spacing is not None and len(spacing) != len(spatial):
        kept = [s for s, side in zip(spacing, array.shape[1:], strict=False) if side > 1]
        spacing = tuple(kept) if len(kept) == len(spatial) else None
    return LoadedImage(array=array.reshape(1, *spatial).astype(np.float32, copy=False), spacing=spacing, affine=affine)


class ImageFormat(ABC):
    """One image format: how its files are named, recognised, size-checked, decoded and (where the project writes
    the format) written.

    :meth:`read` returns the decoded image before the format-independent policies of
    :func:`diagnosis.ingest.images.load_image` (channels averaged, singleton axes dropped, usability checks); it checks
    the size the header declares against :data:`MAX_VOXELS` before decoding any pixel.
    """

    name: ClassVar[str]  # the format name stored with the case
    label: ClassVar[str] = ""  # how messages name it, when not its name
    suffixes: ClassVar[tuple[str, ...]]  # lower-case file name endings; () for a folder format
    unsigned: ClassVar[bool] = False  # content with no recognised signature is accepted (DICOM without preamble)
    compressed: ClassVar[bool] = False  # gzip content is expected (``.nii.gz``): a gzip without the header is named

    def sniff(self, head: bytes, path: Path) -> bool:
        """Whether the file's first bytes (up to 540) carry this format's signature; ``path`` for formats that must
        look further (gzip)."""
        return False

    @abstractmethod
    def read(self, path: Path) -> LoadedImage:
        """Decode ``path`` channel-first ``(C, *spatial)``.

        Raises:
            ImageError: Absurd declared size, unreadable or corrupt content.
        """

    def decode(self, path: Path) -> LoadedImage:
        """The pixels :meth:`read` gives, for display, with the lightest library that decodes the format (a format
        that reads through MONAI decodes here without it, so the dashboard never loads torch). Spacing and affine
        may be missing.

        Raises:
            ImageError: Unreadable or corrupt content.
        """
        return self.read(path)

    def write(self, array: np.ndarray, path: Path, spacing_mm: float = 1.0) -> None:
        """Write ``array`` as this format.

        Raises:
            ValueError: The array does not fit the format, or the project does not write it.
        """
        raise ValueError(f"the project does not write {self.name} files")


def check_size(shape: tuple[int, ...], path: Path, channels: int = 1) -> None:
    """Reject a declared shape (times ``channels``) above :data:`MAX_VOXELS` before any pixel is decoded.

    Raises:
        ImageError: The declared size is above the limit.
    """
    if int(np.prod(shape, dtype=np.int64)) * max(channels, 1) > MAX_VOXELS:
        what = f"{tuple(shape)} × {channels} channels" if channels > 1 else f"{tuple(shape)}"
        raise ImageError(f"{path.name}: declared size {what} exceeds the limit of {MAX_VOXELS} values; "
                         "downsample or crop the image before ingest")


def read_failure(path: Path, error: Exception, header: bool = False) -> ImageError:
    """The error for a reader library's exception (they raise many types on corrupt input)."""
    if header:
        return ImageError(f"cannot read the header of {path.name} (corrupt or truncated?): {type(error).__name__}: "
                          f"{str(error)[:160]}")
    return ImageError(f"cannot read image {path.name} (corrupt or truncated?): {type(error).__name__}: {str(error)[:200]}")
