"""Class-conditional generation from the per-class latent Gaussians, and cross-modal look-ups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diagnosis.classify.model import DiagnosisModel
from diagnosis.generation.gan import LatentGAN

__all__ = ["GeneratedSamples", "cross_modal_coherence", "nearest_rows", "sample_class"]


@dataclass(frozen=True)
class GeneratedSamples:
    """Decoded samples of one diagnosis.

    Attributes:
        latents: ``(N, D)`` sampled latents.
        outputs: Modality -> decoded array (``(N, 1, *grid)`` pixels in [0, 1]; ``(N, F)`` embeddings).
        probabilities: ``(N, C)`` the model's own diagnosis of each latent (a check that samples stay in class).
    """

    latents: np.ndarray
    outputs: dict[str, np.ndarray]
    probabilities: np.ndarray


@torch.inference_mode()
def sample_class(model: DiagnosisModel, label: str, n: int, seed: int = 0, temperature: float = 1.0,
                 gan: LatentGAN | None = None) -> GeneratedSamples:
    """Draw ``n`` latents of a diagnosis and decode every modality.

    The latents come from the class's latent Gaussian (the VAE's class-conditional sampling) or, with ``gan``, from
    a conditional GAN trained on the model's training latents (:mod:`diagnosis.generation.gan`).

    Args:
        model: A trained model whose ``class_mean`` / ``class_logvar`` were fitted.
        label: A diagnosis of the model.
        n: Number of samples.
        seed: Random seed.
        temperature: Scales the Gaussian's sampling standard deviation (< 1: more typical samples; not used by a GAN).
        gan: A latent GAN of this model (None: the per-class Gaussians).

    Raises:
        ValueError: Unknown label, the class had no training latents, or a deterministic autoencoder without a GAN.
    """
    names = model.spec.label_names
    if label not in names:
        raise ValueError(f"unknown diagnosis {label!r}; the model knows {', '.join(names)}")
    model.eval()
    if gan is not None:
        z = gan.sample(label, n, seed=seed).to(model.class_mean.device)
        outputs = {m: x.float().cpu().numpy() for m, x in model.vae.decode(z).items()}
        return GeneratedSamples(z.cpu().numpy(), outputs, model.classify(z).cpu().numpy())
    if not model.vae.generative:
        raise ValueError(f"a {model.spec.fusion.fusion} model is a deterministic autoencoder: it has no prior over its "
                         "codes to sample; generate with its latent GAN (--generator gan) or with a VAE model (poe, "
                         "moe, mopoe, concat: --model ID)")
    c = names.index(label)
    mean, logvar = model.class_mean[c], model.class_logvar[c]
    if float(mean.abs().sum()) == 0.0 and float(logvar.abs().sum()) == 0.0:
        raise ValueError(f"the model saw no training case of {label!r}; it cannot generate that diagnosis")
    generator = torch.Generator(device=mean.device).manual_seed(seed)
    noise = torch.randn(n, mean.shape[0], generator=generator, device=mean.device)
    z = mean + temperature * noise * torch.exp(0.5 * logvar)  # (N, D)
    outputs = {m: x.float().cpu().numpy() for m, x in model.vae.decode(z).items()}
    return GeneratedSamples(z.cpu().numpy(), outputs, model.classify(z).cpu().numpy())


def nearest_rows(queries: np.ndarray, bank: np.ndarray, k: int = 3) -> np.ndarray:
    """Indices ``(N, k)`` of the ``k`` bank rows most cosine-similar to each query row."""
    q = queries / np.clip(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12, None)
    b = bank / np.clip(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12, None)
    k = min(k, len(bank))
    return np.argsort(-(q @ b.T), axis=1)[:, :k]


def cross_modal_coherence(generated_labels: Sequence[object], bank_labels: np.ndarray, neighbours: np.ndarray) -> float:
    """Share of generated samples whose nearest real neighbour (e.g. symptom text) carries the intended diagnosis."""
    if len(generated_labels) == 0:
        return float("nan")
    return float(np.mean([bank_labels[row[0]] == lbl for lbl, row in zip(generated_labels, neighbours, strict=True)]))
