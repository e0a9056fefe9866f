"""Configuration of the fusion models (stored with every model version)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["FusionConfig", "FUSIONS", "LEGACY_IMAGE_NETWORK"]

FUSIONS = ("poe", "moe", "mopoe", "concat", "ae", "stacked_ae", "sparse_ae")  # ``diagnosis train --fusion`` values:
# the four multimodal VAEs, then the deterministic autoencoders (diagnosis/fusion/autoencoders.py)
# checkpoints saved before these fields existed
LEGACY_IMAGE_NETWORK = {"image_channels": (16, 32, 64), "image_res_units": 1, "image_members": 1}


@dataclass(frozen=True)
class FusionConfig:
    """Multimodal VAE settings."""

    fusion: str = "poe"  # how experts are combined; see FUSIONS
    latent_dim: int = 32  # size of the shared latent
    feature_dim: int = 128  # output size of each modality's feature network
    beta: float = 1.0  # weight of the KL term after warm-up
    kl_warmup_epochs: int = 5  # beta rises linearly from 0 over these epochs
    likelihood_sigma: dict[str, float] = field(default_factory=lambda: {"image": 0.2, "text": 0.1})
    # per-modality Gaussian likelihood scale: smaller sigma = that modality's reconstruction weighs more
    classifier_weight: float = 200.0  # weight of the diagnosis cross-entropy against the ELBO
    modality_dropout: float = 0.2  # chance of hiding one modality of a complete case in the joint term
    subset_sampling: bool = True  # moe / mopoe training: decode one sampled mixture component per case (MultiVae's
    # unbiased estimator) instead of every component; False: the full objective
    image_channels: tuple[int, ...] = (32, 64, 128)  # image feature network: channels per stage (each halves the grid)
    image_res_units: int = 2  # image feature network: residual units per stage
    sparsity_target: float = 0.05  # sparse_ae: the mean activation each code unit is pushed towards
    sparsity_weight: float = 50.0  # sparse_ae: weight of the KL sparsity penalty against the reconstruction
    layerwise_epochs: int = 3  # stacked_ae: epochs of greedy pre-training per joint layer before fine-tuning
    image_members: int = 3  # image feature network: an ensemble of this many networks, each trained by the image
    # stage with its own seed; their features are concatenated (3 members: P1 image AUC 0.984 -> 0.986, see README)

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        object.__setattr__(self, "image_channels", tuple(int(c) for c in self.image_channels))  # JSON gives a list
        if self.image_members < 1:
            raise ValueError(f"image_members must be at least 1, got {self.image_members}")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)
