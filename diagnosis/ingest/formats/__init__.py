"""Image formats behind one registry: each module names its format's suffixes and signature, checks the size its
header declares before decoding, decodes it, and writes it where the project writes that format.

Adding a format means one module with an :class:`ImageFormat` and one line in :data:`FORMATS`.

Examples:
    >>> format_for("scan.nii.gz").name
    'nifti'
    >>> sorted(SUFFIXES)[:3]
    ['.dcm', '.jpeg', '.jpg']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diagnosis.ingest.formats.base import MAX_VOXELS, ImageError, ImageFormat, LoadedImage, check_size, one_channel
from diagnosis.ingest.formats.dicom_file import DICOM_FILE
from diagnosis.ingest.formats.dicom_series import DICOM_SERIES
from diagnosis.ingest.formats.nifti import GZIP_MAGIC, NIFTI
from diagnosis.ingest.formats.npy import NPY
from diagnosis.ingest.formats.picture import JPEG, PNG

__all__ = [
    "DICOM_SERIES",
    "FORMATS",
    "MAX_VOXELS",
    "SUFFIXES",
    "ImageError",
    "ImageFormat",
    "LoadedImage",
    "check_content",
    "check_size",
    "format_for",
    "one_channel",
    "read_image",
    "sniff_format",
    "write_image",
]

FORMATS: tuple[ImageFormat, ...] = (PNG, JPEG, NPY, DICOM_FILE, NIFTI)  # file formats, in sniffing order
SUFFIXES: dict[str, ImageFormat] = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}
_HEAD_BYTES = 540  # enough for every signature (NIfTI-2's header size)


def format_for(path: str | Path) -> ImageFormat:
    """The format of a file, from its name's ending (the longest that matches), or of a folder: a DICOM series.

    Raises:
        ImageError: The suffix is not a supported image type.
    """
    if Path(path).is_dir():
        return DICOM_SERIES
    name = str(path).lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise ImageError(f"unsupported image type {Path(path).suffix!r}; use one of {', '.join(sorted(SUFFIXES))}")


def sniff_format(path: str | Path) -> str | None:
    """The format the file's content has, whatever its name says.

    Args:
        path: A regular file.

    Returns:
        A format name (``png``, ``jpeg``, ``npy``, ``dicom``, ``nifti``), ``gzip`` (gzip that is not NIfTI) or
        ``None`` when the content matches no known signature.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    for fmt in FORMATS:
        if fmt.sniff(head, path):
            return fmt.name
    return "gzip" if head.startswith(GZIP_MAGIC) else None


def check_content(path: Path, fmt: ImageFormat) -> None:
    """Reject a file whose first bytes say it is another format than its name says.

    Raises:
        ImageError: The content is another format, or none that is recognised (unless ``fmt`` accepts that).
    """
    content = sniff_format(path)
    if content == fmt.name or (fmt.unsigned and content is None):
        return
    if fmt.compressed and content == "gzip":
        label = fmt.label or fmt.name
        raise ImageError(f"{path.name}: gzip data without a {label} header (corrupt, truncated or not {label}); re-export it")
    found = f"{content} data" if content else "not a recognised image format"
    raise ImageError(f"{path.name}: the extension says {fmt.name} but the content is {found}; fix the extension or "
                     "re-export the file")


def read_image(path: str | Path) -> LoadedImage:
    """Decode an image file or series folder into one channel, without the content and usability checks of ingest
    and without MONAI (:meth:`ImageFormat.decode`), for showing an image that ingest already accepted.

    Raises:
        ImageError: The file cannot be decoded (moved, replaced or corrupted since ingest).
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image file not found: {path.name}")
    return one_channel(format_for(path).decode(path))


def write_image(array: np.ndarray, path: str | Path, spacing_mm: float = 1.0) -> Path:
    """Write ``array`` in the format its path names (PNG, NIfTI or NumPy: the formats the project writes).

    Raises:
        ImageError: The suffix is not a supported image type.
        ValueError: The array does not fit the format, or the project does not write it.
    """
    path = Path(path)
    format_for(path).write(array, path, spacing_mm)
    return path
