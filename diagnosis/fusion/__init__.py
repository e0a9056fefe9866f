"""Fusion stage: multimodal VAEs combining per-modality Gaussian experts into one latent."""

from __future__ import annotations

from diagnosis.fusion.base import MultimodalVAE, SubsetTerm, VAEOutput
from diagnosis.fusion.config import FUSIONS, FusionConfig
from diagnosis.fusion.gaussian import Gaussian, kl_to_standard_normal, product_of_experts
from diagnosis.fusion.networks import ModalitySpec, build_networks
from diagnosis.fusion.poe import PoEVAE

__all__ = [
    "FUSIONS",
    "FusionConfig",
    "Gaussian",
    "ModalitySpec",
    "MultimodalVAE",
    "PoEVAE",
    "SubsetTerm",
    "VAEOutput",
    "build_fusion",
    "build_networks",
    "kl_to_standard_normal",
    "product_of_experts",
]

_VARIANTS: dict[str, type[MultimodalVAE]] = {"poe": PoEVAE}


def build_fusion(spec: ModalitySpec, config: FusionConfig) -> MultimodalVAE:
    """Build the fusion model named by ``config.fusion`` with networks for every modality in ``spec``."""
    encoders, decoders = build_networks(spec, config.latent_dim, config.feature_dim)
    return _VARIANTS[config.fusion](encoders, decoders, config)
