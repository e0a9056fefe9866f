"""The image-format registry: names, signatures, writers and readers agree, format by format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diagnosis.generation import write_decoded_image
from diagnosis.ingest import ImageError, load_image
from diagnosis.ingest.formats import FORMATS, SUFFIXES, format_for, format_named, read_image, sniff_format, write_image


def test_every_suffix_names_one_format_and_every_format_is_named() -> None:
    assert {fmt.name for fmt in FORMATS} == {"png", "jpeg", "npy", "dicom", "nifti"}
    assert {s: f.name for s, f in SUFFIXES.items()} == {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".npy": "npy",
                                                         ".dcm": "dicom", ".nii": "nifti", ".nii.gz": "nifti"}
    assert format_for("A/B.NII.GZ").name == "nifti" and format_named("jpeg") is format_for("x.jpg")
    with pytest.raises(ImageError, match="unsupported image type '.bmp'"):
        format_for("x.bmp")
    with pytest.raises(ImageError, match="unknown image format 'bmp'"):
        format_named("bmp")


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
        assert decoded.spacing == (2.0, 2.0, 2.0)
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


@pytest.mark.parametrize("shape", [(1, 16, 12), (1, 8, 9, 10)])
def test_a_decoded_image_reads_back_as_the_grid_the_model_decoded(tmp_path: Path, shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).random(shape).astype(np.float32)
    path, fmt = write_decoded_image(pixels, tmp_path / "case-reconstruction")
    assert (path.name, fmt) == (("case-reconstruction.png", "png") if len(shape) == 3 else
                                ("case-reconstruction.nii.gz", "nifti"))  # fmt: skip
    scale = 255 if fmt == "png" else 1000
    np.testing.assert_allclose(load_image(path).array / scale, pixels, atol=0.5 / scale + 1e-6)
    with pytest.raises(ValueError, match="decoded image"):
        write_decoded_image(np.zeros((1, 4)), tmp_path / "x")
