"""Property: wherever PHI is put (table attributes, person names, UIDs, dates, free text, patient attributes, private
tags, overlays, curves; at any depth of random sequences; the file meta and preamble), the de-identified copy passes
the audit and a canary placed in those values appears nowhere in the written file's bytes (issue #13, item 1)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from diagnosis.ingest import remaining_phi, write_deidentified
from diagnosis.ingest.deid_profile import BASIC_PROFILE
from tests.diagnosis.ingest.test_deid import KEY, base_dataset, write

CANARY = "QZXCANARY9"  # upper case and digits: a legal value for CS, AE and SH too
TEXT_VRS = ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT", "DA", "DT", "TM", "UI", "OB", "OW", "UN")


def _usable(tag: int) -> bool:
    """Dataset-body attributes with one plain VR that can hold a canary."""
    group = tag >> 16
    vr = DicomDictionary[tag][0] if tag in DicomDictionary else ""
    return group not in (0x0000, 0x0002, 0x7FE0, 0xFFFA, 0xFFFC, 0xFFFE) and vr in TEXT_VRS


def _pool(predicate: object) -> list[int]:
    return sorted(t for t in DicomDictionary if _usable(t) and predicate(t))  # type: ignore[operator]


TABLE = _pool(lambda t: t in BASIC_PROFILE) + [t for t in BASIC_PROFILE if t in (0x00100010, 0x00100020)]
NAMES = _pool(lambda t: t not in BASIC_PROFILE and dictionary_VR(t) == "PN")
UIDS = _pool(lambda t: dictionary_VR(t) == "UI")
TEMPORAL = _pool(lambda t: t not in BASIC_PROFILE and dictionary_VR(t) in ("DA", "DT", "TM"))
FREE_TEXT = _pool(lambda t: t not in BASIC_PROFILE and dictionary_VR(t) in ("LT", "ST", "UT"))
PATIENT = _pool(lambda t: t not in BASIC_PROFILE and t >> 16 == 0x0010)
CONTAINERS = sorted(t for t in DicomDictionary if DicomDictionary[t][0] == "SQ" and t >> 16 not in (0x0002, 0xFFFE))
KINDS = {"table": TABLE, "name": NAMES, "uid": UIDS, "temporal": TEMPORAL, "text": FREE_TEXT, "patient": PATIENT}


def _value(vr: str) -> object:
    """A value of this VR that carries the canary."""
    if vr == "UI":
        return f"1.2.826.0.{CANARY}"
    if vr == "DT":
        return f"20240310{CANARY}"
    if vr in ("OB", "OW", "UN"):
        return f"{CANARY}!!".encode()
    return f"{CANARY}-{vr}" if vr not in ("AE", "CS", "SH") else CANARY


@st.composite
def leaves(draw: st.DrawFn) -> tuple[int, str, object]:
    """One ``(tag, VR, value)`` holding the canary: a dictionary attribute, a private tag, an overlay or a curve."""
    kind = draw(st.sampled_from([*KINDS, "private", "overlay", "curve"]))
    if kind == "private":
        group = draw(st.sampled_from([0x0009, 0x0011, 0x0019, 0x0029, 0x0043, 0x7FD1]))
        element = draw(st.sampled_from([0x0010, 0x1001, 0x10FF]))  # a creator or a private element
        return (group << 16) | element, "LO", f"{CANARY} PRIVATE"
    if kind in ("overlay", "curve"):
        group = (0x6000 if kind == "overlay" else 0x5000) + 2 * draw(st.integers(0, 15))
        element, vr = draw(st.sampled_from([(0x3000, "OW"), (0x4000, "LT"), (0x0022, "LO"), (0x1500, "LO")]))
        return (group << 16) | element, vr, _value(vr)
    tag = draw(st.sampled_from(KINDS[kind]))
    vr = dictionary_VR(tag)
    return tag, vr, _value(vr)


placements = st.lists(st.tuples(st.lists(st.sampled_from(CONTAINERS), max_size=3), st.integers(0, 1), leaves()),
                      min_size=1, max_size=12)


def _place(ds: Dataset, path: list[int], index: int, leaf: tuple[int, str, object]) -> None:
    """Put ``leaf`` at the end of a chain of sequences, creating the items on the way."""
    here = ds
    for tag in path:
        if tag not in here or here[tag].VR != "SQ":
            here.add_new(tag, "SQ", Sequence([Dataset(), Dataset()]))
        items = here[tag].value
        while len(items) <= index:
            items.append(Dataset())
        here = items[index]
    tag, vr, value = leaf
    here.add_new(tag, vr, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements=placements, file_patient=st.booleans(), in_meta=st.booleans())
def test_no_canary_survives_wherever_it_is_put(placements: list, file_patient: bool, in_meta: bool) -> None:
    ds = base_dataset()
    for path, index, leaf in placements:
        _place(ds, path, index, leaf)
    if in_meta:
        ds.file_meta.SourceApplicationEntityTitle = CANARY
        ds.preamble = CANARY.encode().ljust(128, b"\0")
    with tempfile.TemporaryDirectory() as folder:
        source = write(ds, Path(folder) / "phi.dcm")
        assert CANARY.encode() in source.read_bytes()
        assert [label for label in remaining_phi(source) if label != "PatientIdentityRemoved is not YES"]
        copy = write_deidentified(source, Path(folder) / "deid", KEY, None if file_patient else "patient-1")
        assert remaining_phi(copy) == []
        assert CANARY.encode() not in copy.read_bytes()
        assert pydicom.dcmread(copy).PatientID.startswith("PSN-")
