"""The one writer of decoded images (reconstructions, translations and class-conditional samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diagnosis.ingest.formats import write_image

__all__ = ["write_decoded_image"]


def write_decoded_image(pixels: np.ndarray, path: str | Path) -> tuple[Path, str]:
    """Write one decoded ``(1, *grid)`` image in [0, 1]: 2D as 8-bit PNG, 3D as int16 NIfTI (×1000).

    The PNG holds the grid's transpose: MONAI's picture axes are ``(x, y)``, so re-reading the file gives back the
    grid the model decoded.

    Args:
        pixels: ``(1, H, W)`` or ``(1, X, Y, Z)`` values in [0, 1].
        path: Destination; its suffix is replaced by ``.png`` or ``.nii.gz``.

    Returns:
        The written path and its stored format name (``png`` / ``nifti``).

    Raises:
        ValueError: ``pixels`` is not one 2D or 3D image.
    """
    grid = pixels[0]
    path = Path(path)
    if grid.ndim == 2:
        path = write_image(np.ascontiguousarray((grid.T * 255).round().astype(np.uint8)), path.with_suffix(".png"))
        return path, "png"
    if grid.ndim == 3:
        return write_image((grid * 1000).round().astype(np.int16), path.with_suffix(".nii.gz")), "nifti"
    raise ValueError(f"a decoded image is (1, H, W) or (1, X, Y, Z), got {pixels.shape}")
