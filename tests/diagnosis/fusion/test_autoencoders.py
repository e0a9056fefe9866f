"""The deterministic autoencoders: the stacked one's layer-wise stage, the sparse penalty's effect on code activity,
and what a deterministic code means for diagnosis (uncertainty from the prediction itself, no generation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec, predict
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import CODE_LOGVAR, FusionConfig, ModalitySpec, SparseAE, StackedAE, build_fusion
from diagnosis.generation import sample_class
from diagnosis.training import FitResult, TrainConfig, fit
from diagnosis.training.image_stage import ImageStageConfig

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)
MODALITIES = ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 8})


def _spec(fusion: str, **fusion_options: object) -> ModelSpec:
    return ModelSpec(("negative", "positive"), MODALITIES,
                     FusionConfig(fusion=fusion, latent_dim=8, feature_dim=16, image_members=1, **fusion_options))  # fmt: skip


def _fit(spec: ModelSpec, toy_table: ToyTable, epochs: int = 6) -> FitResult:
    return fit(spec, toy_table(160, 0), toy_table(120, 1),
               TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, image_stage=ImageStageConfig(epochs=3)))  # fmt: skip


@pytest.fixture(scope="module")
def stacked(toy_table: ToyTable) -> FitResult:
    return _fit(_spec("stacked_ae", layerwise_epochs=4), toy_table)


def test_the_stacked_autoencoder_pretrains_each_layer_greedily_then_fine_tunes(stacked: FitResult,
                                                                               toy_table: ToyTable) -> None:
    vae = stacked.model.vae
    assert isinstance(vae, StackedAE) and [layer.out_features for layer in vae.layers] == [256, 128]
    layers = sorted({r["layer"] for r in stacked.layerwise})
    assert layers == [1, 2, 3] and len(stacked.layerwise) == 3 * 4  # two hidden layers and the code, 4 epochs each
    for layer in layers:
        losses = [r["loss"] for r in stacked.layerwise if r["layer"] == layer]
        assert losses[-1] < losses[0], (layer, losses)  # each layer learned to reconstruct its own input
    assert len(stacked.history) >= 1 and all("stage" not in r or r["stage"] != "layerwise" for r in stacked.history)
    test = toy_table(80, 2)
    probabilities = predict(stacked.model, test, torch.device("cpu")).probabilities
    assert float((probabilities.argmax(1) == test.labels).mean()) > 0.8


def test_layerwise_pretraining_moves_only_the_joint_encoder(toy_table: ToyTable) -> None:
    torch.manual_seed(0)
    vae = build_fusion(MODALITIES, _spec("stacked_ae").fusion)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    table = toy_table(64, 0)

    def batches():  # noqa: ANN202 - generator of (inputs, masks)
        inputs, masks, _ = table.batch(slice(None), torch.device("cpu"))
        yield inputs, masks

    vae.encoders.eval()
    history = vae.pretrain(batches, epochs=2)
    assert [(r["layer"], r["epoch"]) for r in history] == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    changed = {k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "code.weight", "code.bias"}


def _code_activity(weight: float, toy_table: ToyTable) -> float:
    """Mean activation of the sparse code's units on held-out rows after a short fit with this penalty weight."""
    result = _fit(_spec("sparse_ae", sparsity_weight=weight, sparsity_target=0.05), toy_table, epochs=8)
    assert isinstance(result.model.vae, SparseAE)
    test = toy_table(80, 2)
    inputs, masks, _ = test.batch(slice(None), torch.device("cpu"))
    with torch.no_grad():
        code = result.model.vae.posterior(inputs, masks).mu
    assert bool(((code >= 0) & (code <= 1)).all())  # sigmoid units
    return float(code.mean())


def test_the_sparsity_penalty_lowers_code_activity_towards_its_target(toy_table: ToyTable) -> None:
    free, sparse = _code_activity(0.0, toy_table), _code_activity(50.0, toy_table)
    assert sparse < 0.5 * free and sparse < 0.15, (free, sparse)


def test_a_deterministic_code_stores_the_prediction_entropy_and_cannot_generate(stacked: FitResult,
                                                                                 toy_table: ToyTable) -> None:
    model, test = stacked.model, toy_table(40, 2)
    inputs, masks, _ = test.batch(slice(None), torch.device("cpu"))
    with torch.no_grad():
        posterior = model.vae.posterior(inputs, masks)
    assert bool((posterior.logvar == CODE_LOGVAR).all())
    predictions = predict(model, test, torch.device("cpu"))
    p = predictions.probabilities
    entropy = -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)
    assert np.allclose(predictions.uncertainty, entropy, atol=1e-4)  # every posterior draw is the code itself
    assert not model.vae.generative and build_fusion(MODALITIES, _spec("poe").fusion).generative
    with pytest.raises(ValueError, match="deterministic autoencoder"):
        sample_class(model, "positive", 4)
