"""Recognising an image file's format from its first bytes, to catch files whose extension lies about the content.

Checked signatures: PNG (``\\x89PNG``), JPEG (``\\xff\\xd8\\xff``), NumPy (``\\x93NUMPY``), DICOM (``DICM`` at offset
128), NIfTI-1/2 (header size 348/540 and the ``n+1``/``ni1``/``n+2`` magic), and gzip-compressed NIfTI
(decompressing only the header).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

__all__ = ["sniff_format"]

_NIFTI_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")


def _is_nifti(header: bytes) -> bool:
    """Whether ``header`` starts like a NIfTI-1 or NIfTI-2 header (either byte order)."""
    if len(header) < 4:
        return False
    sizes = {struct.unpack("<i", header[:4])[0], struct.unpack(">i", header[:4])[0]}
    if 348 in sizes and len(header) >= 348:
        return header[344:348] in _NIFTI_MAGICS
    if 540 in sizes and len(header) >= 12:
        return header[4:8] in _NIFTI2_MAGICS
    return False


def sniff_format(path: str | Path) -> str | None:
    """Return the format the file's content has, whatever its name says.

    Args:
        path: A regular file.

    Returns:
        ``png``, ``jpeg``, ``npy``, ``dicom``, ``nifti``, ``gzip`` (gzip that is not NIfTI) or ``None`` when the
        content matches no known signature.
    """
    with open(path, "rb") as handle:
        head = handle.read(540)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[128:132] == b"DICM":
        return "dicom"
    if _is_nifti(head):
        return "nifti"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                inner = handle.read(540)
        except (OSError, EOFError, zlib.error):
            return "gzip"
        return "nifti" if _is_nifti(inner) else "gzip"
    return None
