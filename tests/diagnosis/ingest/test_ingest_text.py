"""Manifest and text handling: property-based tests (hypothesis), masking, line defects, bounded-memory streaming."""

from __future__ import annotations

import csv
import io
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnosis.ingest import IngestOptions, load_pseudonym_key, mask_identifiers, pseudonymise, read_manifest, validate_row
from diagnosis.ingest.privacy import PSEUDONYM_KEY_ENV
from diagnosis.ingest.text import MAX_TEXT_CHARS, text_problem

CELL = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)  # NUL: refused (test_ingest_hostile)
WORDS = st.lists(st.sampled_from(["fever", "cough", "for", "3", "days", "38.5", "BP", "120/80", "pain", "10 mg"]), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=8))
def test_manifest_cells_round_trip_through_csv(tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["case_id", "patient_id", "image", "text", "label", "split"])
    for index, (patient, text, label) in enumerate(rows):
        writer.writerow([f"c{index}", patient, "", text, label, ""])
    path = tmp_path / "m.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    read = list(read_manifest(path))
    assert len(read) == len(rows)
    for row, (patient, text, label) in zip(read, rows, strict=True):
        assert row.problem is None
        assert (row.patient_id, row.text, row.label) == (patient.strip() or None, text.strip() or None, label.strip() or None)
        case = validate_row(row, tmp_path)
        assert case.status in ("ingested", "rejected") and (case.status == "ingested") == (case.error is None)
        if case.status == "ingested":
            assert case.text is not None


@settings(max_examples=80, deadline=None)
@given(before=WORDS, after=WORDS, user=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
       digits=st.from_regex(r"[0-9]{3} [0-9]{3} [0-9]{4}", fullmatch=True), mrn=st.from_regex(r"[0-9]{6,9}", fullmatch=True))
def test_identifiers_are_masked_and_clinical_words_kept(before: list[str], after: list[str], user: str, digits: str, mrn: str) -> None:
    text = " ".join([*before, f"mail {user}@clinic.example.org", "call", digits, "record", mrn, *after])
    masked = mask_identifiers(text)
    assert f"{user}@clinic" not in masked and digits not in masked and mrn not in masked
    assert {"[EMAIL]", "[PHONE]", "[ID]"} <= set(masked.replace(",", " ").split())
    for word in before + after:
        assert word in masked
    assert mask_identifiers(masked) == masked  # idempotent


@given(text=st.text(max_size=300))
def test_text_checks_never_raise(text: str) -> None:
    problem = text_problem(text)
    assert problem is None or isinstance(problem, str)
    assert isinstance(mask_identifiers(text), str)


def test_text_problems(tmp_path: Path) -> None:
    assert "limit" in (text_problem("x" * (MAX_TEXT_CHARS + 1)) or "")
    assert "UTF-8" in (text_problem("fever \udcff") or "")
    assert "control" in (text_problem("\x00\x01") or "")
    assert text_problem("chest pain") is None


def test_line_defects_reject_only_their_row(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(
        b"case_id,patient_id,image,text,label,split\n"
        b"a,p,,good text,x,train\n"
        b"b,p,,bad \xff\xfe bytes,x,train\n"
        b"c,p,,too,many,fields,here,train\n"
        b"d,p,,short\n"
        b"e,p,,fine again,x,val\n"
    )
    cases = {c.case_id: c for c in (validate_row(r, tmp_path) for r in read_manifest(path))}
    assert cases["a"].status == cases["e"].status == "ingested"
    assert "not valid UTF-8" in (cases["b"].error or "") and cases["b"].text is None
    assert "8 fields but the header has 6" in (cases["c"].error or "")
    assert "4 fields" in (cases["d"].error or "")


def test_patient_ids_are_pseudonymised_and_labels_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    key = load_pseudonym_key(tmp_path)
    assert (tmp_path / "secrets" / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    assert load_pseudonym_key(tmp_path) == key  # generated once
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "an-operator-provided-secret")
    assert load_pseudonym_key(tmp_path) == b"an-operator-provided-secret"
    (tmp_path / "m.csv").write_text("case_id,patient_id,text,label\nk1,MRN-1,cough,flu\nk2,MRN-1,cough,gout\n")
    options = IngestOptions(labels=("flu", "cold"), pseudonym_key=key)
    first, second = (validate_row(r, tmp_path, options) for r in read_manifest(tmp_path / "m.csv"))
    assert first.status == "ingested" and first.patient_id == pseudonymise("MRN-1", key) != "MRN-1"
    assert second.status == "rejected" and "unknown label 'gout'" in (second.error or "")


def _peak_bytes(path: Path) -> int:
    tracemalloc.start()
    try:
        for row in read_manifest(path):
            validate_row(row, path.parent)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_streams_with_bounded_memory(tmp_path: Path) -> None:
    def write(path: Path, n: int) -> Path:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "patient_id", "image", "text", "label", "split"])
            writer.writerows([f"c{i}", f"p{i}", "", f"fever and cough number {i} " * 4, "flu", "train"] for i in range(n))
        return path

    small, large = _peak_bytes(write(tmp_path / "small.csv", 300)), _peak_bytes(write(tmp_path / "large.csv", 6000))
    assert large < small * 2 + 200_000  # 20x the rows, no growth beyond noise
