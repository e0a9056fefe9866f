"""Benchmark P5: which generator helps the rare class — the VAE's per-class Gaussians or a conditional latent GAN.

P2's data (normal cases made rare in train and val) and test. One image stage is trained (with the first seed) and
shared by every seed, since it is most of a fit's time; per seed, a plain and a class-weighted fusion model are
trained on top of it (the seeds vary the fusion models, the generators and the rebalanced heads). Each model is
scored as it is and with its diagnosis head rebalanced by either generator's samples (the rare class brought to
parity, :func:`diagnosis.training.rebalance_head`). Both generators work in the same space: the fusion model's
latent. An independent classifier — a class-balanced logistic regression on the decoded modalities (image pixels
and text embedding), trained on real train cases only — says which share of each generator's decoded samples
belongs to the intended class. Figures are means over seeds.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from diagnosis.benchmarks.p1 import LABELS
from diagnosis.benchmarks.p2 import fused_metrics
from diagnosis.classify import DiagnosisModel, ModelSpec
from diagnosis.classify.bank import latent_bank
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.features.lexical import LexicalReader
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.generation import GANConfig, LatentGAN, sample_class, train_latent_gan
from diagnosis.training import TrainConfig, fit, rebalance_head
from diagnosis.training.image_stage import ImageStage, ImageStageConfig

__all__ = ["GENERATOR_WAYS", "P5_WAYS", "P5Config", "estimate_p5_seconds", "fit_checker", "run_p5"]

logger = logging.getLogger(__name__)

P5_WAYS = ("plain", "class_weights", "vae_augment", "gan_augment", "vae_augment+class_weights",
           "gan_augment+class_weights")
GENERATOR_WAYS = ("vae", "gan")
METRICS = ("auc", "macro_f1", "accuracy")
# Seconds per training sample and epoch measured by this benchmark on the 2-core CPU (2026-12-08, P2's 3,669 train
# cases: 4.5e-3 for the image stage's one network, 4.9e-3 for PoE with the augmented images and class weights).
P5_IMAGE_SECONDS, P5_FUSION_SECONDS = 4.5e-3, 4.9e-3


@dataclass(frozen=True)
class P5Config:
    """Benchmark settings (recorded in the JSON output)."""

    seeds: tuple[int, ...] = (0, 1, 2)  # two fusion models and two GANs per seed
    fusion: str = "poe"
    epochs: int = 10  # maximum epochs per fusion model (selection on val)
    image_epochs: int = 12  # the supervised image stage, trained once
    image_members: int = 1
    text_epochs: int = 3  # text fine-tuning, once for every seed
    batch_size: int = 128
    image_size: int = 32
    gan_steps: int = GANConfig.steps
    checked_samples: int = 300  # decoded samples per class and generator shown to the independent classifier
    train_limit: int | None = None  # smoke runs
    lexical: bool = True


def estimate_p5_seconds(config: P5Config, n_train: int, distinct_texts: int) -> dict[str, float]:
    """Upper-bound seconds per part (every epoch run), from the rates P1 measured."""
    from diagnosis.training.text_stage import SECONDS_PER_TEXT_EPOCH

    seeds = len(config.seeds)
    area = (config.image_size / 32) ** 2
    return {"text stage": SECONDS_PER_TEXT_EPOCH * distinct_texts * config.text_epochs,
            "image stage": P5_IMAGE_SECONDS * area * n_train * config.image_epochs * config.image_members,
            "fusion models": P5_FUSION_SECONDS * n_train * config.epochs * 2 * seeds,
            "GANs and rebalancing": (config.gan_steps * 0.012 + 30) * 2 * seeds}


def _decoded_features(image: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
    """Rows of flattened pixels beside text embeddings (what the checker reads)."""
    parts = [a.reshape(len(a), -1) for a in (image, text) if a is not None]
    return np.concatenate(parts, 1)


def fit_checker(train: FeatureTable, seed: int = 0):  # noqa: ANN201 - a scikit-learn pipeline
    """The independent classifier: class-balanced logistic regression on pixels and text embeddings of real train
    cases (it shares nothing with the fusion models)."""
    x = _decoded_features(train.inputs.get("image"), train.inputs.get("text"))
    keep = train.labels >= 0
    checker = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", max_iter=3000,
                                                                 random_state=seed))
    return checker.fit(x[keep], train.labels[keep])


def _in_class(model: DiagnosisModel, checker, gan: LatentGAN | None, n: int, seed: int) -> dict:  # noqa: ANN001
    """Share of each class's decoded samples that the checker assigns to that class (and their diversity)."""
    shares = {}
    for c, label in enumerate(LABELS):
        samples = sample_class(model, label, n, seed=seed, gan=gan)
        x = _decoded_features(samples.outputs.get("image"), samples.outputs.get("text"))
        shares[label] = float((checker.predict(x) == c).mean())
    return {"per_class": shares, "mean": float(np.mean(list(shares.values())))}


def _gan_sampler(gan: LatentGAN) -> Callable[[int, int, torch.Generator], torch.Tensor]:
    """:func:`rebalance_head`'s sampler drawing from the GAN."""
    return lambda c, n, generator: gan.sample(LABELS[c], n, seed=int(torch.randint(2**31 - 1, (1,), generator=generator)))


def _one_seed(tables: dict[str, FeatureTable], config: P5Config, seed: int, checker, device: torch.device,  # noqa: ANN001
              lexical: LexicalReader | None, on_epoch: Callable[[str, dict], None] | None,
              stage: ImageStage | None) -> tuple[dict, ImageStage | None]:
    """Every way of one seed: ``{"ways": {way: metrics}, "generators": {kind: in-class shares}, "gan": report}``,
    and the image stage (trained here when ``stage`` is None)."""
    image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
    spec = ModelSpec(LABELS, ModalitySpec(image=image, vectors={"text": tables["train"].inputs["text"].shape[1]}),
                     FusionConfig(fusion=config.fusion, image_members=config.image_members))
    keys = [str(i) for i in range(len(tables["train"]))]
    ways, generators, gans = {}, {}, {}
    for weighted in (False, True):
        suffix = "+class_weights" if weighted else ""
        started = time.perf_counter()
        train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, seed=seed, class_weights=weighted,
                                   image_stage=ImageStageConfig(epochs=config.image_epochs))
        report = (lambda r, s=suffix: on_epoch(f"seed {seed} {config.fusion}{s}", r)) if on_epoch else None
        result = fit(spec, tables["train"], tables["val"], train_config, device, image_stage=stage, lexical=lexical,
                     on_epoch=report)
        stage, model = result.image_stage, result.model
        ways["class_weights" if weighted else "plain"] = {**fused_metrics(model, tables, device),
                                                          "seconds": round(time.perf_counter() - started, 1)}
        bank = latent_bank(model, tables["train"], keys, device)
        gan, gan_report = train_latent_gan(bank.latents, bank.labels, LABELS, GANConfig(steps=config.gan_steps),
                                           seed=seed, device=device)
        gans["class_weights" if weighted else "plain"] = gan_report.to_dict() | {"history": gan_report.history[-1:]}
        for kind, source in (("vae", None), ("gan", gan)):
            started = time.perf_counter()
            augmented = copy.deepcopy(model)
            counts = rebalance_head(augmented, tables["train"], tables["val"], device, class_weights=weighted, seed=seed,
                                    sampler=_gan_sampler(source) if source is not None else None)
            ways[f"{kind}_augment{suffix}"] = {**fused_metrics(augmented, tables, device), "latents": counts,
                                               "seconds": round(time.perf_counter() - started, 1)}
            if not weighted:  # the generators of the plain model (the weighted one's are alike)
                generators[kind] = _in_class(model, checker, source, config.checked_samples, seed)
        logger.info("P5 seed %d%s: %s", seed, suffix, {w: round(m["macro_f1"], 4) for w, m in ways.items()})
    return {"seed": seed, "ways": ways, "generators": generators, "gan": gans}, stage


def _mean(runs: list[dict], pick: Callable[[dict], float]) -> dict[str, float]:
    values = np.array([pick(r) for r in runs], dtype=float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def run_p5(tables: dict[str, FeatureTable], config: P5Config, device: torch.device, lexical: LexicalReader | None = None,
           on_epoch: Callable[[str, dict], None] | None = None) -> dict:
    """Train every way for every seed on P2's tables and average.

    Returns:
        ``{"config", "counts", "checker": {"test_accuracy"}, "results": {way: {metric: mean, "seconds": mean
        seconds of the way (a plain or weighted fit; an augmentation's rebalancing), "sd": {...}}},
        "generators": {kind: {"in_class": mean share, "per_class": {label: mean share}}}, "runs": [per seed]}``.
    """
    checker = fit_checker(tables["train"])
    test = tables["test"]
    checker_accuracy = float((checker.predict(_decoded_features(test.inputs["image"], test.inputs["text"])) == test.labels).mean())
    runs, stage = [], None
    for seed in config.seeds:
        run, stage = _one_seed(tables, config, seed, checker, device, lexical, on_epoch, stage)
        runs.append(run)
    results = {}
    for way in P5_WAYS:
        figures = {m: _mean(runs, lambda r, m=m, w=way: r["ways"][w][m]) for m in METRICS}
        recall = {label: _mean(runs, lambda r, label=label, w=way: r["ways"][w]["recall"][label]) for label in LABELS}
        seconds = float(np.mean([r["ways"][way]["seconds"] for r in runs]))
        results[way] = {**{m: f["mean"] for m, f in figures.items()}, "seconds": round(seconds, 1),
                        "recall": {k: v["mean"] for k, v in recall.items()},
                        "sd": {**{m: f["sd"] for m, f in figures.items()}, "recall": {k: v["sd"] for k, v in recall.items()}}}
    generators = {kind: {"in_class": _mean(runs, lambda r, k=kind: r["generators"][k]["mean"])["mean"],
                         "per_class": {label: _mean(runs, lambda r, k=kind, label=label: r["generators"][k]["per_class"][label])["mean"]
                                       for label in LABELS}}
                  for kind in GENERATOR_WAYS}
    diversity = [r["gan"]["plain"]["diversity"] for r in runs]
    generators["gan"]["diversity"] = {label: float(np.nanmean([d.get(label, np.nan) for d in diversity])) for label in LABELS}
    generators["gan"]["seconds"] = float(np.mean([g["seconds"] for r in runs for g in r["gan"].values()]))
    generators["gan"]["collapsed"] = sorted({c for r in runs for g in r["gan"].values() for c in g["collapsed"]})
    counts = {s: {name: int((t.labels == c).sum()) for c, name in enumerate(LABELS)} for s, t in tables.items()}
    return {"config": asdict(config), "counts": counts, "checker": {"test_accuracy": checker_accuracy},
            "results": results, "generators": generators, "runs": runs}
