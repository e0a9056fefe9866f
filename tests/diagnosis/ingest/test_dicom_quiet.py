"""pydicom's warnings and log records quote element values; none reaches stderr, the logs or a rejection reason when
our code reads, decodes, de-identifies or audits DICOM (issue #13, item 9)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from diagnosis.ingest import IngestOptions, ManifestRow, load_image, probe_image, remaining_phi, validate_row
from diagnosis.ingest import write_deidentified
from tests.diagnosis.ingest.test_deid import KEY, base_dataset, write

CANARY = "QZXCANARY9"


def noisy_file(path: Path, decodable: bool = True) -> Path:
    """Values pydicom warns about, quoting them: an unknown character set, invalid IS / DA / UI values."""
    ds = base_dataset()
    ds.SeriesInstanceUID = "1.2.3.4"
    raw = CANARY.encode()
    ds[0x00200011] = RawDataElement(Tag(0x00200011), "IS", len(raw), raw, 0, False, True)  # SeriesNumber
    if not decodable:  # NumberOfFrames that pydicom's decoder fails on, quoting the value
        ds[0x00280008] = RawDataElement(Tag(0x00280008), "IS", len(raw), raw, 0, False, True)
    with pydicom.config.disable_value_validation():
        ds.PatientBirthDate, ds.PatientName, ds.PatientID = CANARY, f"{CANARY}^Jane", f"MRN-{CANARY}"
        ds.FrameOfReferenceUID = f"1.2.826.Doe^{CANARY}"
        ds.SpecificCharacterSet = f"ISO_IR {CANARY}"
        return write(ds, path)


def test_the_noisy_file_is_noisy_for_plain_pydicom(tmp_path: Path) -> None:
    path = noisy_file(tmp_path / "noisy.dcm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pydicom.dcmread(path).walk(lambda dataset, element: None)
    assert any(CANARY in str(w.message) for w in caught)  # the control: without our reader, values are quoted


def test_no_value_reaches_stderr_logs_or_reasons(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    good, bad = noisy_file(tmp_path / "noisy.dcm"), noisy_file(tmp_path / "broken.dcm", decodable=False)
    (tmp_path / "series").mkdir()
    for z in range(3):
        noisy_file(tmp_path / "series" / f"s{z}.dcm")
    capfd.readouterr()
    caplog.clear()  # the files were written by plain pydicom above, which warned
    pydicom_logger = logging.getLogger("pydicom")
    handlers, level = list(pydicom_logger.handlers), pydicom_logger.level
    pydicom.config.debug(True)  # pydicom then logs every element it reads, values included, to stderr
    caplog.set_level(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert probe_image(good).shape == (12, 16)
            with pytest.raises(Exception) as rejected:
                load_image(bad)
            copy = write_deidentified(good, tmp_path / "deid", KEY, None)
            series_copy = write_deidentified(tmp_path / "series", tmp_path / "deid-series", KEY, "p")
            assert remaining_phi(copy) == [] and remaining_phi(good) != []
            assert all(remaining_phi(p) == [] for p in series_copy.iterdir())
            row = ManifestRow(line=2, case_id="c1", patient_id="P1", image="broken.dcm", text=None, label=None, split=None)
            case = validate_row(row, tmp_path, IngestOptions(pseudonym_key=KEY, deid_dir=tmp_path / "store"))
    finally:
        pydicom_logger.handlers, pydicom.config.debugging = handlers, False
        pydicom_logger.setLevel(level)
    out, err = capfd.readouterr()
    assert CANARY not in out and CANARY not in err
    assert CANARY not in caplog.text
    assert not [w for w in caught if CANARY in str(w.message)]
    assert "cannot decode the pixels of broken.dcm" in str(rejected.value) and CANARY not in str(rejected.value)
    assert case.status == "rejected" and CANARY not in (case.error or "")
    data = copy.read_bytes()  # the character set and series number are kept by the profile; the PHI is not
    assert all(secret.encode() not in data for secret in (f"{CANARY}^Jane", f"MRN-{CANARY}", f"Doe^{CANARY}"))
