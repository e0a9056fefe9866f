"""Write a synthetic multimodal dataset to disk: images plus a ``manifest.csv``.

Layout under ``out_dir``::

    manifest.csv            case_id,patient_id,image,text,label,split
    images/SYN-000001.png   (2D)  or  images/SYN-000001.nii.gz  (3D)

``image`` is relative to the manifest's folder and empty when the image is missing; ``text`` is empty when the text
is missing (never both). Splits are stratified by label and grouped by patient (a patient's cases share a split).

Examples:
    >>> import tempfile
    >>> manifest = generate_dataset(tempfile.mkdtemp(), SyntheticConfig(cases=12, image_size=32))
    >>> manifest.name
    'manifest.csv'
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diagnosis.synthetic.classes import DIAGNOSES, RARE_DIAGNOSIS
from diagnosis.synthetic.images import render_image, write_image
from diagnosis.synthetic.texts import generate_text

__all__ = ["MANIFEST_COLUMNS", "SPLITS", "SyntheticConfig", "generate_dataset"]

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS: tuple[str, ...] = ("case_id", "patient_id", "image", "text", "label", "split")
"""Column order of ``manifest.csv``."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Split names, in the order they are filled."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Size, modality and difficulty of a synthetic dataset."""

    cases: int = 600  # number of cases (manifest rows)
    dims: int = 2  # 2 -> PNG radiographs, 3 -> NIfTI volumes (.nii.gz)
    seed: int = 0  # everything is a deterministic function of this seed
    image_size: int = 64  # side length of 2D images in pixels
    missing_text_rate: float = 0.10  # fraction of cases without a text
    missing_image_rate: float = 0.05  # fraction of cases without an image (disjoint from missing texts)
    volume_size: int = 32  # side length of 3D volumes in voxels
    voxel_spacing_mm: float = 1.5  # isotropic voxel spacing written to the NIfTI affine
    rare_fraction: float = 0.035  # share of the rare class (pneumothorax); clamped to 2-5 %
    val_fraction: float = 0.15  # share of each class in the validation split
    test_fraction: float = 0.15  # share of each class in the test split
    repeat_patient_rate: float = 0.10  # fraction of cases that are a patient's second visit
    text_confusion_rate: float = 0.15  # fraction of texts drawn mostly from a wrong diagnosis

    def __post_init__(self) -> None:
        """Validate ranges so that a bad config fails before any file is written."""
        if self.cases < 1:
            raise ValueError(f"cases must be >= 1, got {self.cases}.")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 (PNG) or 3 (NIfTI), got {self.dims}.")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}.")
        if min(self.image_size, self.volume_size) < 8:
            raise ValueError("image_size and volume_size must be >= 8 pixels.")
        rates = (self.missing_text_rate, self.missing_image_rate, self.repeat_patient_rate, self.text_confusion_rate)
        if not all(0.0 <= r <= 1.0 for r in rates) or self.missing_text_rate + self.missing_image_rate > 1.0:
            raise ValueError("Rates must lie in [0, 1] and missing_text_rate + missing_image_rate must be <= 1.")
        if not 0.02 <= self.rare_fraction <= 0.05:
            raise ValueError(f"rare_fraction must lie in [0.02, 0.05], got {self.rare_fraction}.")
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction and test_fraction must be >= 0 and sum to less than 1.")
        if self.voxel_spacing_mm <= 0:
            raise ValueError(f"voxel_spacing_mm must be positive, got {self.voxel_spacing_mm}.")


def _label_counts(rng: np.random.Generator, config: SyntheticConfig) -> dict[str, int]:
    """Cases per label: the rare class gets ``rare_fraction`` (>= 3 when >= 60 cases), the rest share evenly."""
    n = config.cases
    rare = min(max(round(config.rare_fraction * n), 3 if n >= 60 else 1), int(0.05 * n))
    common = [name for name in DIAGNOSES if name != RARE_DIAGNOSIS]
    base, extra = divmod(n - rare, len(common))
    lucky = set(rng.choice(len(common), size=extra, replace=False).tolist())
    counts = {name: base + (i in lucky) for i, name in enumerate(common)}
    counts[RARE_DIAGNOSIS] = rare
    return counts


def _split_sizes(count: int, config: SyntheticConfig) -> tuple[int, int, int]:
    """Train / val / test sizes of one class; every split gets >= 1 case when the class has >= 3."""
    n_val, n_test = round(config.val_fraction * count), round(config.test_fraction * count)
    if count >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    return count - n_val - n_test, n_val, n_test


def _assign_labels_and_splits(rng: np.random.Generator, config: SyntheticConfig) -> tuple[list[str], list[str]]:
    """Shuffled per-case labels and splits, stratified by label."""
    pairs: list[tuple[str, str]] = []
    for label, count in _label_counts(rng, config).items():
        for split, size in zip(SPLITS, _split_sizes(count, config), strict=True):
            pairs.extend([(label, split)] * size)
    order = rng.permutation(len(pairs))
    return [pairs[i][0] for i in order], [pairs[i][1] for i in order]


def _assign_patients(rng: np.random.Generator, splits: list[str], rate: float) -> list[str]:
    """Patient ids; about ``rate`` of cases are a second visit of a patient in the same split."""
    groups: list[list[int]] = []
    for split in SPLITS:
        members = [i for i, s in enumerate(splits) if s == split]
        members = [members[i] for i in rng.permutation(len(members))]
        pairs = min(round(rate * len(members)), len(members) // 2)
        groups += [members[2 * k : 2 * k + 2] for k in range(pairs)]
        groups += [[i] for i in members[2 * pairs :]]
    width = max(5, len(str(len(groups))))
    patients = [""] * len(splits)
    for number, g in enumerate(rng.permutation(len(groups)), start=1):
        for case in groups[g]:
            patients[case] = f"P-{number:0{width}d}"
    return patients


def _assign_missing(rng: np.random.Generator, config: SyntheticConfig) -> tuple[set[int], set[int]]:
    """Disjoint sets of case indices without text and without image."""
    n = config.cases
    n_text, n_image = round(config.missing_text_rate * n), round(config.missing_image_rate * n)
    order = rng.permutation(n)
    return set(order[:n_text].tolist()), set(order[n_text : n_text + n_image].tolist())


def generate_dataset(out_dir: str | Path, config: SyntheticConfig = SyntheticConfig()) -> Path:
    """Generate a synthetic multimodal dataset (images + symptom texts + labels) as real files.

    Args:
        out_dir: Folder to write into (created if needed). Existing files of the same names are overwritten.
        config: Dataset size, modality and difficulty.

    Returns:
        Path of the written ``manifest.csv`` (image paths inside it are relative to its folder).

    Raises:
        OSError: If ``out_dir`` cannot be created or written.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    labels, splits = _assign_labels_and_splits(rng, config)
    patients = _assign_patients(rng, splits, config.repeat_patient_rate)
    no_text, no_image = _assign_missing(rng, config)
    size = config.image_size if config.dims == 2 else config.volume_size
    suffix = ".png" if config.dims == 2 else ".nii.gz"
    width = max(6, len(str(config.cases)))
    rows: list[dict[str, str]] = []
    for index, (label, split, patient) in enumerate(zip(labels, splits, patients, strict=True)):
        case_id = f"SYN-{index + 1:0{width}d}"
        image = ""
        if index not in no_image:  # each case has its own streams, so a missing modality shifts nothing else
            array = render_image(label, np.random.default_rng([config.seed, index, 0]), config.dims, size)
            image = f"images/{case_id}{suffix}"
            write_image(array, out / image, config.voxel_spacing_mm)
        text = ""
        if index not in no_text:
            text = generate_text(label, np.random.default_rng([config.seed, index, 1]), config.text_confusion_rate)
        rows.append(dict(zip(MANIFEST_COLUMNS, (case_id, patient, image, text, label, split), strict=True)))
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    logger.info(
        "Wrote %d synthetic %dD cases (%d without text, %d without image) to %s in %.1f s",
        config.cases,
        config.dims,
        len(no_text),
        len(no_image),
        out,
        time.perf_counter() - start,
    )
    return manifest
