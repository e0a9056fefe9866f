"""DICOM de-identification on ingest: PS3.15 Annex E *basic application confidentiality profile*, table-driven.

The original file is never modified: a de-identified copy is written and that copy is what the store points at. The
action for each attribute comes from the standard's table (:mod:`diagnosis.ingest.deid_profile`), applied at every
level of every sequence, with these choices where the table leaves one (made by
:func:`diagnosis.ingest.deid_profile.resolve_action`):

- ``PatientID`` and ``PatientName`` get the patient's keyed pseudonym (``D``); nested ones (e.g. in a kept sequence)
  get the pseudonym of their own value (IDs) or are emptied (names).
- Composite codes: ``X/Z``, ``Z/D`` and ``X/Z/D`` empty the attribute (``Z``), ``X/D`` removes it, ``X/Z/U*`` keeps the
  sequence and treats its items; ``D`` puts a dummy value (``ANONYMIZED``, ``0``), or removes a sequence or binary
  value.
- Dates and times whose action is not ``X`` follow the *Retain Longitudinal Temporal Information with Modified Dates*
  option (``C``): dates move back by a per-patient number of days derived from the key, so intervals within one patient
  stay true; times are kept; a malformed value is emptied. Patient attributes (group 0010, e.g. ``PatientBirthDate``)
  follow the basic profile.
- UIDs (``U``, and any other ``UI`` value) become ``2.25.<keyed hash>``, consistently across the files of a study
  and re-ingests; DICOM-defined UIDs (``1.2.840.10008.*``) are kept.
- Beyond the table: private attributes, curves (``50xx``) and overlays (``60xx``) are removed; so are patient-module
  attributes (group 0010) the table does not list, free text (``LT``/``ST``/``UT``), ``UN`` values, attributes unknown
  to the data dictionary and group lengths; any other person name is emptied, dates are shifted, UIDs remapped.
- The file meta header keeps only what a reader needs (no source / sending AE titles), the 128-byte preamble is zeroed;
  ``PatientIdentityRemoved`` is ``YES``, ``LongitudinalTemporalInformationModified`` is ``MODIFIED``, and
  ``DeidentificationMethod`` (+ code sequence) names the profile and option.
- **Burned-in annotation**: a file declaring ``BurnedInAnnotation = YES`` has text in its pixels that no header edit
  removes; it is refused (:class:`BurnedInAnnotationError`, a :class:`DicomError`, which ingest stores as the case's
  reason) unless the caller opts in with ``accept_burned_in=True``.

:func:`diagnosis.ingest.deid_audit.remaining_phi` audits a stored file against the same rules, at every level.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from diagnosis.ingest.deid_profile import BASIC_PROFILE, PSEUDONYMISED, resolve_action
from diagnosis.ingest.dicom import DicomError, read_dicom
from diagnosis.ingest.dicom_quiet import quiet_pydicom
from diagnosis.ingest.privacy import PSEUDONYM_PREFIX, keyed_digest, pseudonymise
from diagnosis.ingest.series import read_series

__all__ = [
    "DUMMY_TEXT",
    "METHOD",
    "META_KEPT",
    "PHI_KEYWORDS",
    "PSEUDONYM_PATTERN",
    "BurnedInAnnotationError",
    "deidentify_dataset",
    "resolve_action",
    "shift_temporal",
    "write_deidentified",
]

MAX_SHIFT_DAYS = 3650  # dates move back by 1..MAX_SHIFT_DAYS days, fixed per patient
METHOD = "PS3.15 E basic profile, modified dates option, keyed UIDs"  # <= 64 chars (VR LO)
METHOD_CODES = (("113100", "Basic Application Confidentiality Profile"),  # DCM codes of PS3.16 CID 7050
                ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
DUMMY_TEXT = "ANONYMIZED"  # action D for text values (fits CS, AE and SH)
PHI_KEYWORDS: tuple[str, ...] = tuple(sorted(keyword_for_tag(t) for t in BASIC_PROFILE))  # the table's attributes

NUMBER_VRS = ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD")
META_KEPT = ("FileMetaInformationVersion", "MediaStorageSOPClassUID", "TransferSyntaxUID")

_DA = re.compile(r"\d{8}")
_DT = re.compile(r"(\d{8})(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?([+-]\d{4})?")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
PSEUDONYM_PATTERN = re.compile(re.escape(PSEUDONYM_PREFIX) + r"[0-9a-f]{8,64}")


class BurnedInAnnotationError(DicomError):
    """A file declares text burned into its pixels; it is not ingested unless burned-in annotations are accepted."""


def _shift_days(key: bytes, patient: str) -> int:
    return 1 + int.from_bytes(keyed_digest(key, patient, "date-shift")[:4], "big") % MAX_SHIFT_DAYS


def _new_uid(key: bytes, uid: str) -> str:
    if not uid or uid.startswith("1.2.840.10008."):
        return uid
    return "2.25." + str(int.from_bytes(keyed_digest(key, uid, "uid")[:16], "big"))


def shift_temporal(vr: str, value: str, days: int) -> str:
    """Action C for a date, date-time or time: dates shifted back by ``days``, times kept, malformed values emptied."""
    value = value.strip()
    if vr == "TM":
        return value if _TM.fullmatch(value) else ""
    match = (_DA if vr == "DA" else _DT).fullmatch(value)
    if match is None:
        return ""
    try:
        shifted = dt.datetime.strptime(value[:8], "%Y%m%d").date() - dt.timedelta(days=days)
    except ValueError:
        return ""
    return shifted.strftime("%Y%m%d") + value[8:]


def _map_values(elem: DataElement, change: Callable[[str], object]) -> None:
    """Replace each value of a (possibly multi-valued) element."""
    if elem.is_empty:
        return
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    mapped = [change(str(v)) for v in values]
    elem.value = mapped if elem.VM > 1 else mapped[0]


def _dummy(vr: str) -> object:
    return 0 if vr in NUMBER_VRS else "0" if vr in ("IS", "DS") else "000D" if vr == "AS" else DUMMY_TEXT


def _clean(ds: Dataset, key: bytes, pseudonym: str, days: int, depth: int) -> None:
    """Apply the profile to one dataset level and recurse into the sequences that stay."""
    for elem in list(ds):
        action = resolve_action(int(elem.tag), elem.VR)
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif action == "D" and elem.tag in PSEUDONYMISED:
            if not depth:
                elem.value = pseudonym
            elif elem.tag == PSEUDONYMISED[0] and not elem.is_empty:
                elem.value = pseudonymise(str(elem.value), key)  # a nested PatientID keeps a link, not the id
            else:
                elem.value = None  # a nested PatientName
        elif action == "D":
            elem.value = _dummy(elem.VR)
        elif action == "C":
            _map_values(elem, lambda v, vr=elem.VR: shift_temporal(vr, v, days))
        elif action == "U" and elem.VR == "UI":
            _map_values(elem, lambda v: _new_uid(key, v))
        elif elem.VR == "SQ":  # K, or U on a sequence (X/Z/U*): keep it and treat its items
            for item in elem.value:
                _clean(item, key, pseudonym, days, depth + 1)


def _burned_in(ds: Dataset) -> bool:
    """Whether any level declares ``BurnedInAnnotation = YES``."""
    for elem in ds:
        if elem.keyword == "BurnedInAnnotation" and str(elem.value or "").strip().upper() == "YES":
            return True
        if elem.VR == "SQ" and any(_burned_in(item) for item in elem.value):
            return True
    return False


def _check_burned_in(ds: Dataset, name: str, accept: bool) -> None:
    if not accept and _burned_in(ds):
        raise BurnedInAnnotationError(
            f"{name} declares BurnedInAnnotation = YES: text burned into the pixels may identify the patient, and "
            "de-identification cannot remove it; blank the annotated pixels and set BurnedInAnnotation to NO, or "
            "ingest with burned-in annotations accepted"
        )


def _clean_meta(ds: Dataset) -> None:
    """Keep only the file meta attributes a reader needs; zero the preamble."""
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    for keyword in META_KEPT:
        if old is not None and keyword in old:
            setattr(meta, keyword, old[keyword].value)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def deidentify_dataset(ds: Dataset, key: bytes, patient: str, *, accept_burned_in: bool = False) -> Dataset:
    """De-identify a dataset in place and return it.

    Args:
        ds: A DICOM dataset (its ``file_meta`` and preamble are replaced too).
        key: Pseudonymisation key.
        patient: The patient identity that fixes the pseudonym and the date shift (manifest ``patient_id``, else
            the file's ``PatientID``).
        accept_burned_in: De-identify a dataset declaring burned-in annotation instead of refusing it.

    Returns:
        ``ds``.

    Raises:
        BurnedInAnnotationError: ``BurnedInAnnotation`` is ``YES`` and ``accept_burned_in`` is not set.
    """
    with quiet_pydicom():
        _check_burned_in(ds, "the dataset", accept_burned_in)
        pseudonym = pseudonymise(patient, key)
        _clean(ds, key, pseudonym, _shift_days(key, patient), depth=0)
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethod = METHOD
        codes = []
        for value, meaning in METHOD_CODES:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
            codes.append(code)
        ds.DeidentificationMethodCodeSequence = Sequence(codes)
        _clean_meta(ds)
    return ds


def write_deidentified(source: Path, dest: Path, key: bytes, patient: str | None, *,
                       accept_burned_in: bool = False) -> Path:
    """Write a de-identified copy of a DICOM file or series folder under ``dest`` (replacing an older copy).

    Args:
        source: A DICOM file, or a folder with one series (slices are written in slice order).
        dest: Folder for this case's copy.
        key: Pseudonymisation key.
        patient: Manifest ``patient_id``; ``None`` uses the file's ``PatientID`` (or "unknown").
        accept_burned_in: Copy files that declare burned-in annotation instead of refusing them.

    Returns:
        The copy: ``dest/image.dcm`` or the folder ``dest/series``.

    Raises:
        DicomError: The source cannot be read as DICOM with pixel data.
        BurnedInAnnotationError: A file declares burned-in annotation and ``accept_burned_in`` is not set.
    """
    with quiet_pydicom():
        slices = read_series(source) if source.is_dir() else [(source, read_dicom(source))]
        for path, ds in slices:
            _check_burned_in(ds, path.name, accept_burned_in)
        identity = patient or str(slices[0][1].get("PatientID", "") or "unknown")
        if dest.exists():
            shutil.rmtree(dest)
        if source.is_dir():
            target = dest / "series"
            outputs = [target / f"slice-{index:04d}.dcm" for index in range(len(slices))]
        else:
            target = dest / "image.dcm"
            outputs = [target]
        outputs[0].parent.mkdir(parents=True)
        for out, (_, ds) in zip(outputs, slices, strict=True):
            deidentify_dataset(ds, key, identity, accept_burned_in=accept_burned_in).save_as(out, enforce_file_format=False)
    return target
