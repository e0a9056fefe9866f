"""PNG and JPEG: 2D pictures, grayscale or colour, decoded by Pillow directly.

Pixel axes follow MONAI's ``PILReader``: the first spatial axis is the picture's width (x). Pillow is called
directly, as MONAI would, without MONAI's metadata tracking (five times faster per small picture, where batch
diagnosis spends its reading time). PNG / JPEG record no spacing; MONAI reports unit pixels for them, and so does
this reader.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from diagnosis.ingest.formats.base import ImageError, ImageFormat, LoadedImage, check_size, read_failure

__all__ = ["JPEG", "PNG", "PICTURE_SPACING"]

PICTURE_SPACING = (1.0, 1.0)


class _Picture(ImageFormat):
    """Shared reading of the Pillow formats."""

    signature: bytes

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith(self.signature)

    def read(self, path: Path) -> LoadedImage:
        """``(C, x, y)`` as MONAI's ``PILReader`` + ``EnsureChannelFirst`` would give; the header size is checked
        on the one open file before the pixels are decoded."""
        from PIL import Image

        try:
            with warnings.catch_warnings():  # our own MAX_VOXELS limit applies, not Pillow's bomb warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as picture:  # reads the header only; pixels are decoded by asarray
                    check_size(picture.size, path, channels=len(picture.getbands()))
                    data = np.asarray(picture)
        except ImageError:
            raise
        except Exception as error:  # Pillow raises many types on corrupt input
            raise read_failure(path, error) from error
        data = np.moveaxis(data, 0, 1)  # (rows, cols[, C]) -> (x, y[, C]), MONAI's reverse indexing
        array = (data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)).astype(np.float32)
        return LoadedImage(array, PICTURE_SPACING)


class Png(_Picture):
    """PNG (``\\x89PNG``); the project writes it for 2D images (8-bit, grayscale or RGB(A) rows first)."""

    name = "png"
    suffixes = (".png",)
    signature = b"\x89PNG\r\n\x1a\n"

    def write(self, array: np.ndarray, path: Path, spacing_mm: float = 1.0) -> None:
        """Write ``(H, W)`` or ``(H, W, 3 | 4)`` uint8 pixels, rows first (no spacing is stored)."""
        from PIL import Image

        if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
            raise ValueError(f"PNG output needs a 2D (H, W) or (H, W, 3 | 4) uint8 array, got {array.dtype} {array.shape}")
        Image.fromarray(np.ascontiguousarray(array)).save(path)


class Jpeg(_Picture):
    """JPEG (``\\xff\\xd8\\xff``); read only."""

    name = "jpeg"
    suffixes = (".jpg", ".jpeg")
    signature = b"\xff\xd8\xff"


PNG, JPEG = Png(), Jpeg()
