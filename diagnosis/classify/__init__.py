"""Classification stage: the diagnosis head on the fused latent and batch prediction."""

from __future__ import annotations

from diagnosis.classify.model import DiagnosisModel, ModelSpec
from diagnosis.classify.predict import Predictions, predict

__all__ = ["DiagnosisModel", "ModelSpec", "Predictions", "predict"]
