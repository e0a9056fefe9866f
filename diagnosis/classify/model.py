"""The diagnosis model: a fusion VAE plus a classifier on its latent, described by one :class:`ModelSpec`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diagnosis.features.image import ImagePreprocessing
from diagnosis.features.text import TextEncoderConfig
from diagnosis.fusion import FusionConfig, ModalitySpec, VAEOutput, build_fusion
from diagnosis.fusion.config import LEGACY_IMAGE_NETWORK

__all__ = ["DiagnosisModel", "ModelSpec"]

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and preprocess its inputs identically; stored with the weights."""

    label_names: tuple[str, ...]  # diagnosis names, index = class id
    modalities: ModalitySpec  # image grid and vector modalities
    fusion: FusionConfig = FusionConfig()  # fusion variant and objective weights
    text: TextEncoderConfig | None = None  # how texts were embedded (None: no text modality)
    conformal_coverage: float = 0.9  # target coverage of the split-conformal prediction sets

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> ModelSpec:
        """Inverse of :meth:`to_dict`."""
        modalities = data["modalities"]
        image = ImagePreprocessing(**modalities["image"]) if modalities.get("image") else None
        return cls(
            label_names=tuple(data["label_names"]),
            modalities=ModalitySpec(image=image, vectors=dict(modalities.get("vectors", {}))),
            fusion=FusionConfig(**{**LEGACY_IMAGE_NETWORK, **data["fusion"]}),
            text=TextEncoderConfig(**data["text"]) if data.get("text") else None,
            conformal_coverage=float(data.get("conformal_coverage", 0.9)),
        )


class DiagnosisModel(nn.Module):
    """Fusion VAE + diagnosis head on the posterior mean; probabilities are temperature-scaled.

    Buffers filled after training: ``temperature`` (validation-fitted on the rows as they are),
    ``pattern_temperature`` (one per pattern of present modalities, see :meth:`patterns`: the posterior of an image
    alone is more or less confident than that of an image with its text, so each pattern gets its own temperature,
    fitted on validation rows with the other modalities withheld; probabilities of cases with and without a text then
    rank on one scale), ``conformal_threshold`` (split-conformal on validation) and the per-class latent Gaussians
    ``class_mean`` / ``class_logvar`` (``(C, D)``, from training latents) used for class-conditional generation.

    Args:
        spec: The model description.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        latent = spec.fusion.latent_dim
        self.vae = build_fusion(spec.modalities, spec.fusion)
        self.head = nn.Sequential(nn.Linear(latent, 64), nn.SiLU(), nn.Dropout(0.1), nn.Linear(64, len(spec.label_names)))
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("pattern_temperature", torch.ones(2 ** len(spec.modalities.names)))
        self.register_buffer("conformal_threshold", torch.ones(()))  # 1.0 = every class (not calibrated)
        self.register_buffer("class_mean", torch.zeros(len(spec.label_names), latent))
        self.register_buffer("class_logvar", torch.zeros(len(spec.label_names), latent))

    def objective(
        self, inputs: Tensors, masks: Tensors, targets: torch.Tensor, beta: float, class_weights: torch.Tensor | None = None
    ) -> VAEOutput:
        """Negative ELBO plus weighted cross-entropy of the head on every subset's posterior mean.

        Args:
            inputs: Modality -> batch tensor.
            masks: Modality -> ``(B,)`` presence.
            targets: ``(B,)`` class ids; ``-1`` for unlabelled samples (ELBO only).
            beta: KL weight for this step.
            class_weights: Optional ``(C,)`` cross-entropy weights (e.g. inverse class frequency).
        """
        out = self.vae(inputs, masks, beta=beta)
        labelled, classes = targets >= 0, targets.clamp(min=0)
        # Masked means instead of boolean indexing: the same loss and gradients, without a GPU sync per term.
        row_weight = labelled.float() if class_weights is None else class_weights[classes] * labelled
        for term in out.terms:
            logits = self.head(term.posterior.mu)  # (B, C)
            keep = (term.valid & labelled).to(logits.dtype)
            per_row = F.cross_entropy(logits, classes, weight=class_weights, reduction="none")  # weighted like mean
            ce = (per_row * keep).sum() / (row_weight * keep).sum().clamp(min=1e-12)  # 0 when no row is kept
            out.loss = out.loss + self.spec.fusion.classifier_weight * ce
            out.metrics[f"ce_{term.name}"] = ce.detach()
        return out

    def forward(self, inputs: Tensors, masks: Tensors) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated class probabilities ``(B, C)`` and the latent mean ``(B, D)``."""
        mu = self.vae.posterior(inputs, masks).mu
        return self.classify(mu, self.temperatures(masks)), mu

    def patterns(self, masks: Tensors) -> torch.Tensor:
        """``(B,)`` pattern index per row: bit ``i`` set when modality ``spec.modalities.names[i]`` is present."""
        names = self.spec.modalities.names
        reference = next(iter(masks.values()))
        index = torch.zeros(reference.shape[0], dtype=torch.long, device=reference.device)
        for bit, name in enumerate(names):
            if name in masks:
                index = index + masks[name].long() * (1 << bit)
        return index

    def temperatures(self, masks: Tensors) -> torch.Tensor:
        """``(B, 1)`` temperature of each row's pattern of present modalities."""
        return self.pattern_temperature[self.patterns(masks)].unsqueeze(-1)

    def classify(self, z: torch.Tensor, temperature: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated class probabilities ``(..., C)`` for latents ``(..., D)``.

        Args:
            z: Latents.
            temperature: ``(B, 1)`` per-row temperatures (:meth:`temperatures`) for ``(B, D)`` or ``(S, B, D)``
                latents; None: the scalar ``temperature`` (latents without a modality pattern, e.g. generated ones).
        """
        return torch.softmax(self.head(z) / (self.temperature if temperature is None else temperature), dim=-1)

    def sample_probabilities(self, inputs: Tensors, masks: Tensors, samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Probabilities at the posterior mean ``(B, C)``, the mean ``(B, D)``, and at ``samples`` draws ``(S, B, C)``."""
        q = self.vae.posterior(inputs, masks)
        draws = q.mu + torch.randn(samples, *q.mu.shape, device=q.mu.device) * torch.exp(0.5 * q.logvar)  # (S, B, D)
        temperature = self.temperatures(masks)
        return self.classify(q.mu, temperature), q.mu, self.classify(draws, temperature)
