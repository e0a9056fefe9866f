"""The audit of a de-identified DICOM file: what it still holds that the PS3.15 basic profile of
:mod:`diagnosis.ingest.deid` removes, empties or replaces (used by tests, and by anyone auditing the stored copies).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from diagnosis.ingest.deid import DUMMY_TEXT, META_KEPT, PSEUDONYM_PATTERN, shift_temporal
from diagnosis.ingest.deid_profile import PSEUDONYMISED, resolve_action
from diagnosis.ingest.dicom_quiet import quiet_pydicom

__all__ = ["remaining_phi"]


def _values(elem: DataElement) -> list[str]:
    return [] if elem.is_empty else [str(v) for v in (elem.value if elem.VM > 1 else [elem.value])]


def _label(tag: int) -> str:
    """A repeating-group attribute (curves, overlays) by its dictionary keyword and tag; else the tag."""
    keyword = keyword_for_tag(tag)
    return f"{keyword} {pydicom.tag.Tag(tag)}" if keyword else str(pydicom.tag.Tag(tag))


def _audit(ds: Dataset, where: str, found: list[str]) -> None:
    """Append a label for every attribute of this level (and below) that the profile would not leave as it is."""
    for elem in ds:
        name = f"{where}private {elem.tag}" if elem.tag.is_private else f"{where}{elem.keyword or _label(elem.tag)}"
        action = resolve_action(int(elem.tag), elem.VR)
        if elem.keyword == "BurnedInAnnotation" and "YES" in [v.strip().upper() for v in _values(elem)]:
            found.append(f"{name}=YES")
        elif action in ("X", "Z") and not elem.is_empty:
            found.append(name)
        elif action == "D" and elem.tag in PSEUDONYMISED:
            found += [name for v in _values(elem) if not PSEUDONYM_PATTERN.fullmatch(v)][:1]
        elif action == "D":
            found += [name for v in _values(elem) if v not in (DUMMY_TEXT, "0", "0.0", "000D")][:1]
        elif action == "C":
            found += [name for v in _values(elem) if shift_temporal(elem.VR, v, 0) != v.strip()][:1]
        elif action == "U" and elem.VR == "UI":
            found += [name for v in _values(elem) if not v.startswith(("2.25.", "1.2.840.10008."))][:1]
        elif elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                _audit(item, f"{name}[{index}].", found)


def remaining_phi(path: Path) -> list[str]:
    """What a stored file still holds that the profile removes, empties or replaces (for audits and tests).

    Checks every level of every sequence (overlays, curves and private attributes included), the burned-in
    annotation flag, ``PatientIdentityRemoved``, the file meta header and the preamble.

    Returns:
        Labels such as ``"PatientName"`` or ``"OriginalAttributesSequence[0].PatientID"``; empty when clean.
    """
    with quiet_pydicom():
        ds = pydicom.dcmread(path, force=True)
        found: list[str] = []
        _audit(ds, "", found)
        if str(ds.get("PatientIdentityRemoved", "")).strip().upper() != "YES":
            found.append("PatientIdentityRemoved is not YES")
        meta = getattr(ds, "file_meta", Dataset())
        allowed = {*META_KEPT, "MediaStorageSOPInstanceUID", "FileMetaInformationGroupLength", "ImplementationClassUID"}
        found += [f"file meta {elem.keyword or elem.tag}" for elem in meta if elem.keyword not in allowed]
        if any(getattr(ds, "preamble", None) or b""):
            found.append("preamble holds data")
    return found
