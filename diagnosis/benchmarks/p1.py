"""Benchmark P1: one model per fusion variant on the paired PneumoniaMNIST × Symptom2Disease data, four test modes.

Selection (epoch, temperature, decision threshold) uses the validation split only; the test split is scored once.
The supervised image stage is trained once and shared by every fusion variant; its classifier alone is the ``cnn``
row (image mode only), so the report shows what fusion adds to the same image encoder.

The ``graph`` row is the graph classifier (:mod:`diagnosis.classify.graph`) over the ``poe`` model of the same run
(trained for it when ``poe`` is not a row itself): what diagnosing a case with its nearest training cases adds.

The decision threshold maximises the balanced accuracy (Youden's J) on val: unlike the accuracy-maximising one it
does not depend on the validation prevalence, which differs from test's here (74 % against 62.5 % pneumonia).
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
from diagnosis.classify import ModelSpec, class_prevalence, predict, shift_prior
from diagnosis.evaluation import expected_calibration_error
from diagnosis.features import FeatureTable, ImagePreprocessing, TextEncoder, preprocess_image
from diagnosis.features.lexical import LEXICAL_INPUT, LexicalConfig, LexicalReader, fit_lexical_reader
from diagnosis.fusion import FUSIONS, FusionConfig, ModalitySpec
from diagnosis.ingest.images import LoadedImage
from diagnosis.training import FitResult, TrainConfig, fit
from diagnosis.training.graph_stage import fit_graph
from diagnosis.training.image_stage import ImageStage, ImageStageConfig, train_image_encoder
from diagnosis.training.text_stage import SECONDS_PER_TEXT_EPOCH, TextStageConfig

__all__ = ["CNN", "GRAPH", "LABELS", "MODES", "P1Config", "binary_metrics", "choose_threshold", "estimate_seconds", "limit_train",
           "mode_view", "p1_tables", "prevalence_report", "run_p1", "score_modes"]

logger = logging.getLogger(__name__)

LABELS = ("normal", "pneumonia")
MODES = ("image", "text", "fused", "fused_missing50")
CNN = "cnn"  # the row of the supervised image encoder alone
GRAPH = "graph"  # the row of the graph classifier over the poe model
GRAPH_BASE = "poe"
GRAPH_SECONDS = 90.0  # upper bound of one graph classifier's training at P1's size, for the estimate
# Seconds per training sample and epoch on this project's 2-core CPU (32-px grid), for the estimate printed up front
# (image and poe as measured on 2026-12-03: 2.2e-3 and 3.4e-3; the others from earlier runs).
SECONDS_PER_SAMPLE_EPOCH = {"image": 2.4e-3, "poe": 3.5e-3, "moe": 3.0e-3, "mopoe": 4.5e-3, "concat": 2.6e-3,
                            "ae": 2.6e-3, "stacked_ae": 3.0e-3, "sparse_ae": 2.6e-3,
                            "late": 3.5e-3, "attention": 3.5e-3, "mmae": 5.0e-3}

@dataclass(frozen=True)
class P1Config:
    """Benchmark settings (recorded in the JSON output)."""

    fusions: tuple[str, ...] = (CNN, "poe")  # rows: "cnn", fusion variants (FUSIONS), "graph", baselines (BASELINES)
    epochs: int = 30  # maximum epochs per fusion model (selection on val)
    batch_size: int = 128  # cases per step of the fusion models
    image_size: int = 32  # 28 px images are resized onto this grid (the product's default grid for 28 px)
    image_epochs: int = ImageStageConfig.epochs  # supervised image stage (0: none; the image net trains in the VAE)
    image_members: int = FusionConfig.image_members  # image networks trained by the stage (an ensemble)
    text_epochs: int = TextStageConfig.epochs  # text fine-tuning before the tables are built (0: frozen embeddings)
    train_limit: int | None = None  # train on a seeded random subset of N cases (smoke tests); the file is class-ordered
    seed: int = 0  # model initialisation and shuffling
    lexical: bool = LexicalConfig.enabled  # the lexical reader of the texts, stacked on val (as `diagnosis train`)
    prior: float | None = None  # deployment prevalence of pneumonia: test probabilities shifted from val's to it

    def __post_init__(self) -> None:
        unknown = set(self.fusions) - {CNN, GRAPH, *FUSIONS, *BASELINES}
        if unknown:
            raise ValueError(f"unknown P1 row(s) {sorted(unknown)}; choose from {CNN}, {GRAPH}, "
                             f"{', '.join(FUSIONS + BASELINES)}")
        if self.prior is not None and not 0 < self.prior < 1:
            raise ValueError(f"prior must be a prevalence strictly between 0 and 1, got {self.prior}")


def _table(split: P1Split, encoder: TextEncoder, image: ImagePreprocessing, lexical: LexicalReader | None) -> FeatureTable:
    pixels = np.stack([preprocess_image(LoadedImage(x[None].astype(np.float32), None), image) for x in split.images])
    n = len(split.labels)
    inputs = {"image": pixels, "text": encoder.encode(split.texts)}
    if lexical is not None:
        inputs[LEXICAL_INPUT] = lexical.evidence(split.texts)
    return FeatureTable(inputs=inputs, masks={"image": np.ones(n, dtype=bool), "text": np.ones(n, dtype=bool)},
                        labels=split.labels.astype(np.int64))


def limit_train(data: P1Data, train_limit: int | None) -> P1Data:
    """The data with its train split cut to a ``default_rng(0)`` random subset of ``train_limit`` cases (None: all)."""
    s = data.splits["train"]
    if train_limit is None or train_limit >= len(s.labels):
        return data
    keep = np.sort(np.random.default_rng(0).choice(len(s.labels), train_limit, replace=False))
    return P1Data({**data.splits, "train": P1Split(s.images[keep], s.labels[keep], [s.texts[i] for i in keep])}, data.pools)


def p1_tables(data: P1Data, encoder: TextEncoder, image: ImagePreprocessing, train_limit: int | None = None,
              lexical: LexicalReader | None = None) -> dict[str, FeatureTable]:
    """Feature tables of the three splits (train optionally cut by :func:`limit_train`), with the lexical reader's
    log-probabilities when one is given (:func:`p1_lexical`)."""
    return {name: _table(split, encoder, image, lexical) for name, split in limit_train(data, train_limit).splits.items()}


def p1_lexical(data: P1Data, config: P1Config) -> LexicalReader | None:
    """The lexical reader of the train split's texts, as ``diagnosis train`` fits it (None when ``config`` turns it
    off)."""
    train = data.splits["train"]
    return fit_lexical_reader(train.texts, train.labels.tolist(), len(LABELS), LexicalConfig(enabled=config.lexical))


def estimate_seconds(config: P1Config, n_train: int, distinct_texts: int) -> dict[str, float]:
    """Upper-bound seconds per part of a run (every epoch run; early stopping ends sooner), from measured rates."""
    area = (config.image_size / 32) ** 2
    parts = {"text stage": SECONDS_PER_TEXT_EPOCH * distinct_texts * config.text_epochs}
    if any(f not in BASELINES for f in config.fusions):  # the rows that use the image stage (as in run_p1)
        parts["image stage"] = SECONDS_PER_SAMPLE_EPOCH["image"] * area * n_train * config.image_epochs * config.image_members
    for fusion in config.fusions:
        if fusion == GRAPH:
            parts[fusion] = GRAPH_SECONDS * n_train / 4707
            if GRAPH_BASE not in config.fusions:
                parts[GRAPH_BASE] = SECONDS_PER_SAMPLE_EPOCH[GRAPH_BASE] * n_train * config.epochs
        elif fusion != CNN:
            parts[fusion] = SECONDS_PER_SAMPLE_EPOCH[fusion] * n_train * config.epochs
    return parts


def prevalence_report(tables: dict[str, FeatureTable]) -> dict:
    """Share of pneumonia per split, and a note when val's and test's differ by more than 5 points."""
    shares = {s: float(class_prevalence(t.labels, len(LABELS))[1]) for s, t in tables.items()}
    gap = abs(shares.get("val", 0.0) - shares.get("test", 0.0))
    note = (f"val and test prevalence differ (pneumonia {shares['val']:.1%} vs {shares['test']:.1%}): probabilities "
            "are calibrated at val's; thresholds maximise balanced accuracy, which does not depend on it; "
            "--prior P shifts test probabilities to a known deployment prevalence") if gap > 0.05 else None
    return {"pneumonia_share": shares, "note": note}


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
    """The decision threshold on P(pneumonia) that maximises validation balanced accuracy (mean recall per class).

    Ties go to the lowest such threshold. Balanced accuracy weighs both classes alike whatever their shares, so the
    threshold carries to a test or deployment set with another prevalence.
    """
    candidates = np.unique(np.concatenate([p_positive, [0.5]]))
    positive, negative = labels == 1, labels == 0
    predicted = p_positive[None, :] >= candidates[:, None]  # (T, N)
    recall_pos = predicted[:, positive].mean(1) if positive.any() else np.zeros(len(candidates))
    recall_neg = (~predicted[:, negative]).mean(1) if negative.any() else np.zeros(len(candidates))
    return float(candidates[int(np.argmax(recall_pos + recall_neg))])


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


def _shift_binary(p_positive: np.ndarray, source: float, target: float) -> np.ndarray:
    """P(pneumonia) calibrated at prevalence ``source`` moved to ``target`` (also maps a threshold)."""
    both = np.stack([1 - np.asarray(p_positive, dtype=np.float64), np.asarray(p_positive, dtype=np.float64)], 1)
    return shift_prior(both, np.array([1 - source, source]), np.array([1 - target, target]))[:, 1]


def score_modes(
    probabilities: Callable[[FeatureTable], np.ndarray], tables: dict[str, FeatureTable], modes: Sequence[str] = MODES,
    prior: float | None = None,
) -> dict[str, dict]:
    """Test metrics per mode, with the val ECE; each threshold is chosen on val in the same mode (``fused`` for
    missing50). With ``prior``, test probabilities (and the threshold with them) move from val's prevalence to it."""
    out = {}
    val_share = float(class_prevalence(tables["val"].labels, len(LABELS))[1])
    for mode in modes:
        val_mode = "fused" if mode == "fused_missing50" else mode
        val_p = probabilities(mode_view(tables["val"], val_mode))[:, 1]
        threshold = choose_threshold(tables["val"].labels, val_p)
        test_p = probabilities(mode_view(tables["test"], mode))[:, 1]
        if prior is not None:
            test_p, threshold = _shift_binary(test_p, val_share, prior), float(_shift_binary(np.array([threshold]), val_share, prior)[0])
        out[mode] = binary_metrics(tables["test"].labels, test_p, threshold)
        out[mode]["val_ece"] = expected_calibration_error(val_p, tables["val"].labels.astype(float), bins=15)
    return out


def _image_stage(tables: dict[str, FeatureTable], config: P1Config, device: torch.device,
                 on_epoch: Callable[[str, dict], None] | None) -> ImageStage | None:
    """The supervised image stage, trained once for every row that uses it."""
    image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
    stage_config = ImageStageConfig(epochs=config.image_epochs)
    return train_image_encoder(image, len(LABELS), tables["train"], tables["val"], stage_config, seed=config.seed,
                               members=config.image_members,
                               device=device, on_epoch=(lambda r: on_epoch("image stage", r)) if on_epoch else None)


def run_p1(
    tables: dict[str, FeatureTable], config: P1Config, device: torch.device,
    fusions: Sequence[str] | None = None, on_epoch: Callable[[str, dict], None] | None = None,
    lexical: LexicalReader | None = None,
) -> dict:
    """Train and score every row of ``config.fusions`` (or ``fusions``); the fusion rows stack ``lexical`` (the reader
    whose log-probabilities :func:`p1_tables` put into ``tables``) on val.

    Returns:
        ``{"config", "prevalence", "image_stage", "results": {row: {"seconds", "epochs", "best_epoch", "modes":
        {mode: metrics}}}}``; the ``cnn`` row has the image mode only.
    """
    image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
    modalities = ModalitySpec(image=image, vectors={"text": tables["train"].inputs["text"].shape[1]})
    rows = tuple(fusions or config.fusions)
    stage = _image_stage(tables, config, device, on_epoch) if any(f not in BASELINES for f in rows) else None
    results: dict[str, dict] = {}
    models: dict[str, FitResult] = {}

    def fitted(fusion: str) -> FitResult:
        """The fusion model of ``fusion``, trained once per run (the graph row reuses the poe row's)."""
        if fusion not in models:
            spec = ModelSpec(LABELS, modalities, FusionConfig(fusion=fusion, image_members=config.image_members if stage else 1))
            train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, patience=8,
                                       image_stage=ImageStageConfig(epochs=config.image_epochs))
            models[fusion] = fit(spec, tables["train"], tables["val"], train_config, device, image_stage=stage,
                                 lexical=lexical, on_epoch=(lambda r, f=fusion: on_epoch(f, r)) if on_epoch else None)
        return models[fusion]

    for fusion in rows:
        if fusion == GRAPH:
            base = fitted(GRAPH_BASE).model
            started = time.perf_counter()
            keys = [str(i) for i in range(len(tables["train"]))]
            graph, _ = fit_graph(base, tables["train"], tables["val"], keys, device, seed=config.seed,
                                 on_epoch=(lambda r: on_epoch(GRAPH, r)) if on_epoch else None)
            seconds = time.perf_counter() - started
            base.graph = graph  # the same fusion model, diagnosing through the graph (for this row only)
            results[fusion] = {"seconds": round(seconds, 1), "kind": f"graph classifier over {GRAPH_BASE}",
                               "epochs": graph.trained_epochs, "best_epoch": graph.best_epoch,
                               "seconds_per_epoch": round(seconds / max(graph.trained_epochs, 1), 3),
                               "modes": score_modes(lambda t, m=base: predict(m, t, device, samples=1).probabilities,
                                                    tables, prior=config.prior)}  # fmt: skip
            base.graph = None
            logger.info("P1 graph: fused AUC %.4f", results[fusion]["modes"]["fused"]["auc"])
            continue
        if fusion == CNN:
            if stage is None:
                raise ValueError("the cnn row needs the image stage: set image_epochs above 0")
            classifier = stage.classifier
            results[fusion] = {"seconds": round(stage.seconds, 1), "kind": "image encoder", "epochs": len(stage.history),
                               "best_epoch": stage.best_epoch, "seconds_per_epoch": round(stage.seconds / max(sum(len(m.history) for m in stage.members), 1), 2),
                               "members": len(stage.members),
                               "modes": score_modes(lambda t: classifier.probabilities(t.inputs["image"], device), tables,
                                                    modes=("image",), prior=config.prior)}  # fmt: skip
            continue
        if fusion in BASELINES:
            started = time.perf_counter()
            baseline = fit_baseline(fusion, modalities, len(LABELS), tables["train"], tables["val"], config.epochs,
                                    config.batch_size, seed=config.seed, device=device)
            results[fusion] = {"seconds": round(time.perf_counter() - started, 1), "kind": "baseline",
                               "modes": score_modes(lambda t, b=baseline: predict_baseline(b, t, device), tables, prior=config.prior)}
            results[fusion]["seconds_per_epoch"] = None
            continue
        result = fitted(fusion)
        results[fusion] = {
            "seconds": round(result.seconds, 1),  # the fusion stage (the image stage is the cnn row's)
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "seconds_per_epoch": round(result.seconds / max(len(result.history), 1), 2),
            "modes": score_modes(lambda t, m=result.model: predict(m, t, device, samples=1).probabilities, tables,
                                 prior=config.prior),
        }
        logger.info("P1 %s: fused AUC %.4f", fusion, results[fusion]["modes"]["fused"]["auc"])
    return {"config": asdict(config), "prevalence": prevalence_report(tables),
            "image_stage": stage.summary() if stage else None, "results": results}
