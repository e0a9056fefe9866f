"""De-identification by the PS3.15 Annex E table (issue #13, item 1): PHI at every sequence level, free text, site and
device tags, overlays, curves, private tags and burned-in annotation; the audit checks the same rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from diagnosis.ingest import IngestOptions, ManifestRow, remaining_phi, validate_row, write_deidentified
from diagnosis.ingest.deid import BurnedInAnnotationError, resolve_action
from diagnosis.ingest.deid_profile import BASIC_PROFILE, action_for_tag

KEY = b"test-key-0123456789abcdef"


def base_dataset(rows: int = 16, columns: int = 12) -> Dataset:
    """A valid single-frame CT image with file meta and varied pixels, no identifying attributes yet."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (np.arange(rows * columns, dtype=np.uint16) * 3).tobytes()
    return ds


def item(**attributes: object) -> Dataset:
    """A sequence item with the given attributes."""
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    with pydicom.config.disable_value_validation():
        ds.save_as(path, enforce_file_format=True)
    return path


def reported_file(tmp_path: Path) -> tuple[Path, list[str]]:
    """The issue's reproduction: PHI the old code kept, and the secrets it must not keep."""
    ds = base_dataset()
    ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-4711"
    modified = item(PatientName="Nested^Name", PatientID="MRN-NESTED")
    original = item(ModifiedAttributesSequence=Sequence([modified]), SourceOfPreviousValues="OLD-PACS-SITE")
    ds.OriginalAttributesSequence = Sequence([original])
    ds.SourcePatientGroupIdentificationSequence = Sequence([item(PatientID="GROUP-ID-77")])
    secrets = ["Doe", "MRN-4711", "Nested", "MRN-NESTED", "OLD-PACS-SITE", "GROUP-ID-77"]
    for keyword in ("StudyComments", "RequestedProcedureComments", "ReasonForTheRequestedProcedure",
                    "AcquisitionComments", "VisitComments", "ImagingServiceRequestComments", "PatientState",
                    "PerformedLocation", "PerformedStationName", "RequestingService", "DetectorID", "GantryID"):
        setattr(ds, keyword, f"SECRET-{keyword}")
        secrets.append(f"SECRET-{keyword}")
    ds.add_new(0x60003000, "OW", b"SECRET-OVERLAY-BITS!")
    ds.add_new(0x60004000, "LT", "SECRET-OVERLAY-NOTE")
    ds.add_new(0x50003000, "OW", b"SECRET-CURVE-DATA...")
    ds.add_new(0x00091010, "LO", "SITE PRIVATE")
    ds.add_new(0x00091020, "LO", "SECRET-PRIVATE")
    ds.ReferencedImageSequence = Sequence([item(ReferencedSOPInstanceUID=generate_uid(), ReferringPhysicianName="Dr^Who")])
    secrets += ["SECRET-OVERLAY", "SECRET-CURVE", "SECRET-PRIVATE", "Dr^Who"]
    return write(ds, tmp_path / "reported.dcm"), secrets


def test_the_reported_phi_is_found_then_removed_at_every_level(tmp_path: Path) -> None:
    source, secrets = reported_file(tmp_path)
    before = remaining_phi(source)
    for label in ("OriginalAttributesSequence", "SourcePatientGroupIdentificationSequence", "StudyComments",
                  "GantryID", "OverlayData", "OverlayComments", "CurveData", "private (0009,1020)"):
        assert any(found.startswith(label) for found in before), (label, before)
    copy = write_deidentified(source, tmp_path / "deid", KEY, "patient-7")
    assert remaining_phi(copy) == []
    data = copy.read_bytes()
    for secret in secrets:
        assert secret.encode() not in data, secret
    ds = pydicom.dcmread(copy)
    assert ds.PatientID.startswith("PSN-") and ds.PatientName == ds.PatientID and ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")  # X/Z/U*: kept, UIDs remapped


def test_nested_phi_in_kept_sequences_is_found_and_replaced(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.ReferencedSeriesSequence = Sequence([item(PatientID="MRN-DEEP", PatientName="Deep^Name",
                                                 OperatorsName="Tech^Tom", StudyDate="20240310")])
    source = write(ds, tmp_path / "nested.dcm")
    before = remaining_phi(source)
    assert "ReferencedSeriesSequence[0].PatientID" in before and "ReferencedSeriesSequence[0].PatientName" in before
    copy = write_deidentified(source, tmp_path / "deid", KEY, None)
    nested = pydicom.dcmread(copy).ReferencedSeriesSequence[0]
    assert nested.PatientID.startswith("PSN-") and not nested.PatientName and not nested.OperatorsName
    assert nested.StudyDate != "20240310" and len(nested.StudyDate) == 8
    assert remaining_phi(copy) == []


def test_file_meta_and_preamble_carry_nothing(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.file_meta.SourceApplicationEntityTitle = "SECRETAE"
    ds.file_meta.ImplementationVersionName = "SECRETIMPL"
    ds.preamble = b"SECRET-PREAMBLE".ljust(128, b"\0")
    source = write(ds, tmp_path / "meta.dcm")
    assert "file meta SourceApplicationEntityTitle" in remaining_phi(source) and "preamble holds data" in remaining_phi(source)
    copy = write_deidentified(source, tmp_path / "deid", KEY, "p")
    assert remaining_phi(copy) == [] and b"SECRET" not in copy.read_bytes()


def test_burned_in_annotation_is_refused_unless_accepted(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.BurnedInAnnotation, ds.PatientID = "YES", "MRN-1"
    source = write(ds, tmp_path / "burned.dcm")
    with pytest.raises(BurnedInAnnotationError, match="BurnedInAnnotation = YES"):
        write_deidentified(source, tmp_path / "deid", KEY, "p")
    assert not (tmp_path / "deid").exists()
    copy = write_deidentified(source, tmp_path / "deid", KEY, "p", accept_burned_in=True)
    assert remaining_phi(copy) == ["BurnedInAnnotation=YES"]  # the audit still names what no header edit removes
    row = ManifestRow(line=2, case_id="c1", patient_id="MRN-1", image="burned.dcm", text=None, label=None, split=None)
    case = validate_row(row, tmp_path, IngestOptions(pseudonym_key=KEY, deid_dir=tmp_path / "store"))
    assert case.status == "rejected" and "BurnedInAnnotation = YES" in (case.error or "")
    assert "MRN-1" not in (case.error or "")


def test_the_table_resolves_to_one_action_per_attribute() -> None:
    assert len(BASIC_PROFILE) > 600
    assert action_for_tag(pydicom.datadict.tag_for_keyword("StudyComments")) == "X"
    assert action_for_tag(0x60023000) == "X" and action_for_tag(0x501E0000) == "X" and action_for_tag(0x00291010) == "X"
    assert action_for_tag(pydicom.datadict.tag_for_keyword("Rows")) is None
    expected = {("PatientName", "PN"): "D", ("PatientID", "LO"): "D", ("StudyDate", "DA"): "C",
                ("PatientBirthDate", "DA"): "Z", ("InstitutionName", "LO"): "Z", ("DetectorID", "SH"): "X",
                ("ReferencedImageSequence", "SQ"): "U", ("ContentSequence", "SQ"): "X", ("StudyInstanceUID", "UI"): "U",
                ("Rows", "US"): "K", ("SOPClassUID", "UI"): "U", ("PatientSpeciesDescription", "LO"): "X",
                ("VerifyingObserverName", "PN"): "D", ("TextValue", "UT"): "X", ("EvaluatorName", "PN"): "Z"}
    for (keyword, vr), action in expected.items():
        assert resolve_action(pydicom.datadict.tag_for_keyword(keyword), vr) == action, keyword
