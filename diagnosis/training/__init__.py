"""Training stage: feature tables, the trainer and checkpoints."""

from __future__ import annotations

from diagnosis.training.checkpoint import load_model, save_model
from diagnosis.training.data import CaseLike, FeatureTable, build_features
from diagnosis.training.plan import grid_size, plan_model
from diagnosis.training.rebalance import rebalance_head, subset_latents
from diagnosis.training.trainer import FitResult, TrainConfig, calibrate, fit, inverse_frequency

__all__ = [
    "CaseLike",
    "FeatureTable",
    "FitResult",
    "TrainConfig",
    "build_features",
    "calibrate",
    "fit",
    "inverse_frequency",
    "load_model",
    "grid_size",
    "plan_model",
    "rebalance_head",
    "save_model",
    "subset_latents",
]
