"""DICOM specifics: reading files quietly, decoding pixels by a stated policy (series folders are assembled by
:mod:`diagnosis.ingest.series` with it).

MONAI's ``PydicomReader`` orders a series by ``InstanceNumber`` only, which scanners do not always assign along the
slice axis; here slices are ordered by their position along the slice normal (``ImagePositionPatient`` projected on
the cross product of the ``ImageOrientationPatient`` row and column vectors), falling back to ``InstanceNumber``
when a slice has no geometry. Single files are decoded here too (pydicom, with the ``pylibjpeg`` plugins for JPEG,
JPEG-Lossless, JPEG-LS and JPEG 2000), not by MONAI, so that one policy covers both:

- **Layout**: like MONAI's DICOM reader, ``(columns, rows)`` for one frame, ``(columns, rows, slices)`` for a volume.
- **Modality values**: rescale slope and intercept are applied, per frame for enhanced multi-frame objects (pixel
  value transformation in the per-frame or shared functional groups).
- **Colour** (``SamplesPerPixel = 3``: RGB, YBR_* converted to RGB by pydicom; ``PALETTE COLOR`` through its lookup
  table) becomes one luminance channel, the average of the three channels, as for PNG / JPEG.
- **Multi-frame** files become a volume with the frames as slices. Frames with a position (enhanced CT / MR
  ``PlanePositionSequence``, RT dose ``GridFrameOffsetVector``) are ordered along the slice normal and give the slice
  spacing; several frames at one position (phases, echoes, time points of one stack) are **rejected** with the
  reason, since one volume cannot hold them. Frames without a position (cine loops, multi-frame secondary capture)
  are stacked in stored order, with a slice spacing only when ``SpacingBetweenSlices`` / ``SliceThickness`` says.
- **Quiet**: every read, decode and write of DICOM in :mod:`diagnosis.ingest` runs inside
  :func:`diagnosis.ingest.dicom_quiet.quiet_pydicom` (pydicom quotes element values in its warnings and logs), and
  error messages have quoted values and paths redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from diagnosis.ingest.dicom_quiet import quiet_pydicom, safe_detail

__all__ = ["MAX_SERIES_FILES", "DicomError", "decode_frames", "dicom_files", "dicom_image", "header_integer",
           "header_number", "pixel_spacing", "read_dicom", "slice_position"]

logger = logging.getLogger(__name__)

MAX_SERIES_FILES = 4096  # a folder with more files is not one plausible series
_RECODE_HINT = "re-export it uncompressed (Explicit VR Little Endian)"


class DicomError(ValueError):
    """A DICOM file or series that cannot be used; the message says why and what to do."""


def dicom_files(folder: Path) -> Iterator[Path]:
    """Regular files of ``folder`` (not recursive, hidden files skipped) in name order."""
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            yield path


def read_dicom(path: Path, pixels: bool = True) -> Dataset:
    """Read one DICOM file quietly, every element parsed (so later access warns nowhere).

    Raises:
        DicomError: Not DICOM, truncated, or (``pixels=True``) without pixel data.
    """
    with quiet_pydicom():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
            ds.walk(lambda dataset, element: None)  # parse every element now, inside the quiet section
        except InvalidDicomError as error:
            raise DicomError(f"{path.name} is not a DICOM file (no DICOM file meta header); export it as a DICOM "
                             "Part 10 file") from error
        except Exception as error:  # pydicom raises many types on corrupt input
            raise DicomError(f"{path.name} is not a readable DICOM file ({safe_detail(error)}); it may be truncated "
                             "or corrupt: re-export it") from error
    if pixels and not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomError(
            f"{path.name} is a DICOM file without pixel data (e.g. a structured report or a dose record); "
            "point the manifest at the image instances"
        )
    return ds


def header_number(value: object, default: float | None = None) -> float | None:
    """A DICOM numeric value as float, or ``default`` when it is absent or not a finite number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) else default


def header_integer(ds: Dataset, keyword: str, default: int = 0) -> int:
    number = header_number(ds.get(keyword), None)
    return int(number) if number is not None and number >= 0 else default


def _first(sequence: object) -> Dataset | None:
    """The first item of a sequence value, or ``None``."""
    return sequence[0] if isinstance(sequence, Sequence) and len(sequence) else None


def _nested(item: Dataset | None, sequence: str, keyword: str) -> object:
    """``item.<sequence>[0].<keyword>``, or ``None`` when any part is missing."""
    inner = _first(item.get(sequence)) if item is not None else None
    return inner.get(keyword) if inner is not None else None


def _along_normal(position: object, orientation: object) -> float | None:
    """Distance of a plane along its normal, or ``None`` without a usable geometry."""
    try:
        row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)  # type: ignore[index]
        point = np.asarray(position, float)
    except (TypeError, ValueError, IndexError):
        return None
    if row.shape != (3,) or column.shape != (3,) or point.shape != (3,):
        return None
    distance = float(np.dot(np.cross(row, column), point))
    return distance if np.isfinite(distance) else None


def slice_position(ds: Dataset) -> float | None:
    """Distance of a slice along its normal, or ``None`` when the slice has no geometry."""
    return _along_normal(ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"))


def _transfer_syntax(ds: Dataset) -> str:
    """The transfer syntax's name, for messages (never an unregistered value, which a file could fill with text)."""
    uid = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    return uid.name if uid is not None and uid.name != str(uid) else "an unrecognised transfer syntax"


def _rescale(ds: Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rescale slope and intercept per frame: per-frame functional groups, else shared, else the top level."""

    def pair(item: Dataset | None) -> tuple[float, float] | None:
        transform = _first(item.get("PixelValueTransformationSequence")) if item is not None else None
        if transform is None or "RescaleSlope" not in transform:
            return None
        return header_number(transform.get("RescaleSlope"), 1.0) or 1.0, header_number(transform.get("RescaleIntercept"), 0.0)

    top = (header_number(ds.get("RescaleSlope"), 1.0) or 1.0, header_number(ds.get("RescaleIntercept"), 0.0) or 0.0)
    default = pair(_first(ds.get("SharedFunctionalGroupsSequence"))) or top
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    values = [pair(item) or default for item in per_frame] if len(per_frame) == count else [default] * count
    slopes, intercepts = (np.asarray(v, np.float32) for v in zip(*values, strict=True))
    return slopes, intercepts


def decode_frames(path: Path, ds: Dataset) -> np.ndarray:
    """Decode a dataset's pixels by the module's policy (colour averaged, modality rescale applied).

    Returns:
        float32 ``(frames, rows, columns)``.

    Raises:
        DicomError: No decoder for the transfer syntax, corrupt pixel data, or a size that disagrees with the header.
    """
    rows, columns = header_integer(ds, "Rows"), header_integer(ds, "Columns")
    frames, samples = header_integer(ds, "NumberOfFrames", 1) or 1, header_integer(ds, "SamplesPerPixel", 1) or 1
    palette = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR"
    with quiet_pydicom():
        try:
            array = ds.pixel_array
            if palette:
                from pydicom.pixels import apply_color_lut

                array, samples = apply_color_lut(array, ds), 3
        except Exception as error:  # decoders and plugins raise many types
            raise DicomError(f"cannot decode the pixels of {path.name} ({_transfer_syntax(ds)}; {safe_detail(error)}); "
                             f"{_RECODE_HINT}, or check the pylibjpeg decoder plugins are installed") from error
    if array.size != frames * rows * columns * samples:
        raise DicomError(f"{path.name}: decoded {array.size} values where the header declares {frames} frame(s) of "
                         f"{rows}x{columns}x{samples}; the file is inconsistent: {_RECODE_HINT}")
    values = array.reshape(frames, rows, columns, samples).astype(np.float32)
    values = values.mean(axis=-1) if samples > 1 else values[..., 0]  # colour policy: channel average
    if not palette and samples == 1:
        slopes, intercepts = _rescale(ds, frames)
        values = values * slopes[:, None, None] + intercepts[:, None, None]
    return values


def pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """``(row, column)`` spacing in mm from the top level or the functional groups, when recorded."""
    shared, per_frame = _first(ds.get("SharedFunctionalGroupsSequence")), _first(ds.get("PerFrameFunctionalGroupsSequence"))
    for value in (ds.get("PixelSpacing"), _nested(shared, "PixelMeasuresSequence", "PixelSpacing"),
                  _nested(per_frame, "PixelMeasuresSequence", "PixelSpacing")):
        if value is not None and len(value) == 2:  # type: ignore[arg-type]
            row, column = header_number(value[0]), header_number(value[1])  # type: ignore[index]
            if row and column:
                return abs(row), abs(column)
    return None


def _frame_positions(ds: Dataset, count: int) -> list[float] | None:
    """Each frame's position along the slice normal (enhanced objects, RT dose grids), or ``None``."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) == count:
        shared = _first(ds.get("SharedFunctionalGroupsSequence"))
        positions = []
        for item in per_frame:
            orientation = _nested(item, "PlaneOrientationSequence", "ImageOrientationPatient")
            if orientation is None:
                orientation = _nested(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
            distance = _along_normal(_nested(item, "PlanePositionSequence", "ImagePositionPatient"), orientation)
            if distance is None:
                return None
            positions.append(distance)
        return positions
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and len(offsets) == count:
        values = [header_number(v) for v in offsets]
        return None if any(v is None for v in values) else values  # type: ignore[return-value]
    return None


def dicom_image(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Read one DICOM file as an image by the module's policy.

    Returns:
        float32 ``(columns, rows)`` for one frame or ``(columns, rows, frames)`` for a multi-frame file, and the
        spacing in mm per axis when the file records it.

    Raises:
        DicomError: Unreadable, no pixel data, undecodable, or frames that do not form one volume.
    """
    with quiet_pydicom():
        ds = read_dicom(path)
        frames = decode_frames(path, ds)  # (F, R, C)
        spacing = pixel_spacing(ds)
        if frames.shape[0] == 1:
            return frames[0].T, None if spacing is None else (spacing[1], spacing[0])
        positions = _frame_positions(ds, frames.shape[0])
        if positions is not None:
            distinct = len(np.unique(np.round(positions, 3)))
            if distinct != len(positions):
                raise DicomError(f"{path.name}: its {len(positions)} frames lie at {distinct} distinct positions (several "
                                 "stacks, e.g. phases, echoes or time points); export one stack per file")
            order = np.argsort(np.asarray(positions), kind="stable")
            frames, step = frames[order], float(np.mean(np.diff(np.sort(positions))))
        else:
            step = header_number(ds.get("SpacingBetweenSlices")) or header_number(ds.get("SliceThickness"))
    volume = np.ascontiguousarray(frames.transpose(2, 1, 0))  # (columns, rows, frames), as MONAI lays out DICOM
    return volume, None if spacing is None or not step else (spacing[1], spacing[0], abs(step))
