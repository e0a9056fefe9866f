"""The diagnosis model: a fusion VAE plus a classifier on its latent, described by one :class:`ModelSpec`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diagnosis.features.image import ImagePreprocessing
from diagnosis.features.lexical import LEXICAL_INPUT, LexicalReader
from diagnosis.features.text import TextEncoderConfig
from diagnosis.fusion import FusionConfig, Gaussian, ModalitySpec, VAEOutput, build_fusion
from diagnosis.fusion.config import LEGACY_IMAGE_NETWORK

__all__ = ["EVIDENCE_SOURCES", "DiagnosisModel", "Evidence", "ModelSpec", "default_pattern_weights",
           "withheld"]

Tensors = Mapping[str, torch.Tensor]
EVIDENCE_SOURCES = 4  # head on the fused latent, image stage, head on the image-alone latent, lexical reader


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


@dataclass
class Evidence:
    """What the diagnosis of a batch is computed from (see :meth:`DiagnosisModel.evidence`).

    Attributes:
        posterior: ``q(z | present modalities)``, ``(B, D)``.
        pattern: ``(B,)`` each row's pattern of present modalities (:meth:`DiagnosisModel.patterns`).
        image: ``(B, C)`` the supervised image stage's own logits (0 where there is no image or no stage).
        image_latent: ``(B, C)`` the head's logits at ``q(z | image alone)`` (0 where there is no image).
        lexical: ``(B, C)`` the lexical reader's log-probabilities of the text (0 where there is no text or reader).
    """

    posterior: Gaussian
    pattern: torch.Tensor
    image: torch.Tensor
    image_latent: torch.Tensor
    lexical: torch.Tensor


class DiagnosisModel(nn.Module):
    """Fusion VAE + diagnosis head on the posterior mean, combined with the stages' own evidence on validation.

    The diagnosis of a row with pattern ``p`` of present modalities (:meth:`patterns`) is
    ``softmax(w_p0 head(mu) + w_p1 image + w_p2 head(mu_image) + w_p3 lexical)``: the head on the fused posterior
    mean, the supervised image stage's own logits, the head on the image-alone posterior mean, and the lexical
    reader's log-probabilities of the text (:mod:`diagnosis.features.lexical`). The weights ``w_p``
    (``pattern_weight``, ``(2^M, 4)``) are fitted on validation rows with the other modalities withheld. Without an
    image the head is read at a temperature (``1 / w_p0``). With an image, it is stacking that starts from Bayes'
    rule: the image stage is the best reader of the image alone (the latent keeps less of it), and
    ``head(mu) - head(mu_image)`` is what the other modalities add to it, in log-odds, as the latent sees it; so the
    start is ``(1, 1, -1)`` at each source's temperature (``(0, 1, 0)`` for an image alone), and validation moves it.
    With a text and a lexical reader, ``w_p3`` starts at 0 and validation moves it too.

    Buffers filled after training: ``pattern_weight``; ``image_weight`` / ``image_bias`` (the image stage's linear
    heads over the image network's features, each member's divided by its own temperature and by the member count);
    ``temperature`` (validation-fitted on the rows as they are, used for latents without a modality pattern, e.g.
    generated ones); ``conformal_threshold`` (split-conformal on validation) and the per-class latent Gaussians
    ``class_mean`` / ``class_logvar`` (``(C, D)``, from training latents) used for class-conditional generation.

    Args:
        spec: The model description.
    """

    def __init__(self, spec: ModelSpec, lexical: LexicalReader | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.lexical = lexical  # the bag-of-words reader of the text, saved beside the weights (None: not used)
        latent, classes = spec.fusion.latent_dim, len(spec.label_names)
        self.vae = build_fusion(spec.modalities, spec.fusion)
        self.head = nn.Sequential(nn.Linear(latent, 64), nn.SiLU(), nn.Dropout(0.1), nn.Linear(64, classes))
        image_width = spec.fusion.feature_dim * spec.fusion.image_members if spec.modalities.image else 0
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("pattern_weight", default_pattern_weights(len(spec.modalities.names)))
        self.register_buffer("image_weight", torch.zeros(classes, image_width))
        self.register_buffer("image_bias", torch.zeros(classes))
        self.register_buffer("conformal_threshold", torch.ones(()))  # 1.0 = every class (not calibrated)
        self.register_buffer("class_mean", torch.zeros(classes, latent))
        self.register_buffer("class_logvar", torch.zeros(classes, latent))
        self.graph: nn.Module | None = None  # --classifier graph: a GraphClassifier over the latent bank (saved apart)

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
        evidence = self.evidence(inputs, masks)
        return self.probabilities(evidence), evidence.posterior.mu

    def patterns(self, masks: Tensors) -> torch.Tensor:
        """``(B,)`` pattern index per row: bit ``i`` set when modality ``spec.modalities.names[i]`` is present."""
        names = self.spec.modalities.names
        reference = next(iter(masks.values()))
        index = torch.zeros(reference.shape[0], dtype=torch.long, device=reference.device)
        for bit, name in enumerate(names):
            if name in masks:
                index = index + masks[name].long() * (1 << bit)
        return index

    def evidence(self, inputs: Tensors, masks: Tensors) -> Evidence:
        """The fused posterior, the image stage's logits and the head at the image-alone posterior, each modality's
        network run once."""
        subsets = [masks]
        image = "image" in masks and "image" in inputs
        if image and len(self.spec.modalities.names) > 1:
            subsets.append(withheld(masks, ("image",)))
        posteriors, features = self.vae.posteriors(inputs, masks, subsets)
        q = posteriors[0]
        zeros = q.mu.new_zeros(q.mu.shape[0], len(self.spec.label_names))
        present = masks["image"].unsqueeze(-1).to(q.mu.dtype) if image else None
        stage = F.linear(features["image"], self.image_weight, self.image_bias) * present \
            if present is not None and "image" in features and self.image_weight.shape[1] else zeros  # fmt: skip
        alone = self.head(posteriors[1].mu) * present if len(posteriors) > 1 else zeros
        lexical = zeros
        if self.lexical is not None and "text" in masks and LEXICAL_INPUT in inputs:
            lexical = inputs[LEXICAL_INPUT].to(q.mu.dtype) * masks["text"].unsqueeze(-1).to(q.mu.dtype)
        return Evidence(q, self.patterns(masks), stage, alone, lexical)

    def logits(self, evidence: Evidence, z: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated logits ``(..., B, C)`` of ``evidence`` with the fused latent at ``z`` (``(B, D)`` or
        ``(S, B, D)`` draws; None: the posterior mean); the other sources stay at their means."""
        weights = self.pattern_weight[evidence.pattern].to(evidence.image.dtype)  # (B, 4)
        head = self.head(evidence.posterior.mu if z is None else z)
        return (weights[:, :1] * head + weights[:, 1:2] * evidence.image + weights[:, 2:3] * evidence.image_latent
                + weights[:, 3:4] * evidence.lexical)

    def probabilities(self, evidence: Evidence, z: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated class probabilities ``(..., B, C)``; see :meth:`logits`."""
        return torch.softmax(self.logits(evidence, z), dim=-1)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(..., C)`` for latents without a modality pattern (e.g. generated ones): the head at the
        overall temperature."""
        return torch.softmax(self.head(z) / self.temperature, dim=-1)

    @torch.no_grad()
    def set_image_heads(self, heads: list[tuple[nn.Linear, float]]) -> None:
        """Take the image stage's heads, one ``(linear head, temperature)`` per member of the image network, as the
        image evidence: the mean of the members' temperature-scaled logits.

        Raises:
            ValueError: The heads do not fit the image network's features.
        """
        width = self.spec.fusion.feature_dim
        if len(heads) * width != self.image_weight.shape[1]:
            raise ValueError(f"{len(heads)} image head(s) of {width} features do not fit {self.image_weight.shape[1]}")
        self.image_weight.zero_(), self.image_bias.zero_()
        for k, (head, temperature) in enumerate(heads):
            scale = 1.0 / (len(heads) * temperature)
            self.image_weight[:, k * width : (k + 1) * width] = head.weight * scale
            self.image_bias.add_(head.bias * scale)

    def sample_probabilities(self, inputs: Tensors, masks: Tensors, samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Probabilities at the posterior mean ``(B, C)``, the mean ``(B, D)``, and at ``samples`` draws ``(S, B, C)``."""
        evidence = self.evidence(inputs, masks)
        q = evidence.posterior
        draws = q.mu + torch.randn(samples, *q.mu.shape, device=q.mu.device) * torch.exp(0.5 * q.logvar)  # (S, B, D)
        return self.probabilities(evidence), q.mu, self.probabilities(evidence, draws)


def default_pattern_weights(modalities: int, temperatures: torch.Tensor | None = None) -> torch.Tensor:
    """``(2^M, 4)`` weights that read the head alone, at ``temperatures`` (``(2^M,)``; None: 1)."""
    weights = torch.zeros(2**modalities, EVIDENCE_SOURCES)
    weights[:, 0] = 1.0 if temperatures is None else 1.0 / temperatures
    return weights


def withheld(masks: Tensors, kept: Collection[str]) -> dict[str, torch.Tensor]:
    """``masks`` with every modality outside ``kept`` withheld."""
    return {m: v if m in kept else torch.zeros_like(v) for m, v in masks.items()}
