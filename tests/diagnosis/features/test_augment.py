"""Image augmentation: seeded, shape- and range-preserving MONAI transforms; flips only when asked for."""

from __future__ import annotations

import pytest
import torch
from monai.data import get_track_meta
from monai.transforms import RandFlip

from diagnosis.features.augment import ImageAugmentation, ImageAugmenter


@pytest.mark.parametrize("dims", [2, 3])
def test_augmentation_is_seeded_and_keeps_shape_and_range(dims: int) -> None:
    images = torch.rand(6, 1, *(16,) * dims)
    first = ImageAugmenter(ImageAugmentation(), dims, 16, seed=3)(images)
    again = ImageAugmenter(ImageAugmentation(), dims, 16, seed=3)(images)
    other = ImageAugmenter(ImageAugmentation(), dims, 16, seed=4)(images)
    assert first.shape == images.shape and first.dtype == torch.float32
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, again)  # same seed, same batch
    assert not torch.allclose(first, other)  # another seed draws other transforms
    assert not torch.allclose(first, images)  # something was changed
    assert get_track_meta()  # MONAI's global metadata switch is restored after the batch


def test_each_image_of_a_batch_gets_its_own_draw() -> None:
    image = torch.rand(1, 1, 16, 16)
    out = ImageAugmenter(ImageAugmentation(), 2, 16, seed=0)(image.repeat(4, 1, 1, 1))
    assert not torch.allclose(out[0], out[1])


def test_flips_are_off_by_default_and_configurable() -> None:
    default = ImageAugmenter(ImageAugmentation(), 2, 16).transform.transforms
    assert not any(isinstance(t, RandFlip) for t in default)  # radiographs: left and right are not interchangeable
    flipped = ImageAugmenter(ImageAugmentation(flip_axes=(0, 1)), 2, 16).transform.transforms
    assert sum(isinstance(t, RandFlip) for t in flipped) == 2
    with pytest.raises(ValueError, match="flip_axes"):
        ImageAugmenter(ImageAugmentation(flip_axes=(2,)), 2, 16)


def test_disabled_augmentation_returns_the_batch_and_bad_settings_are_refused() -> None:
    images = torch.rand(3, 1, 16, 16)
    assert torch.equal(ImageAugmenter(ImageAugmentation(enabled=False), 2, 16)(images), images)
    with pytest.raises(ValueError, match="gamma"):
        ImageAugmentation(gamma=(1.5, 1.0))
    with pytest.raises(ValueError, match="translate"):
        ImageAugmentation(translate=2.0)
    assert ImageAugmentation(gamma=[0.8, 1.2], flip_axes=[1]).flip_axes == (1,)  # JSON lists become tuples
