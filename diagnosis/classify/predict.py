"""Batch prediction over a feature table: probabilities, latents, uncertainty and conformal sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diagnosis.classify.model import DiagnosisModel
from diagnosis.classify.uncertainty import prediction_sets, predictive_entropy
from diagnosis.training.data import FeatureTable

__all__ = ["Predictions", "predict"]


@dataclass(frozen=True)
class Predictions:
    """Per-row outputs.

    Attributes:
        probabilities: ``(N, C)`` calibrated class probabilities at the posterior mean.
        latents: ``(N, D)`` fused posterior means.
        uncertainty: ``(N,)`` predictive entropy (nats) over latent posterior samples.
        sets: ``(N, C)`` bool split-conformal prediction-set membership.
        modalities: Modalities used per row.
        ok: ``(N,)`` the row had at least one usable modality.
    """

    probabilities: np.ndarray
    latents: np.ndarray
    uncertainty: np.ndarray
    sets: np.ndarray
    modalities: list[list[str]]
    ok: np.ndarray

    def labels(self, label_names: tuple[str, ...]) -> list[str]:
        """Most probable diagnosis per row."""
        return [label_names[i] for i in self.probabilities.argmax(1)]

    def set_labels(self, row: int, label_names: tuple[str, ...]) -> list[str]:
        """The conformal set of one row, most probable first."""
        order = np.argsort(-self.probabilities[row])
        return [label_names[i] for i in order if self.sets[row, i]]


@torch.inference_mode()
def predict(model: DiagnosisModel, table: FeatureTable, device: torch.device, batch_size: int = 256, samples: int = 16) -> Predictions:
    """Run the model over every row of ``table`` in batches.

    Args:
        model: A trained model (switched to eval mode here).
        table: Inputs built with the model's preprocessing.
        device: Where to compute.
        batch_size: Rows per forward pass.
        samples: Latent posterior draws for the uncertainty estimate.
    """
    model.eval().to(device)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the same case gets the same uncertainty on every run
    probs, latents, entropy = [], [], []
    for start in range(0, len(table), batch_size):
        inputs, masks, _ = table.batch(slice(start, start + batch_size), device)
        p, mu, drawn = model.sample_probabilities(inputs, masks, samples)
        probs.append(p.float().cpu().numpy())
        latents.append(mu.float().cpu().numpy())
        entropy.append(predictive_entropy(drawn.float().cpu().numpy()))
    torch.random.set_rng_state(generator_state)
    n_classes, latent = len(model.spec.label_names), model.spec.fusion.latent_dim
    probabilities = np.concatenate(probs) if probs else np.zeros((0, n_classes), np.float32)
    ok = np.stack(list(table.masks.values())).any(0) if table.masks else np.zeros(len(table), dtype=bool)
    return Predictions(
        probabilities=probabilities,
        latents=np.concatenate(latents) if latents else np.zeros((0, latent), np.float32),
        uncertainty=np.concatenate(entropy) if entropy else np.zeros(0, np.float32),
        sets=prediction_sets(probabilities, float(model.conformal_threshold)),
        modalities=[table.modalities_used(i) for i in range(len(table))],
        ok=ok,
    )
