"""The image-format registry: names, signatures, writers and readers agree, format by format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diagnosis.ingest import ImageError, load_image
from diagnosis.ingest.formats import FORMATS, SUFFIXES, format_for, read_image, sniff_format, write_image


def test_every_suffix_names_one_format_and_every_format_is_named() -> None:
    assert {fmt.name for fmt in FORMATS} == {"png", "jpeg", "npy", "dicom", "nifti"}
    assert {s: f.name for s, f in SUFFIXES.items()} == {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".npy": "npy",
                                                         ".dcm": "dicom", ".nii": "nifti", ".nii.gz": "nifti"}
    assert format_for("A/B.NII.GZ").name == "nifti" and format_for("x.jpg") is format_for("y.JPEG")
    with pytest.raises(ImageError, match="unsupported image type '.bmp'"):
        format_for("x.bmp")


@pytest.mark.parametrize(("name", "array"), [
    ("picture.png", np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)),
    ("volume.nii.gz", np.arange(10 * 11 * 12, dtype=np.int16).reshape(10, 11, 12)),
    ("volume.npy", np.arange(10 * 11 * 12, dtype=np.float32).reshape(10, 11, 12)),
])  # fmt: skip
def test_what_a_writer_writes_its_sniffer_recognises_and_its_reader_gives_back(tmp_path: Path, name: str,
                                                                                 array: np.ndarray) -> None:
    path = write_image(array, tmp_path / name, spacing_mm=2.0)
    assert sniff_format(path) == format_for(path).name
    decoded = read_image(path)
    expected = array.T if array.ndim == 2 else array  # pictures come back (x, y), as MONAI orders them
    np.testing.assert_array_equal(decoded.array[0], expected.astype(np.float32))
    if name.endswith(".nii.gz"):
        assert load_image(path).spacing == (2.0, 2.0, 2.0)  # from MONAI's reading of the affine
    np.testing.assert_array_equal(load_image(path).array, decoded.array)  # ingest adds checks, not another decoding


def test_writers_refuse_what_their_format_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_image(np.zeros((8, 8), dtype=np.float32), tmp_path / "x.png")
    with pytest.raises(ValueError, match="NIfTI output needs an"):
        write_image(np.zeros((8, 8), dtype=np.int16), tmp_path / "x.nii.gz")
    with pytest.raises(ValueError, match="does not write jpeg"):
        write_image(np.zeros((8, 8), dtype=np.uint8), tmp_path / "x.jpg")
    assert list(tmp_path.iterdir()) == []


def test_read_image_names_a_missing_or_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found: gone.png"):
        read_image(tmp_path / "gone.png")
    (tmp_path / "bad.nii").write_bytes(b"\x00" * 400)
    with pytest.raises(ImageError, match="cannot read the header of bad.nii"):
        read_image(tmp_path / "bad.nii")


@pytest.mark.parametrize(("name", "shape"), [("flat.nii", (12, 10)), ("volume.nii.gz", (10, 11, 12)),
                                              ("slab.nii.gz", (10, 11, 1)), ("series.nii.gz", (10, 11, 12, 3)),
                                              ("volume.npy", (10, 11, 12))])  # fmt: skip
def test_display_decoding_gives_what_ingest_reads_without_monai(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    import nibabel as nib

    array = np.random.default_rng(1).normal(100, 30, shape).astype(np.float32)
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, array)
    else:
        image = nib.Nifti1Image(array.astype(np.int16), np.diag([0.8, 0.8, 2.5, 1.0]))
        image.header.set_slope_inter(0.5, -10.0)  # the scaling applies in both paths
        nib.save(image, path)
    np.testing.assert_array_equal(read_image(path).array, load_image(path).array)
