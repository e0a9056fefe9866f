"""Classification stage: the diagnosis head on the fused latent, batch prediction, prior-shift correction."""

from __future__ import annotations

from diagnosis.classify.model import DiagnosisModel, ModelSpec
from diagnosis.classify.predict import Predictions, predict
from diagnosis.classify.prior import class_prevalence, shift_prior

__all__ = ["DiagnosisModel", "ModelSpec", "Predictions", "class_prevalence", "predict", "shift_prior"]
