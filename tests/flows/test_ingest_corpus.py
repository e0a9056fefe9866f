"""A bad-input corpus ingested with good rows through the CLI: each bad row rejected with its reason, good rows
ingested (DICOM de-identified, ids pseudonymised, texts masked), then trained on and diagnosed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from diagnosis.ingest import remaining_phi
from diagnosis.synthetic import SyntheticConfig, generate_dataset
from diagnosis.synthetic.classes import DIAGNOSES
from flows.cli import app
from tests.diagnosis.ingest.test_deid import base_dataset

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()
HEADER = ["case_id", "patient_id", "image", "text", "label", "split"]
SECRET_TEXT = "chest pain since tuesday, reach me at jane.doe@mail.example or 555 867 5309"


def dicom_slice(path: Path, z: float, series: str, study: str, pixels: bool = True) -> None:
    """A CT slice carrying a patient name, id, birth date and institution."""
    ds = base_dataset(rows=24, columns=24)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.InstitutionName = "Roe^Richard", "MRN-0042", "19600202", "Mercy"
    ds.StudyDate, ds.InstanceNumber = "20230101", int(z)
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, z], [1, 0, 0, 0, 1, 0], [1, 1]
    if pixels:
        ds.PixelData = np.random.default_rng(int(z)).integers(0, 900, (24, 24)).astype(np.uint16).tobytes()
    else:
        del ds.PixelData
    ds.save_as(path, enforce_file_format=True)


def build_corpus(data: Path) -> tuple[Path, dict[str, str]]:
    """Write the bad and good files plus the corpus manifest; return it and the expected reason per bad case."""
    rng = np.random.default_rng(0)
    noise = (rng.random((32, 32)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(data / "good.png")
    (data / "series").mkdir()
    study, series = generate_uid(), generate_uid()
    for z in (3, 1, 2, 5, 4, 8, 7, 6, 9):
        dicom_slice(data / "series" / f"x{z * 7 % 10}.dcm", float(z), series, study)
    dicom_slice(data / "single.dcm", 1.0, generate_uid(), study)
    nib.save(nib.Nifti1Image(rng.random((16, 16, 12, 2)).astype(np.float32), np.eye(4)), data / "fourd.nii.gz")
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (data / "zero.png").write_bytes(b"")
    Image.fromarray(noise).save(data / "really-png.nii.gz", format="PNG")
    np.save(data / "nan.npy", np.where(np.eye(16) > 0, np.nan, 1.0))
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(data / "flat.png")
    np.save(data / "line.npy", rng.random(64))
    header = nib.Nifti1Header()
    header.set_data_shape((2000, 2000, 2000))
    header["vox_offset"] = 352
    (data / "huge.nii").write_bytes(header.binaryblock + b"\x00" * 4)
    dicom_slice(data / "nopixels.dcm", 1.0, generate_uid(), study, pixels=False)
    Image.fromarray(noise).save(data.parent / "outside.png")
    label = DIAGNOSES[0]
    expected = {
        "B-missing": "not found", "B-corrupt": "cannot read", "B-zero": "0 bytes",
        "B-extension": "extension says nifti but the content is png", "B-nan": "NaN", "B-constant": "constant",
        "B-dims": "wrong dimensionality", "B-huge": "exceeds the limit", "B-nopixels": "without pixel data",
        "B-blank": "neither an image nor a symptom text", "B-long": "the limit is", "B-utf8": "not valid UTF-8",
        "B-label": "unknown label 'gremlins'", "B-split": "unknown split", "B-nothing": "neither",
        "B-fields": "fields but the header has 6", "B-escape": "outside the manifest's folder",
    }
    rows = [
        ["G-png", "MRN-0001", "good.png", SECRET_TEXT, label, ""],
        ["G-series", "MRN-0042", "series", "", label, ""],
        ["G-dicom", "MRN-0042", "single.dcm", "short of breath", "", ""],
        ["G-4d", "", "fourd.nii.gz", "", "", ""],
        ["G-text", "MRN-0003", "", "dry cough and fever, call 020 7946 0958", "", "test"],
        ["B-missing", "", "gone.png", "", "", ""], ["B-corrupt", "", "corrupt.png", "", "", ""],
        ["B-zero", "", "zero.png", "", "", ""], ["B-extension", "", "really-png.nii.gz", "", "", ""],
        ["B-nan", "", "nan.npy", "", "", ""], ["B-constant", "", "flat.png", "", "", ""],
        ["B-dims", "", "line.npy", "", "", ""], ["B-huge", "", "huge.nii", "", "", ""],
        ["B-nopixels", "", "nopixels.dcm", "", "", ""], ["B-blank", "", "", "   \t ", "", ""],
        ["B-long", "", "", "cough " * 3000, "", ""], ["B-label", "", "", "itchy", "gremlins", ""],
        ["B-split", "", "", "itchy", "", "holdout"], ["B-nothing", "P9", "", "", label, "train"],
        ["B-escape", "", "../outside.png", "", "", ""],
        ["G-text", "MRN-0003", "", "a different text for the same case id", "", "test"],
    ]
    manifest = data / "corpus.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    with open(manifest, "ab") as handle:
        handle.write(b"B-utf8,,,fever \xff\xfe,,\nB-fields,,,one,two,three,four\n")
    return manifest, expected


def invoke(home: Path, *args: str, code: int = 0):  # noqa: ANN201 - click Result
    result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_bad_corpus_with_good_rows(tmp_path_factory: pytest.TempPathFactory, tiny_text_model: Path) -> None:
    home, data = tmp_path_factory.mktemp("corpus-home"), tmp_path_factory.mktemp("corpus") / "data"
    data.mkdir()
    train_manifest = generate_dataset(data / "synthetic", SyntheticConfig(cases=60, dims=2, seed=11))
    labels = ",".join(DIAGNOSES)
    assert json.loads(invoke(home, "ingest", str(train_manifest), "--labels", labels).stdout)["created"] == 60
    manifest, expected = build_corpus(data)

    result = invoke(home, "ingest", str(manifest), "--labels", labels)
    report = json.loads(result.stdout)
    assert report["rows"] == 23 and report["rejected"] == len(expected) and report["conflicts"] == 1
    reasons = {p["case_id"]: p["reason"] for p in report["problems"] if p["kind"] == "rejected"}
    for case_id, reason in expected.items():
        assert reason in reasons[case_id], (case_id, reasons[case_id])
    conflict = next(p for p in report["problems"] if p["kind"] == "conflict")
    assert conflict["case_id"] == "G-text" and conflict["line"] == 22 and "different content" in conflict["reason"]
    assert "B-escape" in result.stderr and "G-text" in result.stderr  # the readable summary
    for secret in ("MRN-0", "Roe", "jane.doe", "867 5309", "chest pain", "dry cough", "itchy"):
        assert secret not in result.stderr  # logs and summary carry no identifiers or symptom text

    again = invoke(home, "ingest", str(manifest), "--labels", labels, "--strict", code=1)  # idempotent, strict
    assert json.loads(again.stdout)["created"] == 0 and json.loads(again.stdout)["unchanged"] == 22

    listed = {json.loads(line)["case_key"]: json.loads(line) for line in invoke(home, "cases", "--json", "--limit", "0").stdout.splitlines()}
    for case_id, reason in expected.items():
        assert listed[case_id]["status"] == "rejected" and reason in listed[case_id]["error"]
    import db

    with db.session_scope(f"sqlite:///{home / 'diagnosis.db'}") as session:
        details = {key: db.get_case(session, key) for key in ("G-png", "G-series", "G-dicom", "G-text")}
    assert details["G-png"].text is not None and "jane.doe" not in details["G-png"].text and "[EMAIL]" in details["G-png"].text
    assert "[PHONE]" in details["G-text"].text and "dry cough and fever" in details["G-text"].text
    for key in ("G-series", "G-dicom"):
        stored = Path(details[key].image_path)
        assert stored.is_relative_to(home / "deid") and "MRN" not in str(stored)
        for file in sorted(stored.iterdir()) if stored.is_dir() else [stored]:
            assert remaining_phi(file) == [] and pydicom.dcmread(file).PatientID.startswith("PSN-")
    assert all(listed[k]["patient_key"].startswith("PSN-") for k in ("G-png", "G-series", "B-nothing"))
    assert remaining_phi(data / "single.dcm") != []  # the original is untouched

    invoke(home, "train", "--epochs", "2", "--text-model", str(tiny_text_model), "--dataset", "synthetic,data",
           "--image-members", "1")  # both data sets, on purpose
    assert json.loads(invoke(home, "diagnose").stdout)["failed"] == 0
    listed = {json.loads(line)["case_key"]: json.loads(line) for line in invoke(home, "cases", "--json", "--limit", "0").stdout.splitlines()}
    for key in ("G-png", "G-series", "G-dicom", "G-4d", "G-text"):
        assert listed[key]["status"] == "diagnosed" and listed[key]["predicted_label"], key
