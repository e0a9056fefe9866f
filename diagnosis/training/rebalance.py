"""Rare-class rebalancing in latent space: class-conditional samples (the VAE's per-class Gaussians, or any other
latent generator such as the latent GAN) bring every class to parity for the head."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

from diagnosis.classify.model import DiagnosisModel
from diagnosis.features.table import FeatureTable
from diagnosis.training.calibrate import calibrate
from diagnosis.training.trainer import inverse_frequency

__all__ = ["LatentSampler", "rebalance_head", "subset_latents"]

LatentSampler = Callable[[int, int, torch.Generator], torch.Tensor]
"""``(class id, n, generator) -> (n, D)`` latents of that class."""

logger = logging.getLogger(__name__)


@torch.no_grad()
def subset_latents(model: DiagnosisModel, table: FeatureTable, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means of every objective subset (joint and single modalities) of the labelled rows, with labels."""
    model.eval()
    latents, labels = [], []
    for start in range(0, len(table), 256):
        inputs, masks, targets = table.batch(slice(start, start + 256), device)
        for _, subset, q in model.vae.subset_posteriors(inputs, masks):
            keep = torch.stack([subset[m] for m in subset]).any(0) & (targets >= 0)
            latents.append(q.mu[keep]), labels.append(targets[keep])
    return torch.cat(latents), torch.cat(labels)


def rebalance_head(
    model: DiagnosisModel, train: FeatureTable, val: FeatureTable | None, device: torch.device,
    class_weights: bool = False, epochs: int = 60, lr: float = 3e-3, seed: int = 0, sampler: LatentSampler | None = None,
) -> dict[str, list[int]]:
    """Retrain the diagnosis head on real latents plus class-conditional samples up to the largest class's count.

    Samples come from ``sampler``, by default the per-class latent Gaussians fitted after training
    (``model.class_mean`` / ``class_logvar``); the encoders and decoders stay fixed. The head is then recalibrated
    on ``val``.

    Args:
        model: A trained model (changed in place).
        train: The training rows the model was fitted on.
        val: Validation rows for temperature and conformal recalibration.
        device: Where to compute.
        class_weights: Also weight the loss by inverse frequency (after augmentation).
        epochs: Passes over the augmented latent set.
        lr: Adam learning rate.
        seed: Sampling and shuffling seed.
        sampler: Another source of class-conditional latents (e.g. a latent GAN's ``sample``).

    Returns:
        ``{"real": counts per class, "synthetic": samples added per class}``.
    """
    generator = torch.Generator().manual_seed(seed)
    z, y = subset_latents(model, train, device)
    n_classes = len(model.spec.label_names)
    counts = torch.bincount(y, minlength=n_classes).cpu()
    added = [0] * n_classes
    parts_z, parts_y = [z], [y]
    for c in range(n_classes):
        need = int(counts.max() - counts[c])
        if need == 0 or counts[c] == 0:
            continue
        if sampler is not None:
            parts_z.append(sampler(c, need, generator).to(device))
        else:
            noise = torch.randn(need, z.shape[1], generator=generator).to(device)
            parts_z.append(model.class_mean[c] + noise * torch.exp(0.5 * model.class_logvar[c]))
        parts_y.append(torch.full((need,), c, device=device, dtype=torch.long))
        added[c] = need
    z, y = torch.cat(parts_z), torch.cat(parts_y)
    weights = inverse_frequency(y.cpu().numpy(), n_classes).to(device) if class_weights else None
    optimiser = torch.optim.Adam(model.head.parameters(), lr=lr)
    model.head.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(y), 512):
            index = order[start : start + 512]
            loss = F.cross_entropy(model.head(z[index]), y[index], weight=weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.head.eval()
    if val is not None and len(val):
        calibrate(model, val, device)
    logger.info("head rebalanced: %s real, %s synthetic latents", counts.tolist(), added)
    return {"real": [int(c) for c in counts], "synthetic": added}
