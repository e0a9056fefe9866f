"""The one MONAI ``LoadImage`` that the NIfTI and NumPy formats decode through."""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from diagnosis.ingest.formats.base import read_failure

__all__ = ["monai_affine", "monai_read", "monai_spacing"]


@lru_cache(maxsize=1)
def _loader():  # noqa: ANN202 - MONAI transform
    """One shared MONAI ``LoadImage`` (construction scans readers, so do it once)."""
    # MONAI logs a warning on every start when NVIDIA's optional nvImageCodec is absent; pydicom decodes instead.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*nvimgcodec.*")
        from monai.transforms import LoadImage

        return LoadImage(image_only=True, ensure_channel_first=True)


def monai_read(path: Path) -> tuple[np.ndarray, object]:
    """``(C, *spatial)`` float32 and the MONAI ``MetaTensor`` it came from (for its affine and spacing).

    Raises:
        ImageError: MONAI cannot decode the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _loader()(str(path))
    except Exception as error:  # MONAI raises many types on corrupt input
        raise read_failure(path, error) from error
    return np.asarray(image, dtype=np.float32), image


def monai_spacing(image: object) -> tuple[float, ...] | None:
    """Voxel spacing from a MONAI MetaTensor, when the format records one."""
    pixdim = getattr(image, "pixdim", None)
    if pixdim is None:
        return None
    values = tuple(float(v) for v in np.asarray(pixdim).ravel())
    return values or None


def monai_affine(image: object) -> np.ndarray | None:
    """The MetaTensor's voxel-to-world matrix, when it has one."""
    affine = getattr(image, "affine", None)
    return None if affine is None else np.asarray(affine, dtype=np.float64)

