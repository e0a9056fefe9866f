"""Tests for diagnosis.synthetic: files, manifest, rates, splits, determinism and learnable signal."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.transforms import LoadImage
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from diagnosis.synthetic import DIAGNOSES, RARE_DIAGNOSIS, SyntheticConfig, generate_dataset, write_image
from diagnosis.synthetic.dataset import SPLITS, _assign_labels_and_splits

pytestmark = pytest.mark.filterwarnings("ignore:.*[Nn]v[Ii]mg[Cc]odec.*")

COLUMNS = ["case_id", "patient_id", "image", "text", "label", "split"]


def _read(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def data2d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], SyntheticConfig]:
    config = SyntheticConfig(cases=900, dims=2, image_size=32, seed=0)
    manifest = generate_dataset(tmp_path_factory.mktemp("syn2d"), config)
    return manifest, _read(manifest), config


@pytest.fixture(scope="module")
def data3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], SyntheticConfig]:
    config = SyntheticConfig(cases=60, dims=3, volume_size=24, voxel_spacing_mm=1.5, seed=3)
    manifest = generate_dataset(tmp_path_factory.mktemp("syn3d"), config)
    return manifest, _read(manifest), config


def test_manifest_columns_rows_and_ids(data2d: tuple[Path, list[dict[str, str]], SyntheticConfig]) -> None:
    manifest, rows, config = data2d
    assert manifest.name == "manifest.csv"
    with manifest.open(newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == COLUMNS
    assert len(rows) == config.cases
    assert len({r["case_id"] for r in rows}) == config.cases
    assert all(re.fullmatch(r"SYN-\d{6}", r["case_id"]) for r in rows)
    assert all(re.fullmatch(r"P-\d{5}", r["patient_id"]) for r in rows)
    assert {r["label"] for r in rows} == set(DIAGNOSES)
    assert any("," in r["text"] for r in rows)  # texts with commas survive the CSV round trip
    per_patient = Counter(r["patient_id"] for r in rows)
    assert max(per_patient.values()) == 2
    assert sum(c == 2 for c in per_patient.values()) / len(per_patient) > 0.05  # some patients have two visits
    splits_of = {p: {r["split"] for r in rows if r["patient_id"] == p} for p, c in per_patient.items() if c == 2}
    assert all(len(s) == 1 for s in splits_of.values())  # a patient never straddles splits


def test_2d_images_exist_and_load_with_monai(data2d: tuple[Path, list[dict[str, str]], SyntheticConfig]) -> None:
    manifest, rows, config = data2d
    with_image = [r for r in rows if r["image"]]
    assert all(not Path(r["image"]).is_absolute() and r["image"].startswith("images/") for r in with_image)
    assert all((manifest.parent / r["image"]).is_file() for r in with_image)
    img = LoadImage(image_only=True)(str(manifest.parent / with_image[0]["image"]))
    assert tuple(img.shape) == (config.image_size, config.image_size)
    with Image.open(manifest.parent / with_image[0]["image"]) as pil:
        assert pil.mode == "L" and pil.size == (config.image_size, config.image_size)


def test_3d_volumes_load_with_spacing(data3d: tuple[Path, list[dict[str, str]], SyntheticConfig]) -> None:
    manifest, rows, config = data3d
    paths = [manifest.parent / r["image"] for r in rows if r["image"]]
    assert paths and all(p.name.endswith(".nii.gz") and p.is_file() for p in paths)
    vol = LoadImage(image_only=True)(str(paths[0]))
    assert tuple(vol.shape) == (config.volume_size,) * 3
    spacing = np.linalg.norm(np.asarray(vol.affine)[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, [config.voxel_spacing_mm] * 3)
    values = np.asarray(vol)
    assert values.min() < -900 and values.max() > 0  # air outside / lungs, soft tissue and bone inside


def test_rates_splits_and_rare_class(data2d: tuple[Path, list[dict[str, str]], SyntheticConfig]) -> None:
    _, rows, config = data2d
    n = len(rows)
    assert not any(not r["text"] and not r["image"] for r in rows)
    assert abs(sum(not r["text"] for r in rows) / n - config.missing_text_rate) < 0.02
    assert abs(sum(not r["image"] for r in rows) / n - config.missing_image_rate) < 0.02
    counts = Counter(r["label"] for r in rows)
    assert 0 < counts[RARE_DIAGNOSIS] / n <= 0.05
    common = [counts[d] for d in DIAGNOSES if d != RARE_DIAGNOSIS]
    assert max(common) - min(common) <= 1
    split_share = Counter(r["split"] for r in rows)
    assert abs(split_share["train"] / n - 0.70) < 0.03 and abs(split_share["test"] / n - 0.15) < 0.03
    for split in SPLITS:
        assert {r["label"] for r in rows if r["split"] == split} == set(DIAGNOSES)


@settings(max_examples=40, deadline=None)
@given(cases=st.integers(min_value=60, max_value=5000), seed=st.integers(min_value=0, max_value=2**16))
def test_rare_class_in_every_split(cases: int, seed: int) -> None:
    labels, splits = _assign_labels_and_splits(np.random.default_rng(seed), SyntheticConfig(cases=cases))
    rare_splits = Counter(s for label, s in zip(labels, splits, strict=True) if label == RARE_DIAGNOSIS)
    assert 0.02 <= sum(rare_splits.values()) / cases <= 0.05
    assert all(rare_splits[s] >= 1 for s in SPLITS)


def test_determinism(tmp_path: Path) -> None:
    for dims in (2, 3):
        config = SyntheticConfig(cases=24, dims=dims, image_size=24, volume_size=16, seed=7)
        a = generate_dataset(tmp_path / f"a{dims}", config)
        b = generate_dataset(tmp_path / f"b{dims}", config)
        c = generate_dataset(tmp_path / f"c{dims}", SyntheticConfig(cases=24, dims=dims, image_size=24, seed=8))
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
        rows = [r for r in _read(a) if r["image"]]
        for r in rows:
            assert (a.parent / r["image"]).read_bytes() == (b.parent / r["image"]).read_bytes()
        loader = LoadImage(image_only=True)
        first = rows[0]["image"]
        np.testing.assert_array_equal(np.asarray(loader(str(a.parent / first))), loader(str(b.parent / first)))


def test_pixels_carry_signal(data2d: tuple[Path, list[dict[str, str]], SyntheticConfig]) -> None:
    manifest, rows, config = data2d
    factor = config.image_size // 16

    def features(split: str) -> tuple[np.ndarray, list[str]]:
        chosen = [r for r in rows if r["split"] == split and r["image"]]
        arrays = [np.asarray(Image.open(manifest.parent / r["image"]), dtype=np.float32) / 255 for r in chosen]
        small = [a.reshape(16, factor, 16, factor).mean(axis=(1, 3)).ravel() for a in arrays]  # (256,)
        return np.stack(small), [r["label"] for r in chosen]

    x_train, y_train = features("train")
    x_test, y_test = features("test")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(x_train, y_train)
    assert model.score(x_test, y_test) > 0.6  # chance is ~0.19


def test_text_informative_but_imperfect(data2d: tuple[Path, list[dict[str, str]], SyntheticConfig]) -> None:
    _, rows, _ = data2d
    train = [r for r in rows if r["split"] == "train" and r["text"]]
    test = [r for r in rows if r["split"] == "test" and r["text"]]
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000))
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    accuracy = model.score([r["text"] for r in test], [r["label"] for r in test])
    assert 0.45 < accuracy < 0.98


def test_invalid_config_and_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dims"):
        SyntheticConfig(dims=4)
    with pytest.raises(ValueError, match="missing_text_rate"):
        SyntheticConfig(missing_text_rate=0.7, missing_image_rate=0.5)
    with pytest.raises(ValueError, match="nii.gz"):
        write_image(np.zeros((8, 8, 8), dtype=np.int16), tmp_path / "volume.png")
