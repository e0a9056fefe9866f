"""Benchmark P1 data: PneumoniaMNIST images paired by class with Symptom2Disease texts (``shared/benchmarks.md``).

The pairing imitates a clinic where the history helps but sometimes misleads: no real patient has both an image
and a text. Every random choice follows the protocol's seeds, so runs are comparable from one change to the next.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["OTHER_LABELS", "P1Data", "P1Split", "load_p1", "rare_subsample", "read_symptom_texts"]

SPLITS = ("train", "val", "test")
OTHER_LABELS = (
    "Common Cold", "Bronchial Asthma", "allergy", "Dengue", "Malaria", "Typhoid", "gastroesophageal reflux disease",
)
POSITIVE_TEXT_LABEL = "Pneumonia"
OWN_CLASS_PROBABILITY = 0.75


@dataclass(frozen=True)
class P1Split:
    """One split: ``images`` ``(N, 28, 28)`` uint8, ``labels`` ``(N,)`` (1 = pneumonia), paired ``texts``."""

    images: np.ndarray
    labels: np.ndarray
    texts: list[str]


@dataclass(frozen=True)
class P1Data:
    """The three paired splits and the text pools they drew from."""

    splits: dict[str, P1Split]
    pools: dict[str, dict[str, list[str]]]  # split -> {"pneumonia": [...], "other": [...]}


def read_symptom_texts(csv_path: Path) -> list[tuple[str, str]]:
    """``(label, text)`` rows of ``symptom2disease.csv`` in file order, exact duplicate texts dropped (key: stripped,
    lower-cased text; the first kept), texts stripped."""
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = row["text"].strip().lower()
            if key not in seen:
                seen.add(key)
                rows.append((row["label"], row["text"].strip()))
    return rows


def _text_pools(csv_path: Path) -> dict[str, dict[str, list[str]]]:
    """Deduplicated PNEUMONIA / OTHER text pools, each split 60/20/20 after a ``default_rng(0)`` shuffle."""
    pools: dict[str, list[str]] = {"pneumonia": [], "other": []}
    for label, text in read_symptom_texts(csv_path):
        if label == POSITIVE_TEXT_LABEL:
            pools["pneumonia"].append(text)
        elif label in OTHER_LABELS:
            pools["other"].append(text)
    out: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for name, texts in pools.items():
        order = np.random.default_rng(0).permutation(len(texts))  # one fresh default_rng(0) per pool
        n_train, n_val = int(0.6 * len(texts)), int(0.2 * len(texts))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        for split, index in parts.items():
            out[split][name] = [texts[i] for i in index]
    return out


def load_p1(data_dir: str | Path) -> P1Data:
    """Build the P1 pairing from ``pneumoniamnist.npz`` and ``symptom2disease.csv`` in ``data_dir``.

    Raises:
        FileNotFoundError: A data file is missing.
    """
    data_dir = Path(data_dir)
    for name in ("pneumoniamnist.npz", "symptom2disease.csv"):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"{name} not found in {data_dir}; point --data at the shared data folder")
    pools = _text_pools(data_dir / "symptom2disease.csv")
    rng = np.random.default_rng(0)
    splits = {}
    with np.load(data_dir / "pneumoniamnist.npz") as npz:
        for split in SPLITS:  # train, then val, then test, images in file order
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"].reshape(-1).astype(np.int64)
            texts = []
            for label in labels:
                own = "pneumonia" if label == 1 else "other"
                pool = pools[split][own if rng.random() < OWN_CLASS_PROBABILITY else ("other" if own == "pneumonia" else "pneumonia")]
                texts.append(pool[int(rng.integers(len(pool)))])
            splits[split] = P1Split(images=images, labels=labels, texts=texts)
    return P1Data(splits=splits, pools=pools)


def rare_subsample(split: P1Split, fraction: float = 0.05, seed: int = 2) -> P1Split:
    """P2: keep every pneumonia case and ``round(fraction * #pneumonia)`` normal cases chosen with ``default_rng(seed)``."""
    positives = np.flatnonzero(split.labels == 1)
    negatives = np.flatnonzero(split.labels == 0)
    keep_neg = np.random.default_rng(seed).choice(negatives, size=round(fraction * len(positives)), replace=False)
    keep = np.sort(np.concatenate([positives, keep_neg]))
    return P1Split(split.images[keep], split.labels[keep], [split.texts[i] for i in keep])
