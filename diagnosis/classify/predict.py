"""Batch prediction over a feature table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diagnosis.classify.model import DiagnosisModel
from diagnosis.training.data import FeatureTable

__all__ = ["Predictions", "predict"]


@dataclass(frozen=True)
class Predictions:
    """Per-row outputs: ``probabilities`` ``(N, C)``, ``latents`` ``(N, D)``, used modalities, readable rows."""

    probabilities: np.ndarray
    latents: np.ndarray
    modalities: list[list[str]]
    ok: np.ndarray  # (N,) bool: the row had at least one usable modality

    def labels(self, label_names: tuple[str, ...]) -> list[str]:
        """Most probable diagnosis per row."""
        return [label_names[i] for i in self.probabilities.argmax(1)]


@torch.inference_mode()
def predict(model: DiagnosisModel, table: FeatureTable, device: torch.device, batch_size: int = 256) -> Predictions:
    """Run the model over every row of ``table`` in batches.

    Args:
        model: A trained model (switched to eval mode here).
        table: Inputs built with the model's preprocessing.
        device: Where to compute.
        batch_size: Rows per forward pass.
    """
    model.eval().to(device)
    probs, latents = [], []
    for start in range(0, len(table), batch_size):
        inputs, masks, _ = table.batch(slice(start, start + batch_size), device)
        p, mu = model(inputs, masks)
        probs.append(p.float().cpu().numpy())
        latents.append(mu.float().cpu().numpy())
    n_classes, latent = len(model.spec.label_names), model.spec.fusion.latent_dim
    ok = np.stack(list(table.masks.values())).any(0) if table.masks else np.zeros(len(table), dtype=bool)
    return Predictions(
        probabilities=np.concatenate(probs) if probs else np.zeros((0, n_classes), np.float32),
        latents=np.concatenate(latents) if latents else np.zeros((0, latent), np.float32),
        modalities=[table.modalities_used(i) for i in range(len(table))],
        ok=ok,
    )
