"""Classification stage: the diagnosis head on the fused latent, batch prediction, calibration on val (temperature,
stacking with the image stage's and the lexical reader's logits), prior-shift correction, and checkpoints."""

from __future__ import annotations

from diagnosis.classify.calibration import class_prevalence, fit_temperature, shift_prior
from diagnosis.classify.checkpoint import load_model, save_model
from diagnosis.classify.model import DiagnosisModel, ModelSpec
from diagnosis.classify.predict import Predictions, predict

__all__ = ["DiagnosisModel", "ModelSpec", "Predictions", "class_prevalence", "fit_temperature", "load_model", "predict",
           "save_model", "shift_prior"]
