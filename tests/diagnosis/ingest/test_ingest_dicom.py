"""DICOM: series folders assembled in slice order (round trip), pixel-data checks, de-identification leaves no PHI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from diagnosis.ingest import ImageError, load_image, probe_image, remaining_phi, write_deidentified
from diagnosis.ingest.deid import PHI_KEYWORDS

KEY = b"test-key-0123456789abcdef"
STUDY, SERIES, FRAME = generate_uid(), generate_uid(), generate_uid()


def phi_slice(path: Path, pixels: np.ndarray, z: float, instance: int, series: str = SERIES, with_pixels: bool = True) -> None:
    """One CT slice full of identifying attributes, a private tag and a nested sequence."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY, series, FRAME
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "Doe^Jane", "MRN-4711"
    ds.PatientBirthDate, ds.PatientAddress, ds.PatientTelephoneNumbers = "19700101", "1 Main St", "555-0100"
    ds.InstitutionName, ds.ReferringPhysicianName, ds.OperatorsName = "St. Elsewhere", "House^Greg", "Tech^Tom"
    ds.AccessionNumber, ds.StudyID, ds.OtherPatientIDs = "ACC123", "S1", "OLD-1"
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDateTime = "20240310", "20240310", "20240310120000"
    ds.add_new(0x00091001, "LO", "private PHI")
    ref = Dataset()
    ref.ReferencedSOPInstanceUID, ref.ReferringPhysicianName = generate_uid(), "Nested^Name"
    ds.ReferencedStudySequence = Sequence([ref])
    ds.InstanceNumber = instance
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.7], 2.5
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if with_pixels:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(folder: Path, depth: int = 10, rows: int = 16, cols: int = 12) -> np.ndarray:
    """A series whose file names and instance numbers are shuffled against the slice positions."""
    folder.mkdir(parents=True)
    volume = np.stack([np.full((rows, cols), 100 * k, np.uint16) + np.arange(cols, dtype=np.uint16) for k in range(depth)])
    order = np.random.default_rng(1).permutation(depth)
    for name_index, k in enumerate(order):
        phi_slice(folder / f"f{name_index:03d}.dcm", volume[k], z=-50.0 + 2.5 * k, instance=int(depth - name_index))
    return volume


def test_series_folder_round_trip_keeps_slice_order(tmp_path: Path) -> None:
    volume = write_series(tmp_path / "series")
    loaded = load_image(tmp_path / "series")
    assert loaded.array.shape == (1, 12, 16, 10)  # (columns, rows, slices), as MONAI lays out DICOM
    assert np.allclose(loaded.array[0].transpose(2, 1, 0), volume)  # slice k is the k-th along the normal
    assert loaded.spacing == pytest.approx((0.7, 0.8, 2.5))
    info = probe_image(tmp_path / "series")
    assert info.format == "dicom" and info.shape == (12, 16, 10) and len(info.sha256) == 64


def test_series_problems_are_reasons(tmp_path: Path) -> None:
    write_series(tmp_path / "two")
    phi_slice(tmp_path / "two" / "other.dcm", np.ones((16, 12)), z=99.0, instance=1, series=generate_uid())
    with pytest.raises(ImageError, match="2 DICOM series"):
        load_image(tmp_path / "two")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty")
    phi_slice(tmp_path / "nopix.dcm", np.ones((16, 12)), z=0.0, instance=1, with_pixels=False)
    with pytest.raises(ImageError, match="without pixel data"):
        load_image(tmp_path / "nopix.dcm")


def test_deidentified_copy_carries_no_phi(tmp_path: Path) -> None:
    write_series(tmp_path / "series", depth=8)
    phi_slice(tmp_path / "single.dcm", np.arange(16 * 12).reshape(16, 12), z=0.0, instance=1)
    originals = {p: p.read_bytes() for p in (tmp_path / "series").iterdir()}
    series_copy = write_deidentified(tmp_path / "series", tmp_path / "deid" / "s", KEY, "patient-7")
    single_copy = write_deidentified(tmp_path / "single.dcm", tmp_path / "deid" / "one", KEY, "patient-7")
    assert {p: p.read_bytes() for p in (tmp_path / "series").iterdir()} == originals  # originals untouched
    copies = sorted(series_copy.iterdir()) + [single_copy]
    for path in copies:
        assert remaining_phi(path) == [], path
        ds = pydicom.dcmread(path)
        text = str(ds)
        for secret in ("Doe", "MRN-4711", "19700101", "Main St", "Elsewhere", "House", "ACC123", "Nested", "private PHI"):
            assert secret not in text
        assert ds.PatientID.startswith("PSN-") and ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID != STUDY and ds.StudyInstanceUID.startswith("2.25.")
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # DICOM-defined UIDs stay
        assert ds.StudyDate != "20240310" and ds.StudyDate == ds.SeriesDate  # shifted, consistently
        assert ds.AcquisitionDateTime == ds.StudyDate + "120000"
    first = [pydicom.dcmread(p) for p in copies]
    assert len({d.StudyInstanceUID for d in first}) == 1 and len({d.StudyDate for d in first}) == 1
    assert len({d.SOPInstanceUID for d in first}) == len(first)
    assert all(k in PHI_KEYWORDS for k in ("PatientBirthDate", "InstitutionName", "AccessionNumber"))
    # deterministic: a re-ingest writes identical bytes (so re-ingesting adds nothing)
    again = write_deidentified(tmp_path / "single.dcm", tmp_path / "deid" / "again", KEY, "patient-7")
    assert again.read_bytes() == single_copy.read_bytes()
    other = write_deidentified(tmp_path / "single.dcm", tmp_path / "deid" / "other", KEY, "patient-8")
    assert pydicom.dcmread(other).StudyDate != pydicom.dcmread(single_copy).StudyDate  # shift is per patient
    assert np.allclose(load_image(series_copy).array, load_image(tmp_path / "series").array)
