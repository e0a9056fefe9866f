"""Image checks: content sniffing against the extension, 4D NIfTI policy, absurd sizes, dimensionality, truncation."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from diagnosis.ingest import ImageError, load_image
from diagnosis.ingest.formats import sniff_format


def _noise(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).random(shape).astype(np.float32)


def test_sniffing_recognises_every_format(tmp_path: Path) -> None:
    Image.fromarray((_noise((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray((_noise((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "a.jpg")
    nib.save(nib.Nifti1Image(_noise((9, 9, 9)), np.eye(4)), tmp_path / "a.nii")
    nib.save(nib.Nifti1Image(_noise((9, 9, 9)), np.eye(4)), tmp_path / "a.nii.gz")
    np.save(tmp_path / "a.npy", _noise((9, 9)))
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"hello"))
    found = {p.name: sniff_format(p) for p in tmp_path.iterdir()}
    assert found == {"a.png": "png", "a.jpg": "jpeg", "a.nii": "nifti", "a.nii.gz": "nifti", "a.npy": "npy", "a.gz": "gzip"}


def test_four_d_nifti_keeps_the_first_volume(tmp_path: Path) -> None:
    series = _noise((10, 11, 12, 3))
    nib.save(nib.Nifti1Image(series, np.eye(4)), tmp_path / "t.nii.gz")
    loaded = load_image(tmp_path / "t.nii.gz")
    assert loaded.array.shape == (1, 10, 11, 12)
    assert np.allclose(loaded.array[0], series[..., 0])


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("png-as-nifti.nii.gz", lambda p: Image.fromarray(np.eye(16, dtype=np.uint8) * 200).save(p, format="PNG"), "extension says nifti but the content is png"),
        ("text.png", lambda p: p.write_text("not an image at all"), "not a recognised image format"),
        ("trunc.nii.gz", lambda p: p.write_bytes(_gz_nifti(p)[:300]), "truncated"),
        ("line.npy", lambda p: np.save(p, _noise((64,))), "wrong dimensionality"),
        ("five.nii", lambda p: nib.save(nib.Nifti1Image(_noise((9, 9, 9, 2, 2)), np.eye(4)), p), "at most 4"),
        ("huge.nii", lambda p: p.write_bytes(_huge_header()), "exceeds the limit"),
        ("huge.png", lambda p: p.write_bytes(_huge_png()), "exceeds the limit"),
        ("trunc.png", lambda p: p.write_bytes(_png_bytes(p)[:-40]), "truncated"),
        ("inf.npy", lambda p: np.save(p, np.where(np.eye(16) > 0, np.inf, 1.0)), "NaN or infinite"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path: Path, name: str, make, reason: str) -> None:  # noqa: ANN001
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageError, match=reason):
        load_image(path)


def _gz_nifti(path: Path) -> bytes:
    nib.save(nib.Nifti1Image(_noise((20, 20, 20)), np.eye(4)), path)
    return path.read_bytes()


def _huge_header() -> bytes:
    """A NIfTI header declaring 1000^3 voxels, without the voxels: caught before any decoding."""
    header = nib.Nifti1Header()
    header.set_data_shape((1000, 1000, 1000))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4


def _huge_png() -> bytes:
    """A PNG declaring 12000 x 12000 pixels (over the limit, under Pillow's own bomb error) with no pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 12_000, 12_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def _png_bytes(path: Path) -> bytes:
    Image.fromarray((_noise((64, 64)) * 255).astype(np.uint8)).save(path)
    return path.read_bytes()


def test_window_intensity_preprocessing_and_old_specs_load() -> None:
    from diagnosis.features.image import ImagePreprocessing, preprocess_image
    from diagnosis.ingest import LoadedImage

    ct = LoadedImage(array=np.linspace(-1000, 1000, 32 * 32, dtype=np.float32).reshape(1, 32, 32), spacing=None)
    window = preprocess_image(ct, ImagePreprocessing(size=32, intensity="window", window_center=0, window_width=200))
    assert window.min() == 0.0 and window.max() == 1.0 and 0.05 < float((window == 1.0).mean()) < 0.5
    assert ImagePreprocessing(**{"spatial_dims": 2, "size": 32}).intensity == "percentile"  # older checkpoints
    with pytest.raises(ValueError, match="window"):
        ImagePreprocessing(intensity="hu")


@pytest.mark.parametrize(("mode", "suffix"), [("L", "png"), ("RGB", "png"), ("RGBA", "png"), ("LA", "png"),
                                              ("I;16", "png"), ("P", "png"), ("1", "png"), ("L", "jpg"), ("RGB", "jpg")])  # fmt: skip
def test_pictures_load_as_monai_loads_them(tmp_path: Path, mode: str, suffix: str) -> None:
    """PNG / JPEG go to Pillow directly; the array, axes and spacing are what MONAI's LoadImage gives."""
    from diagnosis.ingest.formats.monai_reader import _loader, monai_spacing
    from diagnosis.ingest.images import _finish

    rng = np.random.default_rng(1)
    if mode == "I;16":
        picture = Image.fromarray(rng.integers(0, 65535, (40, 30), dtype=np.uint16))
    else:
        picture = Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f"picture.{suffix}"
    picture.save(path)
    loaded = load_image(path)
    monai = _loader()(str(path))
    expected = _finish(np.asarray(monai, dtype=np.float32), monai_spacing(monai), path)
    assert loaded.array.shape == expected.array.shape == (1, 30, 40)  # x (width) first, as MONAI orders it
    np.testing.assert_array_equal(loaded.array, expected.array)
    assert loaded.spacing == expected.spacing == (1.0, 1.0) and loaded.affine is None
