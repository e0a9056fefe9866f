"""Training stage: feature tables, the trainer and checkpoints."""

from __future__ import annotations

from diagnosis.training.checkpoint import load_model, save_model
from diagnosis.training.data import CaseLike, FeatureTable, build_features
from diagnosis.training.plan import plan_model
from diagnosis.training.trainer import FitResult, TrainConfig, fit

__all__ = ["CaseLike", "FeatureTable", "FitResult", "TrainConfig", "build_features", "fit", "load_model", "plan_model", "save_model"]
