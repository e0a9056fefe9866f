"""Ingest stage: image loading in every supported format, manifest validation, npz conversion."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from diagnosis.ingest import ImageError, ManifestError, import_npz, load_image, probe_image, read_manifest, validate_row


def _blob(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=shape).astype(np.uint8)


def write_dicom(path: Path, pixels: np.ndarray) -> None:
    """A minimal valid single-frame DICOM file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CR", "X"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {"png": tmp_path / "a.png", "rgb": tmp_path / "rgb.png", "nifti3d": tmp_path / "v.nii.gz",
             "nifti2d": tmp_path / "s.nii", "npy": tmp_path / "a.npy", "dicom": tmp_path / "a.dcm"}
    Image.fromarray(_blob((40, 30))).save(paths["png"])
    Image.fromarray(_blob((40, 30, 3))).convert("RGB").save(paths["rgb"])
    nib.save(nib.Nifti1Image(_blob((20, 22, 24)).astype(np.float32), np.diag([1.5, 1.5, 2.0, 1.0])), paths["nifti3d"])
    nib.save(nib.Nifti1Image(_blob((20, 22)).astype(np.float32), np.eye(4)), paths["nifti2d"])
    np.save(paths["npy"], _blob((16, 16)).astype(np.float32))
    write_dicom(paths["dicom"], _blob((24, 24)))
    return paths


def test_every_format_loads_channel_first(images: dict[str, Path]) -> None:
    dims = {"png": 2, "rgb": 2, "nifti3d": 3, "nifti2d": 2, "npy": 2, "dicom": 2}
    for name, path in images.items():
        loaded = load_image(path)
        assert loaded.array.shape[0] == 1, name
        assert loaded.array.ndim - 1 == dims[name], name
        assert loaded.array.dtype == np.float32
    assert load_image(images["nifti3d"]).spacing == pytest.approx((1.5, 1.5, 2.0))
    info = probe_image(images["nifti3d"])
    assert info.format == "nifti" and info.shape == (20, 22, 24) and len(info.sha256) == 64


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n garbage"), "cannot read"),
        (lambda p: Image.fromarray(np.full((20, 20), 7, np.uint8)).save(p), "constant"),
        (lambda p: Image.fromarray(_blob((4, 4))).save(p), "too small"),
    ],
)
def test_bad_images_raise_a_reason(tmp_path: Path, make, reason: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError, match=reason):
        load_image(path)


def test_nan_volume_is_rejected(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    volume[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ImageError, match="NaN"):
        load_image(tmp_path / "nan.nii.gz")


def test_manifest_rows_validate_or_reject_with_reason(tmp_path: Path, images: dict[str, Path]) -> None:
    manifest = tmp_path / "manifest.csv"
    rows = [
        ["case_id", "patient_id", "image", "text", "label", "split"],
        ["ok-png", "p1", "a.png", "cough, fever", "pneumonia", "train"],
        ["ok-text", "p1", "", "  headache  ", "normal", "test"],
        ["ok-abs", "", str(images["nifti3d"]), "", "", ""],
        ["missing", "", "nope.png", "", "normal", "train"],
        ["nothing", "", "", "", "normal", "train"],
        ["badsplit", "", "", "text", "normal", "holdout"],
        ["", "", "", "text", "", ""],
    ]
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    results = {r.case_id: r for r in (validate_row(row, tmp_path) for row in read_manifest(manifest))}
    assert results["ok-png"].status == "ingested" and results["ok-png"].image is not None
    assert results["ok-text"].text == "headache" and results["ok-text"].image is None
    assert results["ok-abs"].image is not None and results["ok-abs"].image.shape == (20, 22, 24)
    assert "not found" in (results["missing"].error or "")
    assert "neither" in (results["nothing"].error or "")
    assert "unknown split" in (results["badsplit"].error or "")
    assert "empty case_id" in (results["<line 8>"].error or "")
    assert sum(r.status == "rejected" for r in results.values()) == 4


def test_manifest_without_case_id_column_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,text\n1,hello\n")
    with pytest.raises(ManifestError, match="case_id"):
        list(read_manifest(tmp_path / "m.csv"))
    with pytest.raises(ManifestError, match="not found"):
        list(read_manifest(tmp_path / "absent.csv"))


def test_import_npz_writes_images_and_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    np.savez(tmp_path / "mini.npz", **arrays)
    manifest = import_npz(tmp_path / "mini.npz", tmp_path / "out", labels=["normal", "pneumonia"])
    rows = list(read_manifest(manifest))
    assert len(rows) == 11 and {r.split for r in rows} == {"train", "val", "test"}
    assert {r.label for r in rows} <= {"normal", "pneumonia"} and all(r.text is None for r in rows)
    first = load_image(manifest.parent / rows[0].image)
    assert first.array.shape == (1, 28, 28)
    with pytest.raises(ManifestError, match="no name"):
        import_npz(tmp_path / "mini.npz", tmp_path / "out2", labels=["only-one"])
