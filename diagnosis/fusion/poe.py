"""Product of experts (MVAE, Wu & Goodman 2018) with a standard-normal prior expert."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from diagnosis.fusion.base import ExpertFusionVAE
from diagnosis.fusion.gaussian import Gaussian, product_of_experts

__all__ = ["PoEVAE"]


class PoEVAE(ExpertFusionVAE):
    """Fuses the present experts by a precision-weighted product; a case with one modality still gets a latent.

    Examples:
        >>> from diagnosis.fusion import FusionConfig, ModalitySpec, build_networks
        >>> enc, dec = build_networks(ModalitySpec(vectors={"text": 8}), latent_dim=4, feature_dim=16)
        >>> vae = PoEVAE(enc, dec, FusionConfig(latent_dim=4))
        >>> q = vae.posterior({"text": torch.zeros(2, 8)}, {"text": torch.tensor([True, False])})
        >>> q.mu.shape
        torch.Size([2, 4])
    """

    name = "poe"  # ``--fusion`` value (see :data:`~diagnosis.fusion.config.FUSIONS`)

    def fuse(self, experts: Mapping[str, Gaussian], masks: Mapping[str, torch.Tensor]) -> Gaussian:
        """Product of the experts present in each sample with the prior N(0, I)."""
        names = [m for m in self.modalities if m in experts]
        if not names:
            return self.prior(masks)
        return product_of_experts([experts[m] for m in names], [masks[m] for m in names])
