"""Dataset preprocessing configured, not coded: orientation, spacing, intensity, recorded in the model spec."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diagnosis.classify import ModelSpec
from diagnosis.features import ImagePreprocessing, preprocess_image
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.ingest import load_image
from diagnosis.training import plan_model


def _volume(tmp_path: Path, flip_x: bool) -> Path:
    """A volume whose intensity rises along world x; stored with the x axis mirrored when ``flip_x``."""
    ramp = np.broadcast_to(np.linspace(0, 1, 24)[:, None, None], (24, 24, 24)).astype(np.float32).copy()
    data = ramp[::-1].copy() if flip_x else ramp
    affine = np.diag([-2.0 if flip_x else 2.0, 2.0, 2.0, 1.0])
    path = tmp_path / f"v{int(flip_x)}.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_orientation_brings_mirrored_volumes_to_the_same_grid(tmp_path: Path) -> None:
    config = ImagePreprocessing(spatial_dims=3, size=16, orientation="RAS")
    plain, mirrored = (load_image(_volume(tmp_path, flip)) for flip in (False, True))
    assert mirrored.affine is not None and mirrored.spacing == pytest.approx((2.0, 2.0, 2.0))
    a, b = preprocess_image(plain, config), preprocess_image(mirrored, config)
    assert np.allclose(a, b, atol=1e-4)
    unoriented = preprocess_image(mirrored, ImagePreprocessing(spatial_dims=3, size=16))
    assert not np.allclose(a, unoriented, atol=1e-2)  # without the option the stored axis order is kept


def test_target_spacing_resamples_before_resizing(tmp_path: Path) -> None:
    volume = load_image(_volume(tmp_path, False))
    coarse = preprocess_image(volume, ImagePreprocessing(spatial_dims=3, size=16, target_spacing=(4.0, 4.0, 4.0)))
    assert coarse.shape == (1, 16, 16, 16) and coarse.min() >= 0 and coarse.max() <= 1
    with pytest.raises(ValueError, match="three positive"):
        ImagePreprocessing(spatial_dims=3, target_spacing=(1.0, 0.0, 1.0))


def test_preprocessing_round_trips_through_the_model_spec() -> None:
    image = ImagePreprocessing(spatial_dims=3, size=16, intensity="window", window_center=-600, window_width=1500,
                               orientation="RAS", target_spacing=(1.5, 1.5, 2.0))
    spec = ModelSpec(("a", "b"), ModalitySpec(image=image), FusionConfig())
    assert ModelSpec.from_dict(spec.to_dict()) == spec


class _Case:
    def __init__(self, path: Path, label: str) -> None:
        self.image_path, self.text, self.label = str(path), None, label


def test_plan_takes_dataset_options_and_refuses_unknown_ones(tmp_path: Path) -> None:
    cases = [_Case(_volume(tmp_path, False), "a"), _Case(_volume(tmp_path, True), "b")]
    spec = plan_model(cases, FusionConfig(), None, image_options={"orientation": "RAS", "size": 16})
    assert spec.modalities.image == ImagePreprocessing(spatial_dims=3, size=16, orientation="RAS")
    with pytest.raises(ValueError, match="unknown preprocessing option"):
        plan_model(cases, FusionConfig(), None, image_options={"spatial_dims": 2})
    with pytest.raises(ValueError, match="unknown preprocessing option"):
        plan_model(cases, FusionConfig(), None, image_options={"zoom": 2})
