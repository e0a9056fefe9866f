"""Random image augmentation for training the image encoder: MONAI spatial and intensity transforms, seeded.

Shifts, small rotations and scaling, then contrast (gamma), intensity scaling and Gaussian noise. Flips are off by
default: a chest radiograph's left and right are not interchangeable (the heart is on the left), so a flip makes an
image no real patient has. Datasets where a flip is harmless (skin lesions, histology, blood cells) turn it on with
``flip_axes``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import radians

import torch
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    RandAdjustContrast,
    RandAffine,
    RandFlip,
    RandGaussianNoise,
    RandScaleIntensity,
)

__all__ = ["ImageAugmentation", "ImageAugmenter"]


@dataclass(frozen=True)
class ImageAugmentation:
    """Random transforms applied to training images (stored with the model version)."""

    enabled: bool = True  # False: train on the images as they are
    affine_prob: float = 0.9  # chance that an image is shifted / rotated / scaled
    rotate_degrees: float = 10.0  # rotation drawn from ±this, about each axis
    translate: float = 0.1  # shift drawn from ±this fraction of the side
    scale: float = 0.1  # zoom drawn from 1 ± this
    gamma: tuple[float, float] = (0.7, 1.4)  # contrast: intensities raised to a power in this range (prob 0.5)
    intensity_scale: float = 0.15  # intensities multiplied by 1 ± this (prob 0.5)
    noise_std: float = 0.03  # Gaussian noise of this standard deviation (prob 0.3); images live in [0, 1]
    flip_axes: tuple[int, ...] = ()  # spatial axes that may be mirrored (prob 0.5 each); () for radiographs

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", tuple(float(g) for g in self.gamma))  # JSON gives lists back
        object.__setattr__(self, "flip_axes", tuple(int(a) for a in self.flip_axes))
        if len(self.gamma) != 2 or not 0 < self.gamma[0] <= self.gamma[1]:
            raise ValueError(f"gamma needs a range (low, high) with 0 < low <= high, got {self.gamma}")
        for name in ("affine_prob", "translate", "scale", "intensity_scale", "noise_std"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


class ImageAugmenter:
    """Applies :class:`ImageAugmentation` to batches of preprocessed images, each image drawn independently.

    Args:
        config: Which transforms, how strong.
        spatial_dims: 2 or 3.
        size: Side of the model grid (shifts are a fraction of it).
        seed: Seed of the transforms' random state (the same seed gives the same batches).

    Examples:
        >>> augmenter = ImageAugmenter(ImageAugmentation(), spatial_dims=2, size=32, seed=0)
        >>> augmenter(torch.rand(4, 1, 32, 32)).shape
        torch.Size([4, 1, 32, 32])
    """

    def __init__(self, config: ImageAugmentation, spatial_dims: int, size: int, seed: int = 0) -> None:
        if any(a >= spatial_dims for a in config.flip_axes):
            raise ValueError(f"flip_axes {config.flip_axes} name axes beyond the {spatial_dims} spatial axes")
        rotate = radians(config.rotate_degrees)
        steps = [
            RandAffine(prob=config.affine_prob, rotate_range=(rotate,) * (1 if spatial_dims == 2 else 3),
                       translate_range=(config.translate * size,) * spatial_dims, scale_range=(config.scale,) * spatial_dims,
                       padding_mode="border"),  # fmt: skip
            RandAdjustContrast(prob=0.5, gamma=config.gamma),
            RandScaleIntensity(factors=config.intensity_scale, prob=0.5),
            RandGaussianNoise(prob=0.3, std=config.noise_std),
        ]
        steps += [RandFlip(prob=0.5, spatial_axis=axis) for axis in config.flip_axes]
        self.enabled = config.enabled
        self.transform = Compose(steps)
        self.transform.set_random_state(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, *grid)`` images in [0, 1] -> augmented copies of the same shape, clipped to [0, 1]."""
        if not self.enabled:
            return images
        tracking = get_track_meta()
        set_track_meta(False)  # plain tensors: MONAI's metadata costs ~2x per small image and is not needed here
        try:
            out = torch.stack([torch.as_tensor(self.transform(image)) for image in images.cpu()])
        finally:
            set_track_meta(tracking)
        return out.clamp_(0.0, 1.0).to(images.device)
