"""Turn loaded image arrays into 8-bit pictures for display (no Streamlit, no model code)."""

from __future__ import annotations

import numpy as np

__all__ = ["AXIS_NAMES", "display_plane", "intensity_range", "orthogonal_plane", "to_uint8"]

AXIS_NAMES: tuple[str, ...] = ("sagittal", "coronal", "axial")  # view across axis 0, 1, 2 of an (X, Y, Z) volume

_TRANSPOSED_FORMATS = frozenset({"png", "jpeg", "dicom"})  # MONAI reads these (W, H): transpose back to rows first


def intensity_range(array: np.ndarray) -> tuple[float, float]:
    """Return ``(low, high)`` of the finite values of ``array``; one range for every slice of a volume.

    Args:
        array: Any-shaped image array.

    Returns:
        The minimum and maximum finite value, ``(0.0, 0.0)`` if there is none.
    """
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def to_uint8(plane: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Scale a 2D plane linearly to ``0..255``.

    Args:
        plane: ``(H, W)`` array.
        low: Value mapped to 0 (default: the plane's minimum).
        high: Value mapped to 255 (default: the plane's maximum).

    Returns:
        ``(H, W)`` uint8 array; a constant plane becomes all zeros, NaN becomes 0.
    """
    if low is None or high is None:
        low, high = intensity_range(plane)
    scaled = (np.nan_to_num(plane.astype(np.float64), nan=low) - low) / (high - low) if high > low else plane * 0.0
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def display_plane(array: np.ndarray, image_format: str | None, index: int | None = None) -> np.ndarray:
    """Pick the plane to show and orient it with rows top to bottom.

    Args:
        array: Spatial array as loaded, ``(A, B)`` or ``(A, B, C)``.
        image_format: The stored format; PNG / JPEG / DICOM come back ``(W, H)`` and are transposed,
            NIfTI volumes are shown with the second axis pointing up, NumPy arrays as stored.
        index: Slice along the last axis of a 3D array (ignored for 2D).

    Returns:
        The ``(H, W)`` plane to display.

    Raises:
        ValueError: If ``array`` is not 2D or 3D, or ``index`` is out of range.
    """
    if array.ndim == 3:
        depth = array.shape[-1]
        if index is None or not 0 <= index < depth:
            raise ValueError(f"slice index {index} out of range 0..{depth - 1}")
        plane = array[..., index]
    elif array.ndim == 2:
        plane = array
    else:
        raise ValueError(f"can only display 2D or 3D images, got shape {array.shape}")
    if image_format in _TRANSPOSED_FORMATS:
        return plane.T
    if image_format == "nifti":
        return np.rot90(plane)
    return plane


def orthogonal_plane(volume: np.ndarray, axis: int, index: int, image_format: str | None) -> np.ndarray:
    """One of the three orthogonal planes of an ``(X, Y, Z)`` volume, oriented for display.

    Args:
        volume: ``(X, Y, Z)`` array.
        axis: 0 (sagittal), 1 (coronal) or 2 (axial, the same plane as :func:`display_plane`).
        index: Slice along ``axis``.
        image_format: The stored format (NIfTI planes are rotated so that the second axis points up).

    Returns:
        The ``(H, W)`` plane.

    Raises:
        ValueError: If ``volume`` is not 3D or ``axis`` / ``index`` is out of range.
    """
    if volume.ndim != 3 or axis not in (0, 1, 2):
        raise ValueError(f"need a 3D volume and an axis in 0..2, got shape {volume.shape} and axis {axis}")
    return display_plane(np.moveaxis(volume, axis, -1), image_format, index)
