"""DICOM de-identification on ingest, after the DICOM PS3.15 Annex E *basic application confidentiality profile*.

The original file is never modified: a de-identified copy is written and that copy is what the store points at.

- Identifying attributes (names, IDs, birth date, addresses, telephone numbers, institution, physicians, operators,
  accession number, study id, station, device serial number, free-text comments and descriptions, ...) are removed
  or emptied as the profile says (actions X / Z); ``PatientID`` and ``PatientName`` are replaced by the patient's
  keyed pseudonym (action D).
- Dates (VR ``DA`` and the date part of ``DT``) are shifted back by a per-patient number of days derived from the key,
  so intervals within one patient stay true; ``PatientBirthDate`` is emptied.
- UIDs (VR ``UI``) are remapped to ``2.25.<keyed hash>``, consistently across the files of a study and re-ingests;
  DICOM-defined UIDs (``1.2.840.10008.*``: SOP classes, transfer syntaxes) are kept.
- Private tags are removed; ``PatientIdentityRemoved`` is ``YES`` and ``DeidentificationMethod`` names this profile.

Sequences are processed recursively.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from diagnosis.ingest.dicom import read_dicom, read_series
from diagnosis.ingest.privacy import keyed_digest, pseudonymise

__all__ = ["PHI_KEYWORDS", "deidentify_dataset", "remaining_phi", "write_deidentified"]

MAX_SHIFT_DAYS = 3650  # dates move back by 1..MAX_SHIFT_DAYS days, fixed per patient
METHOD = "PS3.15 basic profile, per-patient date shift, UID remap"  # <= 64 chars (VR LO)

# Basic-profile attributes removed (X) or emptied (Z). PatientID / PatientName get the pseudonym instead.
REMOVED = (
    "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "OtherPatientIDs", "OtherPatientNames",
    "OtherPatientIDsSequence", "PatientMotherBirthName", "PatientBirthName", "PatientBirthTime", "MilitaryRank",
    "BranchOfService", "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments", "PatientAge",
    "PatientSize", "PatientWeight", "MedicalRecordLocator", "CountryOfResidence", "RegionOfResidence",
    "CurrentPatientLocation", "PatientInsurancePlanCodeSequence", "PatientReligiousPreference",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
    "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "OperatorsName", "OperatorIdentificationSequence", "RequestingPhysician", "ResponsiblePerson",
    "ResponsibleOrganization", "StationName", "DeviceSerialNumber", "RequestAttributesSequence",
    "PerformedProcedureStepID", "ScheduledProcedureStepID", "RequestedProcedureID", "ImageComments",
    "StudyDescription", "SeriesDescription", "PerformedProcedureStepDescription", "AdmittingDiagnosesDescription",
    "DerivationDescription", "IssuerOfPatientID", "ProtocolName", "Allergies", "MedicalAlerts",
    "PregnancyStatus", "SmokingStatus", "ReasonForStudy", "RequestedProcedureDescription", "AdmissionID",
)
EMPTIED = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "AccessionNumber", "StudyID",
           "ContentCreatorName")
PHI_KEYWORDS: tuple[str, ...] = REMOVED + EMPTIED  # none of these may hold a value in a stored copy


def _shift_days(key: bytes, patient: str) -> int:
    return 1 + int.from_bytes(keyed_digest(key, patient, "date-shift")[:4], "big") % MAX_SHIFT_DAYS


def _new_uid(key: bytes, uid: str) -> str:
    return "2.25." + str(int.from_bytes(keyed_digest(key, uid, "uid")[:16], "big"))


def _shift_date(value: str, days: int) -> str:
    """Shift a ``YYYYMMDD`` (or a ``DT`` starting with it) back by ``days``; unparseable values become empty."""
    try:
        shifted = dt.datetime.strptime(value[:8], "%Y%m%d").date() - dt.timedelta(days=days)
    except ValueError:
        return ""
    return shifted.strftime("%Y%m%d") + value[8:]


def _clean(ds: Dataset, key: bytes, pseudonym: str, days: int) -> None:
    """Apply the profile to one dataset level and recurse into sequences."""
    ds.remove_private_tags()
    for keyword in REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in EMPTIED:
        if keyword in ds:
            ds.data_element(keyword).value = ""
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                _clean(item, key, pseudonym, days)
        elif elem.VR == "UI" and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            mapped = [str(v) if str(v).startswith("1.2.840.10008.") else _new_uid(key, str(v)) for v in values]
            elem.value = mapped if elem.VM > 1 else mapped[0]
        elif elem.VR in ("DA", "DT") and elem.value and elem.keyword != "PatientBirthDate":
            values = elem.value if elem.VM > 1 else [elem.value]
            shifted = [_shift_date(str(v), days) for v in values]
            elem.value = shifted if elem.VM > 1 else shifted[0]
        elif elem.VR == "PN" and elem.keyword not in ("PatientName",) and elem.value:
            elem.value = ""  # any other person name (e.g. in a sequence) is emptied


def deidentify_dataset(ds: Dataset, key: bytes, patient: str) -> Dataset:
    """De-identify a dataset in place and return it.

    Args:
        ds: A DICOM dataset (its ``file_meta`` is updated too).
        key: Pseudonymisation key.
        patient: The patient identity that fixes the pseudonym and the date shift (manifest ``patient_id``, else
            the file's ``PatientID``).

    Returns:
        ``ds``.
    """
    pseudonym = pseudonymise(patient, key)
    _clean(ds, key, pseudonym, _shift_days(key, patient))
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def write_deidentified(source: Path, dest: Path, key: bytes, patient: str | None) -> Path:
    """Write a de-identified copy of a DICOM file or series folder under ``dest`` (replacing an older copy).

    Args:
        source: A DICOM file, or a folder with one series (slices are written in slice order).
        dest: Folder for this case's copy.
        key: Pseudonymisation key.
        patient: Manifest ``patient_id``; ``None`` uses the file's ``PatientID`` (or "unknown").

    Returns:
        The copy: ``dest/image.dcm`` or the folder ``dest/series``.

    Raises:
        DicomError: The source cannot be read as DICOM with pixel data.
    """
    slices = [ds for _, ds in read_series(source)] if source.is_dir() else [read_dicom(source)]
    identity = patient or str(slices[0].get("PatientID", "") or "unknown")
    if dest.exists():
        shutil.rmtree(dest)
    if source.is_dir():
        target = dest / "series"
        target.mkdir(parents=True)
        for index, ds in enumerate(slices):
            deidentify_dataset(ds, key, identity).save_as(target / f"slice-{index:04d}.dcm", enforce_file_format=False)
        return target
    dest.mkdir(parents=True)
    target = dest / "image.dcm"
    deidentify_dataset(slices[0], key, identity).save_as(target, enforce_file_format=False)
    return target


def remaining_phi(path: Path) -> list[str]:
    """Keywords of :data:`PHI_KEYWORDS` that still hold a value in a stored file (for audits and tests)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    found = [k for k in PHI_KEYWORDS if k in ds and str(ds.data_element(k).value).strip()]
    return found + [f"private {elem.tag}" for elem in ds if elem.tag.is_private]
