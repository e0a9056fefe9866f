"""Classification stage: the diagnosis head on the fused latent, batch prediction, calibration on val (temperature,
stacking with the image stage's logits) and prior-shift correction."""

from __future__ import annotations

from diagnosis.classify.model import DiagnosisModel, ModelSpec
from diagnosis.classify.predict import Predictions, predict
from diagnosis.classify.calibration import class_prevalence, fit_temperature, shift_prior

__all__ = ["DiagnosisModel", "ModelSpec", "Predictions", "class_prevalence", "fit_temperature", "predict", "shift_prior"]
