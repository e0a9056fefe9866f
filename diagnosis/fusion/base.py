"""The multimodal VAE interface shared by every fusion variant.

Encoders and decoders are passed in as dicts keyed by modality name, so a new modality needs no change here.
Missing modalities are boolean masks ``(B,)`` per modality; a missing input may hold anything (zeros by convention).
:class:`MultimodalVAE` holds the objective; a subclass says how the posterior of each modality subset is formed
(:meth:`MultimodalVAE.subset_posteriors`). :class:`ExpertFusionVAE` forms it from per-modality Gaussian experts:
its subclasses decide how experts combine (``fuse``) and which subsets the objective visits (``subsets``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from diagnosis.fusion.config import FusionConfig
from diagnosis.fusion.gaussian import Gaussian, kl_to_standard_normal
from diagnosis.fusion.networks import GaussianExpert

__all__ = ["ExpertFusionVAE", "MultimodalVAE", "SubsetTerm", "VAEOutput"]

Tensors = Mapping[str, torch.Tensor]
Subsets = list[tuple[str, dict[str, torch.Tensor]]]


@dataclass
class SubsetTerm:
    """One modality subset's part of the objective.

    Attributes:
        name: ``joint``, a modality name, or ``a+b`` for a subset.
        posterior: ``q(z | subset)``, ``(B, D)``.
        valid: ``(B,)`` bool, samples for which the subset holds at least one present modality.
        elbo_loss: ``(B,)`` negative ELBO (reconstruction of every present modality + beta * KL).
    """

    name: str
    posterior: Gaussian
    valid: torch.Tensor
    elbo_loss: torch.Tensor


@dataclass
class VAEOutput:
    """Result of a training forward pass: ``loss`` to minimise, ``metrics`` to log, per-subset terms.

    ``metrics`` are detached 0-d tensors on the model's device (``float()`` one to log it), so that a training step
    does not wait for the GPU.
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    terms: list[SubsetTerm]


class MultimodalVAE(nn.Module, ABC):
    """Base class of the fusion VAEs.

    Args:
        encoders: Modality name -> encoder network (a Gaussian expert, or a feature network for early fusion).
        decoders: Modality name -> network mapping ``z`` to a reconstruction of ``x_m``.
        config: Fusion settings (latent size, beta, likelihood scales, …).
    """

    name: str = ""  # the variant's ``--fusion`` value; each concrete variant sets it

    generative = True  # False: no prior over the latent to sample (deterministic autoencoders)
    samples_subsets = False  # True: the objective is a mixture over components that training may sample (MoE, MoPoE)

    def __init__(self, encoders: Mapping[str, nn.Module], decoders: Mapping[str, nn.Module], config: FusionConfig) -> None:
        super().__init__()
        if set(encoders) != set(decoders):
            raise ValueError(f"encoders {sorted(encoders)} and decoders {sorted(decoders)} must cover the same modalities")
        self.encoders = nn.ModuleDict(encoders)
        self.decoders = nn.ModuleDict(decoders)
        self.config = config
        self.modalities = tuple(sorted(encoders))

    @abstractmethod
    def posterior(self, inputs: Tensors, masks: Tensors) -> Gaussian:
        """``q(z | x)`` from the modalities present in each sample, ``(B, D)``."""

    @abstractmethod
    def subset_posteriors(self, inputs: Tensors, masks: Tensors) -> list[tuple[str, dict[str, torch.Tensor], Gaussian]]:
        """``(name, subset masks, posterior)`` for every term of the objective."""

    def posteriors(self, inputs: Tensors, masks: Tensors, subsets: Sequence[Tensors]
                   ) -> tuple[list[Gaussian], dict[str, torch.Tensor]]:
        """The posterior under each of ``subsets`` (masks of the same batch, each within ``masks``), and the features
        each modality's network computed (empty when the variant has none to give).

        Each modality's network runs once for all the subsets (subclasses override this default, which does not).
        """
        return [self.posterior(inputs, subset) for subset in subsets], {}

    def pretrain(self, batches: Callable[[], Iterable[tuple[Tensors, Tensors]]], epochs: int, lr: float = 1e-3,
                 on_layer: Callable[[dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """A stage before the objective's training, on unlabelled ``(inputs, masks)`` batches (``batches()`` yields
        one epoch); none for most variants. :class:`~diagnosis.fusion.autoencoders.StackedAE` pre-trains its joint
        layers greedily here.

        Returns:
            One record per part and epoch (empty: no stage).
        """
        return []

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruct every modality from ``z`` ``(B, D)``."""
        return {m: self.decoders[m](z) for m in self.modalities}

    def reconstruction_loss(self, inputs: Tensors, masks: Tensors, recon: Tensors) -> torch.Tensor:
        """Gaussian negative log-likelihood (up to a constant) of every present modality, ``(B,)``."""
        total = torch.zeros(next(iter(masks.values())).shape[0], device=next(self.parameters()).device)
        for m in self.modalities:
            if m not in inputs:
                continue
            sigma = self.config.likelihood_sigma.get(m, 0.1)
            err = (recon[m] - inputs[m]).pow(2).flatten(1).sum(-1) / (2 * sigma**2)  # (B,)
            total = total + err * masks[m].to(err.dtype)
        return total

    def forward(self, inputs: Tensors, masks: Tensors, beta: float | None = None) -> VAEOutput:
        """Negative ELBO over the subset terms of :meth:`subset_posteriors`.

        Args:
            inputs: Modality -> batch tensor (``(B, 1, *grid)`` for images, ``(B, F)`` for vectors).
            masks: Modality -> ``(B,)`` bool presence.
            beta: KL weight (defaults to ``config.beta``).

        Returns:
            The loss (sum over terms of the mean over valid samples), metrics and the per-subset terms.
        """
        beta = self.config.beta if beta is None else beta
        posteriors = self.subset_posteriors(inputs, masks)
        if self.training and self.samples_subsets and self.config.subset_sampling:
            return self._sampled(inputs, masks, posteriors, beta)
        terms: list[SubsetTerm] = []
        metrics: dict[str, torch.Tensor] = {}
        for name, subset, q in posteriors:
            valid = torch.stack([subset[m] for m in self.modalities if m in subset]).any(0)
            recon = self.decode(q.sample() if self.training else q.mu)
            rec, kl = self.reconstruction_loss(inputs, masks, recon), kl_to_standard_normal(q)
            terms.append(SubsetTerm(name, q, valid, rec + beta * kl))
            metrics[f"recon_{name}"] = _masked_mean(rec.detach(), valid)
            metrics[f"kl_{name}"] = _masked_mean(kl.detach(), valid)
        loss = torch.stack([_masked_mean(t.elbo_loss, t.valid) for t in terms]).sum()
        return VAEOutput(loss=loss, metrics=metrics, terms=terms)

    def _valid(self, subset: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([subset[m] for m in self.modalities if m in subset]).any(0)

    def _sampled(self, inputs: Tensors, masks: Tensors, posteriors: list[tuple[str, dict[str, torch.Tensor], Gaussian]],
                 beta: float) -> VAEOutput:
        """The mixture objective with one sampled component per case (MultiVae's estimator of MoE / MoPoE).

        The full objective decodes every component's sample (each unimodal expert for MoE, each subset's PoE for
        MoPoE) and sums their ELBOs. Here each case draws one of its valid components uniformly; that one is decoded
        and its ELBO, times the number of valid components, is an unbiased estimate of the sum. Every component's
        posterior still reaches the diagnosis head (terms with a zero ELBO): only decoding is sampled.
        """
        components = [(name, subset, q) for name, subset, q in posteriors if name != "joint"]
        valid = torch.stack([self._valid(subset) for _, subset, _ in components])  # (K, B)
        weights = valid.to(components[0][2].mu.dtype).T  # (B, K)
        usable = valid.any(0)
        choice = torch.multinomial(torch.where(usable.unsqueeze(-1), weights, torch.ones_like(weights)), 1).squeeze(-1)
        rows = torch.arange(choice.shape[0], device=choice.device)
        mu = torch.stack([q.mu for _, _, q in components])[choice, rows]  # (B, D)
        logvar = torch.stack([q.logvar for _, _, q in components])[choice, rows]
        drawn = Gaussian(mu, logvar)
        rec = self.reconstruction_loss(inputs, masks, self.decode(drawn.sample()))
        kl = kl_to_standard_normal(drawn)
        scale = weights.sum(-1)  # valid components per case
        zero = torch.zeros_like(scale)
        terms = [SubsetTerm(name, q, self._valid(subset), zero) for name, subset, q in posteriors]
        loss = _masked_mean((rec + beta * kl) * scale, usable)
        metrics = {"recon_sampled": _masked_mean(rec.detach(), usable), "kl_sampled": _masked_mean(kl.detach(), usable)}
        return VAEOutput(loss=loss, metrics=metrics, terms=terms)


class ExpertFusionVAE(MultimodalVAE):
    """A multimodal VAE whose encoders are Gaussian experts ``q(z | x_m)``, combined by :meth:`fuse`."""

    def encode_experts(self, inputs: Tensors, masks: Tensors,
                       features: dict[str, torch.Tensor] | None = None) -> dict[str, Gaussian]:
        """Run each modality's expert on the batch (skipped when no sample has that modality).

        Args:
            inputs: Modality -> batch tensor.
            masks: Modality -> ``(B,)`` presence.
            features: When given, filled with each run expert's backbone features ``(B, F)``.
        """
        out: dict[str, Gaussian] = {}
        for m in self.modalities:
            if m not in inputs or not bool(masks[m].any()):
                continue
            encoder = self.encoders[m]
            if features is None or not isinstance(encoder, GaussianExpert):
                out[m] = encoder(inputs[m])
                continue
            features[m] = encoder.backbone(inputs[m])
            out[m] = encoder.gaussian(features[m])
        return out

    @abstractmethod
    def fuse(self, experts: Mapping[str, Gaussian], masks: Tensors) -> Gaussian:
        """Combine the present experts into ``q(z | present modalities)``, ``(B, D)``."""

    def subsets(self, masks: Tensors) -> Subsets:
        """Modality subsets the objective visits: the joint and each single modality (sub-sampled ELBO terms)."""
        out = [("joint", dict(masks))]
        if len(self.modalities) > 1:
            for m in self.modalities:
                out.append((m, {k: v & (k == m) for k, v in masks.items()}))
        return out

    def posterior(self, inputs: Tensors, masks: Tensors) -> Gaussian:
        """``q(z | x)`` from the modalities present in each sample."""
        return self.fuse(self.encode_experts(inputs, masks), masks)

    def posteriors(self, inputs: Tensors, masks: Tensors, subsets: Sequence[Tensors]
                   ) -> tuple[list[Gaussian], dict[str, torch.Tensor]]:
        """The posterior under each of ``subsets``, each expert run once; and the experts' backbone features."""
        features: dict[str, torch.Tensor] = {}
        experts = self.encode_experts(inputs, masks, features)
        return [self.fuse(experts, subset) for subset in subsets], features

    def subset_posteriors(self, inputs: Tensors, masks: Tensors) -> list[tuple[str, dict[str, torch.Tensor], Gaussian]]:
        """The posterior of every subset from :meth:`subsets`, encoding each modality once."""
        experts = self.encode_experts(inputs, masks)
        return [(name, subset, self.fuse(experts, subset)) for name, subset in self.subsets(masks)]

    def prior(self, masks: Tensors) -> Gaussian:
        """N(0, I) for every sample of the batch."""
        batch = next(iter(masks.values())).shape[0]
        zeros = torch.zeros(batch, self.config.latent_dim, device=next(self.parameters()).device)
        return Gaussian(zeros, zeros.clone())


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over samples where ``mask`` holds (0 when none)."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)
