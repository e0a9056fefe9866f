"""Per-modality encoder (expert) and decoder networks, built from a modality spec."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from monai.networks.blocks import Convolution
from torch import nn

from diagnosis.features.image import ImageFeatureNet, ImagePreprocessing
from diagnosis.fusion.gaussian import Gaussian

__all__ = ["GaussianExpert", "ImageDecoder", "ModalitySpec", "VectorDecoder", "VectorFeatureNet", "build_networks"]


@dataclass(frozen=True)
class ModalitySpec:
    """Which modalities a model has: an image grid and/or named feature vectors (text embedding, vitals, …)."""

    image: ImagePreprocessing | None = None  # None: the model has no image modality
    vectors: dict[str, int] = field(default_factory=dict)  # name -> vector size, e.g. {"text": 384}

    @property
    def names(self) -> tuple[str, ...]:
        """Modality names in a fixed order."""
        return (("image",) if self.image else ()) + tuple(sorted(self.vectors))


class GaussianExpert(nn.Module):
    """A feature network followed by linear heads giving ``q(z | x_m)``."""

    def __init__(self, backbone: nn.Module, feature_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.mu = nn.Linear(feature_dim, latent_dim)
        self.logvar = nn.Linear(feature_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> Gaussian:
        """``x`` -> Gaussian with ``(B, latent_dim)`` parameters."""
        return self.gaussian(self.backbone(x))

    def gaussian(self, h: torch.Tensor) -> Gaussian:
        """The Gaussian of backbone features ``h`` ``(B, feature_dim)``."""
        return Gaussian(self.mu(h), self.logvar(h).clamp(-8.0, 8.0))


class VectorFeatureNet(nn.Sequential):
    """MLP feature network for vector modalities ``(B, in_dim) -> (B, feature_dim)``."""

    def __init__(self, in_dim: int, feature_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, 256), nn.LayerNorm(256), nn.SiLU(), nn.Dropout(0.1), nn.Linear(256, feature_dim), nn.SiLU()
        )


class VectorDecoder(nn.Sequential):
    """MLP decoder ``(B, latent_dim) -> (B, out_dim)``."""

    def __init__(self, latent_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(latent_dim, 256), nn.SiLU(), nn.Linear(256, out_dim))


class ImageDecoder(nn.Module):
    """Decodes a latent to pixels in [0, 1] on the preprocessing grid, with MONAI transposed convolutions.

    Args:
        preprocessing: Output grid (2D or 3D, side ``size`` divisible by 8).
        latent_dim: Latent size.
        channels: Channels per upsampling stage, coarse to fine.
    """

    def __init__(self, preprocessing: ImagePreprocessing, latent_dim: int, channels: tuple[int, ...] = (64, 32, 16)) -> None:
        super().__init__()
        dims, self.start = preprocessing.spatial_dims, preprocessing.size // 2 ** len(channels)
        self.channels0 = channels[0]
        self.fc = nn.Linear(latent_dim, channels[0] * self.start**dims)
        ups: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:] + (channels[-1],), strict=True):
            ups.append(Convolution(dims, c_in, c_out, strides=2, kernel_size=3, is_transposed=True, act="PRELU", norm="BATCH"))
        ups.append(Convolution(dims, channels[-1], 1, kernel_size=3, conv_only=True))
        self.up = nn.Sequential(*ups)
        self.dims = dims

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim)`` -> ``(B, 1, *grid)``."""
        h = self.fc(z).view(z.shape[0], self.channels0, *(self.start,) * self.dims)
        return torch.sigmoid(self.up(h))


def build_networks(
    spec: ModalitySpec, latent_dim: int, feature_dim: int, experts: bool = True,
    image_channels: tuple[int, ...] = (32, 64, 128), image_res_units: int = 2, image_members: int = 1,
) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """Encoders and decoders for every modality in ``spec``, keyed by modality name.

    Args:
        spec: The modalities.
        latent_dim: Latent size.
        feature_dim: Feature size of each encoder's backbone.
        experts: True: encoders are Gaussian experts; False: plain feature networks (early fusion).
        image_channels: Channels per stage of the image feature network.
        image_res_units: Residual units per stage of the image feature network.
        image_members: Member networks of the image feature network (an ensemble; features concatenated).
    """
    backbones: dict[str, nn.Module] = {}
    decoders: dict[str, nn.Module] = {}
    if spec.image is not None:
        backbones["image"] = ImageFeatureNet(spec.image, feature_dim, image_channels, image_res_units, image_members)
        decoders["image"] = ImageDecoder(spec.image, latent_dim)
    for name, size in spec.vectors.items():
        backbones[name] = VectorFeatureNet(size, feature_dim)
        decoders[name] = VectorDecoder(latent_dim, size)
    if not experts:
        return backbones, decoders
    return {m: GaussianExpert(net, getattr(net, "out_dim", feature_dim), latent_dim) for m, net in backbones.items()}, decoders
