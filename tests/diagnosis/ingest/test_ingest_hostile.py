"""Hostile manifest rows and image files (issue #13): each is contained in its row, never the batch.

Covers undecodable bytes in identifier cells, duplicate headers, oversized cells, NUL bytes, memory bombs declared by
headers (4D NIfTI, RGBA PNG, DICOM series), symbolic links out of a series folder, unexpected errors inside
validation, the pseudonym key under concurrent first use, and identifiers in free text.
"""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diagnosis.ingest import IngestOptions, ImageError, ManifestError, load_image, load_pseudonym_key, mask_identifiers
from diagnosis.ingest import read_manifest, validate_row
from diagnosis.ingest.formats import MAX_VOXELS
from diagnosis.ingest.manifest import MAX_CELL_CHARS
from tests.diagnosis.ingest.test_ingest import write_dicom

HEADER = b"case_id,patient_id,image,text,label,split\n"
CANARY = "CANARY-7731"


def rows_of(path: Path, body: bytes, options: IngestOptions | None = None) -> list:
    path.write_bytes(HEADER + body)
    return [validate_row(row, path.parent, options) for row in read_manifest(path)]


@pytest.mark.parametrize("column", [0, 1, 2, 4])
def test_undecodable_bytes_in_any_identifier_cell_reject_only_that_row(tmp_path: Path, column: int) -> None:
    cells = [b"bad", b"P1", b"", b"cough", b"flu", b""]
    cells[column] = cells[column] + b"\xff\xfe" if cells[column] else b"x\xff.png"
    body = b"good-1,P2,,fever,flu,\n" + b",".join(cells) + b"\ngood-2,P3,,rash,flu,\n"
    cases = rows_of(tmp_path / "m.csv", body, IngestOptions(pseudonym_key=b"k" * 32))  # pseudonyms hash every id
    assert [c.status for c in cases] == ["ingested", "rejected", "ingested"]
    assert "not valid UTF-8" in cases[1].error and cases[1].line == 3
    for case in cases:  # every string can be encoded for the store and the terminal
        for value in (case.case_id, case.patient_id, case.label, case.image_path, case.text, case.error):
            (value or "").encode("utf-8")


def test_a_column_named_twice_refuses_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("case_id,label,text,label\nc1,,cough,flu\n")
    with pytest.raises(ManifestError, match="label more than once"):
        list(read_manifest(path))
    path.write_text("case_id,text,case_id\nc1,cough,c2\n")
    with pytest.raises(ManifestError, match="case_id more than once"):
        list(read_manifest(path))


def test_oversized_cells_reject_their_row_with_its_line(tmp_path: Path) -> None:
    body = (b"c1,,,cough,,\n"
            + b"c2,,,\"" + b"x" * 131_073 + b"\",,\n"  # over Python's default field limit, under ours
            + b"c3,,,\"" + b"y" * (MAX_CELL_CHARS + 5) + b"\",,\n"  # over ours: the CSV reader refuses the line
            + b"c4,,,wheeze,,\n"
            + b"c5" + b"z" * 300 + b",,,itch,,\n"  # a key wider than the store's column
            + b"c6,,,fever\x00,,\n")
    cases = rows_of(tmp_path / "m.csv", body)
    by_line = {c.line: c for c in cases}
    assert [c.status for c in cases] == ["ingested", "rejected", "rejected", "ingested", "rejected", "rejected"]
    assert "the limit is 10000" in by_line[3].error and by_line[3].case_id == "c2"
    assert "line 4 cannot be read as CSV" in by_line[4].error and by_line[4].case_id == "<line 4>"
    assert by_line[5].text == "wheeze"
    assert "case_id cell has 302 characters" in by_line[6].error
    assert "NUL bytes" in by_line[7].error


def _png_header(path: Path, width: int, height: int, colour_type: int) -> None:
    """A PNG whose header declares ``width x height`` (colour type 6 = RGBA) over a few bytes of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _nifti_header(path: Path, shape: tuple[int, ...]) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header["vox_offset"] = 352
    path.write_bytes(header.binaryblock + b"\x00" * 4)


def test_memory_bombs_are_rejected_from_their_headers(tmp_path: Path) -> None:
    _nifti_header(tmp_path / "4d.nii", (128, 128, 128, 320))  # one volume is small; all 320 are 671 M values
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(tmp_path / "4d.nii")
    side = int(np.sqrt(MAX_VOXELS)) - 1  # under the limit as pixels, over it with four channels
    _png_header(tmp_path / "rgba.png", side, side, colour_type=6)
    with pytest.raises(ImageError, match="4 channels exceeds the limit"):
        load_image(tmp_path / "rgba.png")
    series = tmp_path / "series"
    series.mkdir()
    for z in range(9):  # 9 slices of 4096 x 4096 declared: 151 M values; each file holds a tiny pixel array
        write_dicom(series / f"s{z}.dcm", np.ones((8, 8)) * z)
        import pydicom

        ds = pydicom.dcmread(series / f"s{z}.dcm")
        ds.Rows = ds.Columns = 4096
        ds.save_as(series / f"s{z}.dcm")
    with pytest.raises(ImageError, match="series folder series: its slices declare more than"):
        load_image(series)


def test_series_slices_linking_outside_the_manifest_folder_are_refused(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "other-patient"
    (data / "series").mkdir(parents=True)
    elsewhere.mkdir()
    for z in range(3):
        write_dicom(elsewhere / f"s{z}.dcm", np.arange(64).reshape(8, 8) + z)
    write_dicom(data / "series" / "s0.dcm", np.arange(64).reshape(8, 8))
    (data / "series" / "s1.dcm").symlink_to(elsewhere / "s1.dcm")
    body = b"c1,,series,,,\n"
    case = rows_of(data / "m.csv", body)[0]
    assert case.status == "rejected" and "1 file(s) linking outside" in case.error
    assert rows_of(data / "m.csv", body, IngestOptions(allow_outside_paths=True))[0].error != case.error


def test_an_unexpected_error_inside_validation_rejects_only_its_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diagnosis.ingest.validate as validate

    def explode(path: str) -> None:
        raise RuntimeError(f"decoder blew up on {CANARY}")

    monkeypatch.setattr(validate, "probe_image", explode)
    (tmp_path / "a.png").write_bytes(b"x")
    cases = rows_of(tmp_path / "m.csv", b"c1,P1,a.png,,,\nc2,P2,,cough,,\n", IngestOptions(pseudonym_key=b"k" * 32))
    assert [c.status for c in cases] == ["rejected", "ingested"]
    assert "unexpected RuntimeError" in cases[0].error and CANARY not in cases[0].error
    assert cases[0].patient_id.startswith("PSN-")  # the raw id is never stored, even on this path


def test_concurrent_first_ingests_agree_on_one_pseudonym_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIAGNOSIS_PSEUDONYM_KEY", raising=False)
    for attempt in range(20):
        home, keys, start = tmp_path / f"home-{attempt}", [], threading.Barrier(8)

        def first_ingest(home: Path = home) -> None:
            start.wait()
            keys.append(load_pseudonym_key(home))

        threads = [threading.Thread(target=first_ingest) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(keys) == 8 and len(set(keys)) == 1, attempt
        assert [p.name for p in (home / "secrets").iterdir()] == ["pseudonym.key"]  # no temporary left behind
        assert (home / "secrets" / "pseudonym.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("text", "hidden"), [
    ("MRN-4242 with cough", "4242"),
    ("patient id P-0042 has a fever", "0042"),
    ("born 3 March 1961, chest pain", "1961"),
    ("DOB: Jan 2, 1960. wheezing", "1960"),
    ("date of birth 02/01/1960", "1960"),
    ("case c-991 for hq-patient-77 reports rash", "hq-patient-77"),
])
def test_identifiers_in_free_text_are_masked(text: str, hidden: str) -> None:
    masked = mask_identifiers(text, known=("HQ-PATIENT-77", "c-991"))
    assert hidden.lower() not in masked.lower() and ("[ID]" in masked or "[DATE]" in masked)


def test_clinical_numbers_and_words_survive_masking() -> None:
    text = "fever 38.5 for 3 days, bp 120/80, may be worse in the morning, 2 tablets"
    assert mask_identifiers(text, known=("P1", "bp")) == text  # "P1" and "bp" are shorter than a masked id


def test_the_rows_own_identifiers_are_masked_in_its_text(tmp_path: Path) -> None:
    case = rows_of(tmp_path / "m.csv", b"case-4471,MRN88213,,seen as case-4471 (mrn88213) with cough,,\n")[0]
    assert case.text == "seen as [ID] ([ID]) with cough"


PEAK_SCRIPT = """
import resource, sys
import numpy as np, nibabel as nib
from diagnosis.ingest import probe_image
path, side = sys.argv[1], int(sys.argv[2])
nib.save(nib.Nifti1Image(np.random.default_rng(0).random((side, side, side)), np.eye(4)), path)  # float64 source
probe_image(path)  # imports the readers and warms their buffers: the next read is measured alone
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
probe_image(path)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_peak_memory_per_value_stays_within_the_documented_bound(tmp_path: Path) -> None:
    """Peak RSS grows by at most BYTES_PER_VALUE per decoded value, measured in a fresh process on two sizes."""
    import subprocess
    import sys

    from diagnosis.ingest.images import BYTES_PER_VALUE

    def peak_kib(side: int) -> int:
        done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path / f"v{side}.nii"), str(side)],
                              capture_output=True, text=True, timeout=300, check=True)
        return int(done.stdout.split()[-1])

    small, large = peak_kib(48), peak_kib(160)
    slope = (large - small) * 1024 / (160**3 - 48**3)  # bytes per value, libraries and warm-up cancelled out
    assert slope <= BYTES_PER_VALUE, f"{slope:.1f} bytes per value"
