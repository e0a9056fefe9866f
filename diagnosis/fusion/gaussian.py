"""Diagonal Gaussians: the currency of the fusion experts."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Gaussian", "kl_to_standard_normal", "product_of_experts"]


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


def product_of_experts(experts: list[Gaussian], masks: list[torch.Tensor]) -> Gaussian:
    """Precision-weighted product of the present experts and a standard-normal prior expert.

    Args:
        experts: One Gaussian per modality, each ``(B, D)``.
        masks: One bool tensor ``(B,)`` per modality; ``False`` removes that expert for that sample.

    Returns:
        The product ``(B, D)``; a sample with no expert present gets the prior.
    """
    precision = torch.ones_like(experts[0].mu)  # the prior expert N(0, I)
    weighted_mu = torch.zeros_like(experts[0].mu)
    for expert, mask in zip(experts, masks, strict=True):
        p = torch.exp(-expert.logvar) * mask.unsqueeze(-1).to(expert.mu.dtype)  # (B, D)
        precision = precision + p
        weighted_mu = weighted_mu + p * expert.mu
    return Gaussian(weighted_mu / precision, -torch.log(precision))
