"""Benchmark P1: one model per fusion variant on the paired PneumoniaMNIST × Symptom2Disease data, four test modes.

Selection (epoch, temperature, decision threshold) uses the validation split only; the test split is scored once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score

from diagnosis.benchmarks.baselines import BASELINES, fit_baseline, predict_baseline
from diagnosis.benchmarks.p1_data import P1Data, P1Split
from diagnosis.classify import ModelSpec, predict
from diagnosis.evaluation import expected_calibration_error
from diagnosis.features import ImagePreprocessing, TextEncoder, preprocess_image
from diagnosis.fusion import FUSIONS, FusionConfig, ModalitySpec
from diagnosis.ingest.images import LoadedImage
from diagnosis.training import FeatureTable, TrainConfig, fit

__all__ = ["LABELS", "MODES", "mode_view", "score_modes", "P1Config", "binary_metrics", "choose_threshold", "p1_tables", "run_p1"]

logger = logging.getLogger(__name__)

LABELS = ("normal", "pneumonia")
MODES = ("image", "text", "fused", "fused_missing50")


@dataclass(frozen=True)
class P1Config:
    """Benchmark settings (recorded in the JSON output)."""

    fusions: tuple[str, ...] = FUSIONS + BASELINES  # fusion variants and non-VAE baselines to train and score
    epochs: int = 30  # maximum epochs per model (selection on val)
    batch_size: int = 128  # cases per step
    image_size: int = 32  # 28 px images are resized onto this grid
    train_limit: int | None = None  # train on a seeded random subset of N cases (smoke tests); the file is class-ordered
    seed: int = 0  # model initialisation and shuffling


def _table(split: P1Split, encoder: TextEncoder, image: ImagePreprocessing) -> FeatureTable:
    pixels = np.stack([preprocess_image(LoadedImage(x[None].astype(np.float32), None), image) for x in split.images])
    n = len(split.labels)
    return FeatureTable(
        inputs={"image": pixels, "text": encoder.encode(split.texts)},
        masks={"image": np.ones(n, dtype=bool), "text": np.ones(n, dtype=bool)},
        labels=split.labels.astype(np.int64),
    )


def p1_tables(data: P1Data, encoder: TextEncoder, image: ImagePreprocessing, train_limit: int | None = None) -> dict[str, FeatureTable]:
    """Feature tables of the three splits (train optionally a ``default_rng(0)`` random subset of ``train_limit``)."""
    splits = dict(data.splits)
    if train_limit is not None and train_limit < len(splits["train"].labels):
        s = splits["train"]
        keep = np.sort(np.random.default_rng(0).choice(len(s.labels), train_limit, replace=False))
        splits["train"] = P1Split(s.images[keep], s.labels[keep], [s.texts[i] for i in keep])
    return {name: _table(split, encoder, image) for name, split in splits.items()}


def mode_view(table: FeatureTable, mode: str) -> FeatureTable:
    """The table as the mode sees it: a modality withheld, or the text withheld from half the cases."""
    masks = {m: v.copy() for m, v in table.masks.items()}
    if mode == "image":
        masks["text"][:] = False
    elif mode == "text":
        masks["image"][:] = False
    elif mode == "fused_missing50":
        half = np.random.default_rng(1).permutation(len(table))[: len(table) // 2]
        masks["text"][half] = False
    return FeatureTable(inputs=table.inputs, masks=masks, labels=table.labels)


def choose_threshold(labels: np.ndarray, p_positive: np.ndarray) -> float:
    """The decision threshold on P(pneumonia) that maximises validation accuracy."""
    candidates = np.unique(np.concatenate([p_positive, [0.5]]))
    accuracy = [((p_positive >= t).astype(int) == labels).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def binary_metrics(labels: np.ndarray, p_positive: np.ndarray, threshold: float) -> dict:
    """AUC, accuracy and macro-F1 at ``threshold``, ECE (15 bins on P(pneumonia)), recall per class."""
    predicted = (p_positive >= threshold).astype(int)
    return {
        "auc": float(roc_auc_score(labels, p_positive)),
        "accuracy": float((predicted == labels).mean()),
        "macro_f1": float(f1_score(labels, predicted, average="macro")),
        "ece": expected_calibration_error(p_positive, labels.astype(float), bins=15),
        "recall": {name: float((predicted[labels == c] == c).mean()) for c, name in enumerate(LABELS)},
        "threshold": threshold,
    }


def score_modes(
    probabilities: Callable[[FeatureTable], np.ndarray], tables: dict[str, FeatureTable], modes: Sequence[str] = MODES
) -> dict[str, dict]:
    """Test metrics per mode; each threshold is chosen on val in the same mode (``fused`` for missing50)."""
    out = {}
    for mode in modes:
        val_mode = "fused" if mode == "fused_missing50" else mode
        threshold = choose_threshold(tables["val"].labels, probabilities(mode_view(tables["val"], val_mode))[:, 1])
        out[mode] = binary_metrics(tables["test"].labels, probabilities(mode_view(tables["test"], mode))[:, 1], threshold)
    return out


def run_p1(
    tables: dict[str, FeatureTable], config: P1Config, device: torch.device,
    fusions: Sequence[str] | None = None, on_epoch: Callable[[str, dict], None] | None = None,
) -> dict:
    """Train and score every fusion variant.

    Returns:
        ``{"config": ..., "results": {fusion: {"seconds", "epochs", "best_epoch", "modes": {mode: metrics}}}}``.
    """
    image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
    modalities = ModalitySpec(image=image, vectors={"text": tables["train"].inputs["text"].shape[1]})
    results = {}
    for fusion in fusions or config.fusions:
        if fusion in BASELINES:
            started = time.perf_counter()
            baseline = fit_baseline(fusion, modalities, len(LABELS), tables["train"], tables["val"], config.epochs,
                                    config.batch_size, seed=config.seed, device=device)
            results[fusion] = {"seconds": round(time.perf_counter() - started, 1), "kind": "baseline",
                               "modes": score_modes(lambda t, b=baseline: predict_baseline(b, t, device), tables)}
            results[fusion]["seconds_per_epoch"] = None
            continue
        spec = ModelSpec(LABELS, modalities, FusionConfig(fusion=fusion))
        train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, patience=8)
        started = time.perf_counter()
        result = fit(spec, tables["train"], tables["val"], train_config, device,
                     on_epoch=(lambda r, f=fusion: on_epoch(f, r)) if on_epoch else None)
        results[fusion] = {
            "seconds": round(time.perf_counter() - started, 1),
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "seconds_per_epoch": round(result.seconds / max(len(result.history), 1), 2),
            "modes": score_modes(lambda t, m=result.model: predict(m, t, device, samples=1).probabilities, tables),
        }
        logger.info("P1 %s: fused AUC %.4f", fusion, results[fusion]["modes"]["fused"]["auc"])
    return {"config": asdict(config), "results": results}
