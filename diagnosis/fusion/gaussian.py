"""Diagonal Gaussians: the currency of the fusion experts."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Gaussian", "kl_to_standard_normal", "mixture_moments", "product_of_experts"]


class Gaussian(NamedTuple):
    """A diagonal Gaussian; both tensors are ``(B, D)``."""

    mu: torch.Tensor
    logvar: torch.Tensor

    def sample(self) -> torch.Tensor:
        """Reparameterised sample ``(B, D)``."""
        return self.mu + torch.randn_like(self.mu) * torch.exp(0.5 * self.logvar)


def kl_to_standard_normal(q: Gaussian) -> torch.Tensor:
    """KL(q || N(0, I)) per sample, ``(B,)``."""
    return 0.5 * (q.mu.pow(2) + q.logvar.exp() - 1.0 - q.logvar).sum(-1)


def product_of_experts(experts: list[Gaussian], masks: list[torch.Tensor], prior: bool = True) -> Gaussian:
    """Precision-weighted product of the present experts, with a standard-normal prior expert by default.

    Args:
        experts: One Gaussian per modality, each ``(B, D)``.
        masks: One bool tensor ``(B,)`` per modality; ``False`` removes that expert for that sample.
        prior: Include the N(0, I) prior expert (a sample with no expert present then gets the prior).

    Returns:
        The product ``(B, D)``.
    """
    precision = torch.full_like(experts[0].mu, 1.0 if prior else 1e-6)
    weighted_mu = torch.zeros_like(experts[0].mu)
    for expert, mask in zip(experts, masks, strict=True):
        p = torch.exp(-expert.logvar) * mask.unsqueeze(-1).to(expert.mu.dtype)  # (B, D)
        precision = precision + p
        weighted_mu = weighted_mu + p * expert.mu
    return Gaussian(weighted_mu / precision, -torch.log(precision))


def mixture_moments(components: list[Gaussian], masks: list[torch.Tensor]) -> Gaussian:
    """The Gaussian with the mean and variance of a uniform mixture of the present components.

    Args:
        components: Gaussians ``(B, D)``.
        masks: ``(B,)`` bool per component; a sample without any component gets N(0, I).

    Returns:
        Moment-matched Gaussian ``(B, D)``.
    """
    weights = torch.stack([m.to(components[0].mu.dtype) for m in masks])  # (K, B)
    count = weights.sum(0).clamp(min=1.0).unsqueeze(-1)  # (B, 1)
    mus = torch.stack([c.mu for c in components])  # (K, B, D)
    second = torch.stack([c.logvar.exp() + c.mu.pow(2) for c in components])
    w = weights.unsqueeze(-1)
    mean = (w * mus).sum(0) / count
    var = ((w * second).sum(0) / count - mean.pow(2)).clamp(min=1e-6)
    empty = (weights.sum(0) == 0).unsqueeze(-1)
    return Gaussian(torch.where(empty, torch.zeros_like(mean), mean), torch.where(empty, torch.zeros_like(var), var.log()))
