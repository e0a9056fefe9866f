"""DICOM decoding policy (issue #13, item 14): colour, JPEG-Lossless / JPEG-LS, enhanced and classic multi-frame, and
pydicom's own test files, each of which either loads or is rejected with an actionable reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from diagnosis.ingest import ImageError, load_image, probe_image
from tests.diagnosis.ingest.test_deid import base_dataset, item, write

TEST_FILES = Path(DATA_ROOT) / "test_files"  # the files shipped in the wheel; get_testdata_files() would download
MESSAGE_HINTS = ("re-export", "export", "point the manifest", "put each", "remove", "each side", "limit", "split",
                 "check", "use one of", "accepted")


def bundled() -> list[Path]:
    return sorted(p for p in TEST_FILES.rglob("*") if p.is_file())


def test_every_bundled_pydicom_file_loads_or_is_rejected_with_a_reason(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    outcomes: dict[str, str] = {}
    for index, source in enumerate(bundled()):
        copy = tmp_path / f"{index:03d}-{source.stem}.dcm"  # every file through the DICOM reader
        shutil.copyfile(source, copy)
        try:
            image = load_image(copy)
        except ImageError as error:
            message = str(error)
            assert copy.name in message and any(h in message for h in MESSAGE_HINTS), message
            assert "Traceback" not in message and str(TEST_FILES) not in message, message
            outcomes[source.name] = "rejected"
        else:
            assert image.array.ndim in (3, 4) and np.isfinite(image.array).all(), source.name
            outcomes[source.name] = "loaded"
    for folder in sorted(p for p in TEST_FILES.rglob("*") if p.is_dir()):  # the DICOMDIR trees as series folders
        try:
            load_image(folder)
        except ImageError as error:
            assert folder.name in str(error)
    for name in ("MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_jpeg_gdcm.dcm",  # JPEG-LS, -Lossless
                 "SC_rgb_jls_lossy_line.dcm", "examples_rgb_color.dcm", "SC_ybr_full_422_uncompressed.dcm",  # colour
                 "examples_palette.dcm", "rtdose.dcm", "examples_ybr_color.dcm", "liver_1frame.dcm", "JPEG2000.dcm"):
        assert outcomes[name] == "loaded", name
    assert sum(v == "loaded" for v in outcomes.values()) >= 50
    assert capfd.readouterr().err == ""  # pydicom said nothing on stderr


def test_jpeg_ls_and_jpeg_lossless_decode_to_the_uncompressed_pixels() -> None:
    plain = load_image(TEST_FILES / "MR_small.dcm").array
    assert np.array_equal(load_image(TEST_FILES / "MR_small_jpeg_ls_lossless.dcm").array, plain)
    assert np.array_equal(load_image(TEST_FILES / "MR_small_RLE.dcm").array, plain)
    rgb = load_image(TEST_FILES / "SC_rgb_rle.dcm").array
    assert np.array_equal(load_image(TEST_FILES / "SC_rgb_jpeg_gdcm.dcm").array, rgb)  # JPEG Lossless, SV1


def test_colour_becomes_the_channel_average() -> None:
    ds = pydicom.dcmread(TEST_FILES / "examples_rgb_color.dcm")
    image = load_image(TEST_FILES / "examples_rgb_color.dcm")
    expected = ds.pixel_array.astype(np.float32).mean(axis=-1).T  # (columns, rows), as for grayscale
    assert image.array.shape == (1, ds.Columns, ds.Rows) and np.allclose(image.array[0], expected)


def enhanced_ct(path: Path, positions: list[float], intercepts: list[float]) -> np.ndarray:
    """An enhanced CT multi-frame file: per-frame positions and rescale, shared orientation and pixel measures."""
    frames = len(positions)
    pixels = np.stack([np.full((12, 10), 10 * k, np.uint16) + np.arange(10, dtype=np.uint16) for k in range(frames)])
    ds = base_dataset(12, 10)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    ds.NumberOfFrames, ds.PixelData = frames, pixels.tobytes()
    shared = item(PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
                  PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.8, 0.6], SliceThickness=2.0)]))
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence([
        item(PlanePositionSequence=Sequence([item(ImagePositionPatient=[0.0, 0.0, z])]),
             PixelValueTransformationSequence=Sequence([item(RescaleSlope=1, RescaleIntercept=b)]))
        for z, b in zip(positions, intercepts, strict=True)])
    ds.FrameOfReferenceUID = generate_uid()
    write(ds, path)
    return pixels


def test_enhanced_multiframe_ct_becomes_a_volume_in_slice_order(tmp_path: Path) -> None:
    positions, intercepts = [6.0, 0.0, 9.0, 3.0, 12.0, 15.0, 18.0, 21.0], [-1000.0, -1024.0, 0, 5, 7, 9, 11, 13]
    pixels = enhanced_ct(tmp_path / "enhanced.dcm", positions, intercepts)
    image = load_image(tmp_path / "enhanced.dcm")
    assert image.array.shape == (1, 10, 12, 8) and image.spacing == pytest.approx((0.6, 0.8, 3.0))
    order = np.argsort(positions)
    for slot, frame in enumerate(order):
        assert np.allclose(image.array[0, :, :, slot], pixels[frame].T + intercepts[frame])
    assert image.affine is not None and probe_image(tmp_path / "enhanced.dcm").shape == (10, 12, 8)


def test_frames_at_one_position_are_rejected_with_the_reason(tmp_path: Path) -> None:
    enhanced_ct(tmp_path / "phases.dcm", [0.0, 0.0, 3.0, 3.0, 6.0, 6.0, 9.0, 9.0], [0.0] * 8)
    with pytest.raises(ImageError, match="8 frames lie at 4 distinct positions.*one stack per file"):
        load_image(tmp_path / "phases.dcm")


def test_frames_without_positions_are_stacked_in_stored_order(tmp_path: Path) -> None:
    ds = base_dataset(12, 10)
    pixels = (np.arange(9 * 12 * 10, dtype=np.uint16) % 97).reshape(9, 12, 10)
    ds.NumberOfFrames, ds.PixelData = 9, pixels.tobytes()
    image = load_image(write(ds, tmp_path / "cine.dcm"))
    assert image.array.shape == (1, 10, 12, 9) and image.spacing is None
    assert np.allclose(image.array[0], pixels.transpose(2, 1, 0))


def test_colour_slices_of_a_series_are_averaged(tmp_path: Path) -> None:
    (tmp_path / "series").mkdir()
    series = generate_uid()
    for z in range(8):
        ds: Dataset = base_dataset(12, 10)
        ds.SeriesInstanceUID = series
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = (np.arange(12 * 10 * 3) % 200 + z).astype(np.uint8).tobytes()
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, float(z)], [1, 0, 0, 0, 1, 0]
        write(ds, tmp_path / "series" / f"s{z}.dcm")
    image = load_image(tmp_path / "series")
    assert image.array.shape == (1, 10, 12, 8)
    first = (np.arange(12 * 10 * 3) % 200).reshape(12, 10, 3).mean(axis=-1).T
    assert np.allclose(image.array[0, :, :, 0], first)
