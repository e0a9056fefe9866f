"""Generation: class-conditional samples, decoded views of a case, the nearest-text look-up and the decoded-image
writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.generation import cross_modal_coherence, decode_case, nearest_rows, sample_class, write_decoded_image
from diagnosis.ingest import load_image
from diagnosis.training import FitResult, TrainConfig, fit
from diagnosis.training.image_stage import ImageStageConfig

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)


@pytest.fixture(scope="module")
def trained(toy_table: ToyTable) -> FitResult:
    modalities = ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 8})
    spec = ModelSpec(("negative", "positive"), modalities,
                     FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=2, image_members=1))  # fmt: skip
    return fit(spec, toy_table(160, 0), toy_table(120, 1),
               TrainConfig(epochs=6, batch_size=32, lr=3e-3, image_stage=ImageStageConfig(epochs=3)))  # fmt: skip


def test_class_samples_decode_every_modality_and_stay_in_their_class(trained: FitResult) -> None:
    model = trained.model
    samples = sample_class(model, "positive", 32, seed=3)
    assert samples.latents.shape == (32, 4) and samples.outputs["image"].shape == (32, 1, 16, 16)
    assert samples.outputs["text"].shape == (32, 8) and samples.probabilities.shape == (32, 2)
    image = samples.outputs["image"]
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0  # pixels, as the decoder's output layer bounds them
    assert float((samples.probabilities.argmax(1) == 1).mean()) >= 0.75  # the model diagnoses its own samples
    np.testing.assert_array_equal(sample_class(model, "positive", 32, seed=3).latents, samples.latents)  # seeded
    typical = sample_class(model, "positive", 32, seed=3, temperature=0.1).latents
    mean = model.class_mean[1].cpu().numpy()
    assert np.abs(typical - mean).mean() < np.abs(samples.latents - mean).mean()  # temperature narrows the draw
    with pytest.raises(ValueError, match="unknown diagnosis 'other'"):
        sample_class(model, "other", 2)


def test_decoded_views_start_from_the_modalities_a_case_has(trained: FitResult, toy_table: ToyTable) -> None:
    table = toy_table(40, 2)
    both = int(np.flatnonzero(table.masks["image"] & table.masks["text"])[0])
    text_only = int(np.flatnonzero(~table.masks["image"] & table.masks["text"])[0])
    views = decode_case(trained.model, table, both, torch.device("cpu"))
    assert views.reconstruction.shape == (1, 16, 16) and views.image_from_text.shape == (1, 16, 16)
    assert views.text_from_image.shape == (8,)
    alone = decode_case(trained.model, table, text_only, torch.device("cpu"))
    assert alone.reconstruction is None and alone.text_from_image is None and alone.image_from_text is not None


def test_nearest_rows_rank_by_cosine_and_coherence_counts_first_neighbours() -> None:
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    queries = np.array([[2.0, 0.1], [0.1, 3.0]])
    rows = nearest_rows(queries, bank, k=2)
    assert rows.tolist() == [[0, 2], [1, 2]] and nearest_rows(queries, bank, k=9).shape == (2, 3)
    labels = np.array(["a", "b", "a"])
    assert cross_modal_coherence(["a", "a"], labels, rows) == 0.5
    assert np.isnan(cross_modal_coherence([], labels, rows[:0]))


@pytest.mark.parametrize("shape", [(1, 16, 12), (1, 8, 9, 10)])
def test_a_decoded_image_reads_back_as_the_grid_the_model_decoded(tmp_path: Path, shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).random(shape).astype(np.float32)
    path, fmt = write_decoded_image(pixels, tmp_path / "case-reconstruction")
    assert (path.name, fmt) == (("case-reconstruction.png", "png") if len(shape) == 3 else
                                ("case-reconstruction.nii.gz", "nifti"))  # fmt: skip
    scale = 255 if fmt == "png" else 1000
    np.testing.assert_allclose(load_image(path).array / scale, pixels, atol=0.5 / scale + 1e-6)
    with pytest.raises(ValueError, match="decoded image"):
        write_decoded_image(np.zeros((1, 4)), tmp_path / "x")
