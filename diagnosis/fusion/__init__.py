"""Fusion stage: multimodal VAEs combining per-modality Gaussian experts into one latent, and deterministic multimodal
autoencoders (plain, stacked, sparse) over the same feature networks."""

from __future__ import annotations

from diagnosis.fusion.autoencoders import CODE_LOGVAR, MultimodalAE, SparseAE, StackedAE
from diagnosis.fusion.base import ExpertFusionVAE, MultimodalVAE, SubsetTerm, VAEOutput
from diagnosis.fusion.concat import ConcatVAE
from diagnosis.fusion.config import FUSIONS, FusionConfig
from diagnosis.fusion.gaussian import Gaussian, kl_to_standard_normal, mixture_moments, product_of_experts
from diagnosis.fusion.mixtures import MoEVAE, MoPoEVAE
from diagnosis.fusion.networks import ModalitySpec, build_networks
from diagnosis.fusion.poe import PoEVAE

__all__ = [
    "CODE_LOGVAR",
    "ConcatVAE",
    "ExpertFusionVAE",
    "FUSIONS",
    "FusionConfig",
    "Gaussian",
    "ModalitySpec",
    "MoEVAE",
    "MoPoEVAE",
    "MultimodalAE",
    "MultimodalVAE",
    "PoEVAE",
    "SparseAE",
    "StackedAE",
    "SubsetTerm",
    "VAEOutput",
    "build_fusion",
    "build_networks",
    "kl_to_standard_normal",
    "mixture_moments",
    "product_of_experts",
]

_VARIANTS: dict[str, type[MultimodalVAE]] = {cls.name: cls for cls in (PoEVAE, MoEVAE, MoPoEVAE, ConcatVAE, MultimodalAE, StackedAE,
                                                                      SparseAE)}
if tuple(_VARIANTS) != FUSIONS:  # FUSIONS (in config, importable without the networks) names exactly these
    raise ImportError(f"fusion variants {tuple(_VARIANTS)} do not match FUSIONS {FUSIONS}")


def build_fusion(spec: ModalitySpec, config: FusionConfig) -> MultimodalVAE:
    """Build the fusion model named by ``config.fusion`` with networks for every modality in ``spec``."""
    variant = _VARIANTS[config.fusion]
    experts = issubclass(variant, ExpertFusionVAE)
    encoders, decoders = build_networks(spec, config.latent_dim, config.feature_dim, experts=experts,
                                        image_channels=config.image_channels, image_res_units=config.image_res_units,
                                        image_members=config.image_members)
    return variant(encoders, decoders, config)
