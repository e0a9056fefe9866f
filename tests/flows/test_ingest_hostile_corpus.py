"""A hostile corpus of more than 40 kinds of bad input, ingested in one CLI run (issue #13).

The run is a real ``diagnosis ingest`` process started under umask 022, as a careless shell would: it must exit 0,
reject every bad row with a reason, store every good row, keep its peak memory under 1.5 GB, never print a patient
identifier, and leave every file it created readable by its own account only.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.diagnosis.ingest.test_ingest import write_dicom
from tests.diagnosis.ingest.test_ingest_hostile import _nifti_header, _png_header
from tests.flows.test_ingest_corpus import dicom_slice

pytestmark = pytest.mark.usefixtures("prefect_server")
HEADER = ["case_id", "patient_id", "image", "text", "label", "split"]
CANARY = "PID-CANARY-5150"  # in every patient_id cell: must never reach the terminal
MAX_RSS_BYTES = 1.5e9
# Runs the CLI under umask 022 and reports its peak RSS (this wrapper's only child) on the last stderr line.
WRAPPER = ("import os, resource, subprocess, sys; os.umask(0o022); code = subprocess.run(sys.argv[1:]).returncode; "
           "print('maxrss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def _series(folder: Path, count: int, size: int = 24, study: str | None = None) -> None:
    folder.mkdir()
    study, series = study or generate_uid(), generate_uid()
    for z in range(count):
        dicom_slice(folder / f"s{z}.dcm", float(z + 1), series, study)
    if size != 24:  # declare another size in the headers than the pixels hold
        for file in folder.iterdir():
            ds = pydicom.dcmread(file)
            ds.Rows = ds.Columns = size
            ds.save_as(file)


def build(data: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Write the files and the manifest; return it, the reason expected per bad case, and the good cases."""
    rng = np.random.default_rng(0)
    noise = (rng.random((32, 32)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(data / "good.png")
    _series(data / "good-series", 9)
    write_dicom(data / "good.dcm", rng.integers(0, 900, (16, 16)))
    nib.save(nib.Nifti1Image(rng.random((16, 16, 12, 2)).astype(np.float32), np.eye(4)), data / "good-4d.nii.gz")
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (data / "zero.png").write_bytes(b"")
    Image.fromarray(noise).save(data / "really-png.nii.gz", format="PNG")
    np.save(data / "nan.npy", np.where(np.eye(16) > 0, np.nan, 1.0))
    np.save(data / "inf.npy", np.where(np.eye(16) > 0, np.inf, 1.0))
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(data / "flat.png")
    Image.fromarray(noise[:4, :4]).save(data / "tiny.png")
    np.save(data / "line.npy", rng.random(64))
    _nifti_header(data / "huge.nii", (2000, 2000, 2000))
    _nifti_header(data / "bomb-4d.nii", (128, 128, 128, 320))
    _nifti_header(data / "five-axes.nii", (16, 16, 16, 2, 2))
    side = int(np.sqrt(512**3)) - 1
    _png_header(data / "bomb-rgba.png", side, side, colour_type=6)
    _series(data / "bomb-series", 9, size=4096)
    _series(data / "link-series", 3)
    outside = data.parent / "elsewhere"
    outside.mkdir()
    dicom_slice(outside / "other-patient.dcm", 9.0, generate_uid(), generate_uid())
    (data / "link-series" / "s1.dcm").unlink()
    (data / "link-series" / "s1.dcm").symlink_to(outside / "other-patient.dcm")
    Image.fromarray(noise).save(outside / "outside.png")
    (data / "link.png").symlink_to(outside / "outside.png")
    dicom_slice(data / "nopixels.dcm", 1.0, generate_uid(), generate_uid(), pixels=False)
    (data / "not-dicom.dcm").write_text("this is a report, not an image")
    (data / "picture.gif").write_bytes(b"GIF89a")
    (data / "empty-folder").mkdir()
    (data / "text-folder").mkdir()
    (data / "text-folder" / "notes.txt").write_text("not dicom")
    (data / "gz-garbage.nii.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 30)
    _series(data / "two-series", 2)
    dicom_slice(data / "two-series" / "intruder.dcm", 7.0, generate_uid(), generate_uid())
    _series(data / "duplicate-slices", 2)
    ds = pydicom.dcmread(data / "duplicate-slices" / "s1.dcm")
    ds.ImagePositionPatient = [0, 0, 1]
    ds.save_as(data / "duplicate-slices" / "s1.dcm")

    expected = {
        "B-missing": "not found", "B-corrupt": "cannot read", "B-zero": "0 bytes", "B-extension": "content is png",
        "B-nan": "NaN", "B-inf": "infinite", "B-constant": "constant", "B-tiny": "too small", "B-dims": "wrong dimensionality",
        "B-huge": "exceeds the limit", "B-bomb-4d": "exceeds the limit", "B-five-axes": "at most 4",
        "B-bomb-rgba": "4 channels exceeds the limit", "B-bomb-series": "declare more than", "B-link-series": "linking outside",
        "B-link-file": "outside the manifest's folder", "B-outside": "outside the manifest's folder",
        "B-absolute": "outside the manifest's folder", "B-nopixels": "without pixel data", "B-not-dicom": "is not a",
        "B-gif": "unsupported image type", "B-empty-folder": "is empty", "B-text-folder": "notes.txt is not a",
        "B-gz": "without a NIfTI header", "B-two-series": "2 DICOM series", "B-duplicate-slices": "same position",
        "B-blank": "neither an image nor a symptom text", "B-control": "only control characters", "B-long": "the limit is 10000",
        "B-label": "unknown label", "B-split": "unknown split", "B-nothing": "neither", "B-nul": "NUL bytes",
        "B-wide-key" + "k" * 245: "case_id cell has", "B-wide-label": "label cell has",
        "B-utf8-text": "not valid UTF-8", "B-utf8-case\ufffd\ufffd": "not valid UTF-8", "B-utf8-patient": "not valid UTF-8",
        "B-utf8-label": "not valid UTF-8", "B-utf8-image": "not valid UTF-8", "B-fields": "fields but the header has 6",
        "B-short": "every row needs all columns",
    }
    good = ["G-png", "G-series", "G-dicom", "G-4d", "G-text"]
    cell = {
        "G-png": ("good.png", "dry cough, MRN-0042"), "G-series": ("good-series", ""), "G-dicom": ("good.dcm", ""),
        "G-4d": ("good-4d.nii.gz", ""), "G-text": ("", f"fever since DOB: Jan 2, 1960 ({CANARY})"),
        "B-missing": ("gone.png", ""), "B-corrupt": ("corrupt.png", ""), "B-zero": ("zero.png", ""),
        "B-extension": ("really-png.nii.gz", ""), "B-nan": ("nan.npy", ""), "B-inf": ("inf.npy", ""), "B-constant": ("flat.png", ""),
        "B-tiny": ("tiny.png", ""), "B-dims": ("line.npy", ""), "B-huge": ("huge.nii", ""), "B-bomb-4d": ("bomb-4d.nii", ""),
        "B-five-axes": ("five-axes.nii", ""), "B-bomb-rgba": ("bomb-rgba.png", ""), "B-bomb-series": ("bomb-series", ""),
        "B-link-series": ("link-series", ""), "B-link-file": ("link.png", ""), "B-outside": ("../elsewhere/outside.png", ""),
        "B-absolute": (str(outside / "outside.png"), ""), "B-nopixels": ("nopixels.dcm", ""), "B-not-dicom": ("not-dicom.dcm", ""),
        "B-gif": ("picture.gif", ""), "B-empty-folder": ("empty-folder", ""), "B-text-folder": ("text-folder", ""),
        "B-gz": ("gz-garbage.nii.gz", ""), "B-two-series": ("two-series", ""), "B-duplicate-slices": ("duplicate-slices", ""),
        "B-blank": ("", "   \t "), "B-control": ("", "\x01\x02\x03"), "B-long": ("", "cough " * 3000),
        "B-nul": ("", "fever\x00"), "B-wide-key" + "k" * 300: ("", "itch"),
    }
    rows = [[key, CANARY, image, text, "normal", ""] for key, (image, text) in cell.items()]
    rows += [["B-label", CANARY, "", "itchy", "gremlins", ""], ["B-split", CANARY, "", "itchy", "", "holdout"],
             ["B-nothing", CANARY, "", "", "", "train"], ["B-wide-label", CANARY, "", "rash", "l" * 300, ""],
             ["G-text", CANARY, "", "a different text under the same case id", "", ""]]
    manifest = data / "hostile.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    canary = CANARY.encode()
    with open(manifest, "ab") as handle:
        handle.write(b"B-utf8-text," + canary + b",,fever \xff\xfe,,\n"
                     b"B-utf8-case\xff\xfe," + canary + b",,fever,,\n"
                     b"B-utf8-patient," + canary + b"\xff,,fever,,\n"
                     b"B-utf8-label," + canary + b",,fever,pneu\xe9,\n"
                     b"B-utf8-image," + canary + b",im\xffage.png,,,\n"
                     b"B-fields," + canary + b",,one,two,three,four\n"
                     b"B-short," + canary + b",,short\n")
    return manifest, expected, good


def test_hostile_corpus_ingests_in_one_run(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    data.mkdir()
    manifest, expected, good = build(data)
    assert len(expected) >= 40
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop("DIAGNOSIS_PSEUDONYM_KEY", None)
    command = [sys.executable, "-c", WRAPPER, str(Path(sys.executable).parent / "diagnosis"), "--home", str(home),
               "ingest", str(manifest), "--labels", "normal,pneumonia"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    reasons = {p["case_id"]: p["reason"] for p in report["problems"] if p["kind"] == "rejected"}
    wrong = {case_id: reasons.get(case_id) for case_id, reason in expected.items() if reason not in reasons.get(case_id, "")}
    assert wrong == {}, wrong
    assert report["rejected"] == len(expected) and report["ingested"] == len(good) + 1 and report["conflicts"] == 1
    assert CANARY not in done.stdout + done.stderr and "Traceback" not in done.stderr
    peak = int(done.stderr.strip().splitlines()[-1].split()[-1]) * 1024
    assert peak < MAX_RSS_BYTES, f"peak RSS {peak / 1e9:.2f} GB"

    import db

    with db.session_scope(f"sqlite:///{home / 'diagnosis.db'}") as session:
        stored = {key: db.get_case(session, key) for key in good}
    assert all(case is not None and case.summary.status == "ingested" for case in stored.values())
    assert "MRN-0042" not in stored["G-png"].text and "1960" not in stored["G-text"].text
    assert CANARY not in stored["G-text"].text  # the row's own patient id, masked in its text

    created = [home, *home.rglob("*")]
    loose = [str(p.relative_to(home)) for p in created if not p.is_symlink() and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    assert loose == [], f"readable by others: {loose[:10]}"
    assert any(p.is_relative_to(home / "deid") and p.is_file() for p in created)  # the copies were checked too


def test_rows_the_store_refuses_are_stored_one_by_one(pg_database) -> None:  # noqa: ANN001 - fixture factory
    """On PostgreSQL a value wider than its column fails the whole bulk statement; the batch then goes row by row,
    the refused row is kept as a rejected case with a reason, and the others are stored."""
    import db
    from diagnosis.ingest import ValidatedCase
    from flows.ingest import store_batch

    url = pg_database("hostile_store")
    db.migrate(url)
    cases = [ValidatedCase(f"c{i}", None, "x" * (300 if i == 1 else 3), None, "cough", None, None, "ingested", None, i + 2)
             for i in range(3)]
    outcome = store_batch.fn(cases, url, "m.csv")
    assert outcome.created == 3 and outcome.conflicts == []
    with db.session_scope(url) as session:
        refused = db.get_case(session, "c1")
        kept = db.get_case(session, "c2")
    assert refused.summary.status == "rejected" and "the store refused this row" in (refused.summary.error or "")
    assert kept.summary.status == "ingested" and kept.text == "cough"
