"""Benchmark P2: the P1 pairing with normal cases made rare (5 % of pneumonia) in train and val; four ways to train.

``plain`` and ``class_weights`` are the non-generative ways; ``vae_augment`` rebalances the diagnosis head with
class-conditional samples from the multimodal VAE's latent space (the rare class brought to parity), alone or with
class weights. One VAE is trained per loss weighting and shared by the way with and without augmentation.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

import torch

from diagnosis.benchmarks.p1 import LABELS, P1Config, score_modes
from diagnosis.benchmarks.p1_data import P1Data, P1Split, rare_subsample
from diagnosis.classify import ModelSpec, predict
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.features.lexical import LexicalReader
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.training import TrainConfig, fit, rebalance_head
from diagnosis.training.image_stage import ImageStageConfig

__all__ = ["P2_WAYS", "fused_metrics", "p2_data", "run_p2"]

P2_WAYS = ("plain", "class_weights", "vae_augment", "vae_augment+class_weights")


def p2_data(data: P1Data) -> P1Data:
    """Train and val keep every pneumonia case and round(5 % × #pneumonia) normals (``default_rng(2)``)."""
    splits: dict[str, P1Split] = {s: rare_subsample(v) if s in ("train", "val") else v for s, v in data.splits.items()}
    return P1Data(splits=splits, pools=data.pools)


def fused_metrics(model, tables: dict[str, FeatureTable], device: torch.device) -> dict:  # noqa: ANN001
    """Test metrics of the fused mode (threshold chosen on val), as P2 and P5 report them."""
    return score_modes(lambda t: predict(model, t, device, samples=1).probabilities, tables, modes=("fused",))["fused"]


def run_p2(tables: dict[str, FeatureTable], config: P1Config, device: torch.device, fusion: str = "poe",
           lexical: LexicalReader | None = None) -> dict:
    """Train the four ways and score each on the (unchanged) test split, fused mode.

    Returns:
        ``{"config", "fusion", "counts": {split: {label: n}}, "results": {way: metrics + seconds}}``.
    """
    image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
    spec = ModelSpec(LABELS, ModalitySpec(image=image, vectors={"text": tables["train"].inputs["text"].shape[1]}),
                     FusionConfig(fusion=fusion, image_members=config.image_members))
    results: dict[str, dict] = {}
    for weighted in (False, True):
        started = time.perf_counter()
        train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, class_weights=weighted,
                                   image_stage=ImageStageConfig(epochs=config.image_epochs))
        model = fit(spec, tables["train"], tables["val"], train_config, device, lexical=lexical).model
        way = "class_weights" if weighted else "plain"
        results[way] = {**fused_metrics(model, tables, device), "seconds": round(time.perf_counter() - started, 1)}
        augmented = copy.deepcopy(model)
        counts = rebalance_head(augmented, tables["train"], tables["val"], device, class_weights=weighted, seed=config.seed)
        aug_way = "vae_augment+class_weights" if weighted else "vae_augment"
        results[aug_way] = {**fused_metrics(augmented, tables, device), "latents": counts,
                            "seconds": round(time.perf_counter() - started, 1)}
    split_counts = {s: {name: int((t.labels == c).sum()) for c, name in enumerate(LABELS)} for s, t in tables.items()}
    return {"config": asdict(config), "fusion": fusion, "counts": split_counts, "results": {w: results[w] for w in P2_WAYS}}
