"""Benchmark P3: real clinical free text, text only (``shared/benchmarks.md``).

Symptom2Disease, all 24 classes, exact duplicate texts dropped; a stratified 60 / 20 / 20 split per class after
shuffling each class's rows (classes in sorted order, one ``default_rng(0)`` drawn from in turn). The product's text
path (text stage, then the fusion model on a text-only spec, exactly as ``diagnosis train`` runs it) is compared in
the same run with a TF-IDF (word 1-2-grams, sublinear tf) + logistic-regression baseline whose C is chosen on val.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score

from diagnosis.benchmarks.p1_data import read_symptom_texts
from diagnosis.benchmarks.text_path import benchmark_text_encoder
from diagnosis.classify import DiagnosisModel, predict
from diagnosis.features.cache import EmbeddingCache
from diagnosis.features.lexical import LEXICAL_INPUT, LexicalConfig, LexicalReader, fit_lexical_reader
from diagnosis.features.table import FeatureTable
from diagnosis.features.text import TextEncoder
from diagnosis.fusion import FusionConfig
from diagnosis.training.plan import plan_model
from diagnosis.training.text_stage import TextStageConfig
from diagnosis.training.trainer import TrainConfig, fit

__all__ = ["P3Config", "P3Data", "P3Split", "load_p3", "multiclass_metrics", "run_p3", "tfidf_baseline"]

SPLITS = ("train", "val", "test")
METRICS = ("auc", "accuracy", "macro_f1")
TFIDF_C = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # the baseline's C grid (chosen on val accuracy)


@dataclass(frozen=True)
class P3Config:
    """Benchmark settings (recorded in the JSON output); the product's own defaults unless a smoke run changes them."""

    fusion: str = FusionConfig.fusion  # fusion variant of the text-only model (as `diagnosis train`)
    epochs: int = TrainConfig.epochs  # maximum epochs of the fusion model
    text_epochs: int = TextStageConfig.epochs  # text fine-tuning epochs (0: frozen embeddings)
    train_limit: int | None = None  # train on a seeded random subset of N texts (smoke runs)
    seeds: tuple[int, ...] = (0, 1, 2)  # one product run per seed (initialisation and order); figures: their mean
    lexical: bool = LexicalConfig.enabled  # the lexical reader stacked with the model on val (as `diagnosis train`)


@dataclass(frozen=True)
class P3Split:
    """One split: texts and their class ids."""

    texts: list[str]
    labels: np.ndarray  # (N,) int, index into P3Data.label_names


@dataclass(frozen=True)
class P3Data:
    """The three splits and the class names (sorted, case-sensitive)."""

    splits: dict[str, P3Split]
    label_names: tuple[str, ...]


def load_p3(data_dir: str | Path, train_limit: int | None = None) -> P3Data:
    """Build the P3 split from ``symptom2disease.csv`` in ``data_dir``.

    Args:
        data_dir: The shared data folder.
        train_limit: Keep a ``default_rng(0)`` random subset of this many training texts (smoke runs).

    Raises:
        FileNotFoundError: The file is missing.
    """
    path = Path(data_dir) / "symptom2disease.csv"
    if not path.is_file():
        raise FileNotFoundError(f"symptom2disease.csv not found in {data_dir}; point --data at the shared data folder")
    by_class: dict[str, list[str]] = {}
    for label, text in read_symptom_texts(path):
        by_class.setdefault(label, []).append(text)
    names = tuple(sorted(by_class))
    rng = np.random.default_rng(0)
    parts: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in SPLITS}
    for c, name in enumerate(names):
        texts = by_class[name]
        order = rng.permutation(len(texts))
        n_train, n_val = int(0.6 * len(texts)), int(0.2 * len(texts))
        for split, index in (("train", order[:n_train]), ("val", order[n_train : n_train + n_val]),
                             ("test", order[n_train + n_val :])):  # fmt: skip
            parts[split][0].extend(texts[i] for i in index)
            parts[split][1].extend([c] * len(index))
    splits = {s: P3Split(texts, np.asarray(labels, dtype=np.int64)) for s, (texts, labels) in parts.items()}
    if train_limit is not None and train_limit < len(splits["train"].texts):
        s = splits["train"]
        keep = np.sort(np.random.default_rng(0).choice(len(s.texts), train_limit, replace=False))
        splits["train"] = P3Split([s.texts[i] for i in keep], s.labels[keep])
    return P3Data(splits=splits, label_names=names)


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Macro one-vs-rest AUC (over the classes present), accuracy and macro-F1 of the most probable class."""
    predicted = probabilities.argmax(1)
    present = np.unique(labels)
    auc = float(np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in present])) if len(present) > 1 else float("nan")
    return {"auc": auc, "accuracy": float((predicted == labels).mean()),
            "macro_f1": float(f1_score(labels, predicted, average="macro", labels=present))}


def tfidf_baseline(train: P3Split, val: P3Split, test: P3Split, n_classes: int, grid: Sequence[float] = TFIDF_C) -> dict:
    """TF-IDF (word 1-2-grams, sublinear tf) + logistic regression, C chosen on val accuracy; test metrics."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train.texts)
    x_train, x_val, x_test = (vectorizer.transform(s.texts) for s in (train, val, test))
    best = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=5000).fit(x_train, train.labels)
        accuracy = float((model.predict(x_val) == val.labels).mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    assert best is not None
    _, c, model = best
    probabilities = np.zeros((len(test.texts), n_classes))
    probabilities[:, model.classes_] = model.predict_proba(x_test)
    return {"C": c, "val_accuracy": best[0], **multiclass_metrics(test.labels, probabilities)}


@dataclass(frozen=True)
class _TextCase:
    """What :func:`plan_model` reads of a training case."""

    text: str
    label: str
    image_path: str | None = None


def _table(encoder: TextEncoder, split: P3Split, lexical: LexicalReader | None = None) -> FeatureTable:
    n = len(split.texts)
    inputs = {"text": encoder.encode(split.texts)}
    if lexical is not None:
        inputs[LEXICAL_INPUT] = lexical.evidence(split.texts)
    return FeatureTable(inputs=inputs, masks={"text": np.ones(n, dtype=bool)}, labels=split.labels.astype(np.int64))


def _frozen_lr(encoder: TextEncoder, data: P3Data) -> dict:
    """Reference: frozen mean-pooled embeddings + logistic regression (C chosen on val)."""
    from sklearn.linear_model import LogisticRegression

    x = {s: encoder.encode(v.texts) for s, v in data.splits.items()}
    best = None
    for c in (1.0, 3.0, 10.0, 30.0, 100.0):
        model = LogisticRegression(C=c, max_iter=5000).fit(x["train"], data.splits["train"].labels)
        accuracy = float((model.predict(x["val"]) == data.splits["val"].labels).mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    assert best is not None
    probabilities = np.zeros((len(data.splits["test"].texts), len(data.label_names)))
    probabilities[:, best[2].classes_] = best[2].predict_proba(x["test"])
    return {"C": best[1], "val_accuracy": best[0], **multiclass_metrics(data.splits["test"].labels, probabilities)}


def _lexical_weight(model: DiagnosisModel) -> float | None:
    """The text pattern's stacking weight of the lexical reader (None without a reader)."""
    return None if model.lexical is None else round(float(model.pattern_weight[1, 3]), 3)


def _product_run(data: P3Data, config: P3Config, seed: int, device: torch.device, work_dir: Path,
                 cache: EmbeddingCache | None, on_epoch: Callable[[str, dict], None] | None) -> dict:
    """The product's text path with one seed (text stage, lexical reader, fusion model), scored on test."""
    train, val, test = (data.splits[s] for s in ("train", "val", "test"))
    names = data.label_names
    started = time.perf_counter()
    encoder, stage = benchmark_text_encoder(
        train.texts, train.labels.tolist(), val.texts, val.labels.tolist(), len(names), work_dir / f"seed-{seed}",
        config.text_epochs, seed=seed, device=device, cache=cache,
        on_epoch=(lambda r: on_epoch(f"seed {seed} text stage", r)) if on_epoch else None,
    )
    spec = plan_model([_TextCase(t, names[y]) for t, y in zip(train.texts, train.labels, strict=True)],
                      FusionConfig(fusion=config.fusion), encoder)  # fmt: skip
    spec = replace(spec, label_names=names)  # every class, also one a smoke run's subset has no training text of
    lexical = fit_lexical_reader(train.texts, train.labels.tolist(), len(names), LexicalConfig(enabled=config.lexical))
    tables = {s: _table(encoder, data.splits[s], lexical) for s in ("train", "val", "test")}
    result = fit(spec, tables["train"], tables["val"], TrainConfig(epochs=config.epochs, seed=seed), device,
                 on_epoch=(lambda r: on_epoch(f"seed {seed} {config.fusion}", r)) if on_epoch else None,
                 lexical=lexical)  # fmt: skip
    probabilities = predict(result.model, tables["test"], device, samples=1).probabilities
    run = {"seed": seed, **multiclass_metrics(test.labels, probabilities), "seconds": round(time.perf_counter() - started, 1),
           "text_stage": stage.summary() if stage else None, "fusion_best_epoch": result.best_epoch,
           "lexical_weight": _lexical_weight(result.model)}
    if lexical is not None:  # the same model read without its lexical reader: what the stacking adds
        alone = copy.deepcopy(result.model)
        alone.pattern_weight[:, 3] = 0.0
        alone.pattern_weight[1, 0] = 1.0 / float(alone.temperature)  # the text pattern's head at its temperature
        run["without_lexical"] = multiclass_metrics(test.labels, predict(alone, tables["test"], device, samples=1).probabilities)
    return run


def _mean(runs: Sequence[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in runs])) for k in METRICS}


def run_p3(data: P3Data, config: P3Config, device: torch.device, work_dir: str | Path,
           cache: EmbeddingCache | None = None, on_epoch: Callable[[str, dict], None] | None = None) -> dict:
    """The product's text path (once per seed of ``config.seeds``) and the baselines on one split, scored on test.

    The product path is ``diagnosis train``'s on a text-only store: the text stage fine-tunes the transformer on the
    train texts (selected on val), the lexical reader is fitted on them, the model is planned from the training
    cases, the fusion model and its head are fitted and calibrated (with the lexical reader stacked) on val, and
    test probabilities come from ``predict``. The seed moves the text stage's order and initialisation and the
    fusion model's; the product's figures are the mean over seeds, each run is kept.

    Args:
        data: The P3 split.
        config: Settings.
        device: Where to train.
        work_dir: Folder for the fine-tuned encoders.
        cache: Embedding cache for the frozen encoder (the fine-tuned one is not cached: its folder is temporary).
        on_epoch: Progress callback ``(part, record)``.

    Returns:
        ``{"config", "sizes", "results": {"product", "tfidf_lr", "frozen_minilm_lr"}, "differences"}``;
        ``product`` holds the mean metrics, the lowest accuracy, ``runs`` (one per seed) and, with the lexical
        reader, ``without_lexical`` (the same models read without it, mean).
    """
    train, val, test = (data.splits[s] for s in ("train", "val", "test"))
    runs = [_product_run(data, config, seed, device, Path(work_dir), cache, on_epoch) for seed in config.seeds]
    product: dict = {**_mean(runs), "min_accuracy": min(r["accuracy"] for r in runs),
                     "seconds": round(sum(r["seconds"] for r in runs), 1), "runs": runs}  # fmt: skip
    if all("without_lexical" in r for r in runs):
        product["without_lexical"] = _mean([r["without_lexical"] for r in runs])
    started = time.perf_counter()
    baseline = {**tfidf_baseline(train, val, test, len(data.label_names)), "seconds": round(time.perf_counter() - started, 1)}
    frozen = _frozen_lr(TextEncoder(device=device, cache=cache), data)
    return {
        "config": asdict(config),
        "sizes": {s: len(v.texts) for s, v in data.splits.items()},
        "results": {"product": product, "tfidf_lr": baseline, "frozen_minilm_lr": frozen},
        "differences": {k: product[k] - baseline[k] for k in METRICS},
    }
