"""Training stage: the stages (text, image, fusion), planning a model from the cases, rebalancing."""

from __future__ import annotations

from diagnosis.training.calibrate import calibrate
from diagnosis.training.plan import grid_size, plan_model
from diagnosis.training.rebalance import rebalance_head, subset_latents
from diagnosis.training.trainer import FitResult, TrainConfig, fit, inverse_frequency

__all__ = [
    "FitResult",
    "TrainConfig",
    "calibrate",
    "fit",
    "inverse_frequency",
    "grid_size",
    "plan_model",
    "rebalance_head",
    "subset_latents",
]
