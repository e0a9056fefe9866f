"""Training stages: the supervised image encoder, text fine-tuning, and how the fusion stage uses them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec, load_model, predict, save_model
from diagnosis.features import FeatureTable, ImagePreprocessing, TextEncoder, TextEncoderConfig
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.training import TrainConfig, fit, grid_size
from diagnosis.training.image_stage import ImageStageConfig, train_image_encoder
from diagnosis.training.text_stage import TextStageConfig, _soft_targets, finetune_text_encoder
from diagnosis.training.trainer import image_backbone

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)
GRID = ImagePreprocessing(spatial_dims=2, size=16)
SMALL = {"feature_dim": 16, "channels": (8, 16, 32), "res_units": 1}


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    fusion = FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=2, image_channels=(8, 16, 32), image_res_units=1,
                          image_members=2)  # an ensemble: the stage trains two networks, the VAE reads both
    return ModelSpec(("negative", "positive"), ModalitySpec(image=GRID, vectors={"text": 8}), fusion)


def test_image_stage_learns_and_keeps_the_lowest_val_loss(toy_table: ToyTable) -> None:
    train, val, test = toy_table(160, 0), toy_table(60, 1), toy_table(80, 2)
    stage = train_image_encoder(GRID, 2, train, val, ImageStageConfig(epochs=12, patience=12), **SMALL)
    assert stage is not None and len(stage.history) == 12
    losses = [r["val_loss"] for r in stage.history]
    assert stage.best_epoch == int(np.argmin(losses)) + 1  # selection on val, nothing else
    probabilities = stage.classifier.probabilities(test.inputs["image"], torch.device("cpu"))
    assert ((probabilities.argmax(1) == test.labels).mean()) > 0.9  # the bright square is learnt from images alone
    assert float(stage.classifier.members[0].temperature) > 0
    assert stage.summary()["best_epoch"] == stage.best_epoch


def test_image_stage_is_skipped_without_enough_labelled_images(toy_table: ToyTable) -> None:
    table = toy_table(40, 0)
    assert train_image_encoder(GRID, 2, table, None, ImageStageConfig(epochs=0), **SMALL) is None
    unlabelled = FeatureTable(table.inputs, table.masks, np.full(len(table), -1))
    assert train_image_encoder(GRID, 2, unlabelled, None, ImageStageConfig(epochs=2), **SMALL) is None


def test_fusion_starts_from_the_frozen_image_encoder(spec: ModelSpec, toy_table: ToyTable, tmp_path: Path) -> None:
    train, val, test = toy_table(160, 0), toy_table(60, 1), toy_table(80, 2)
    config = TrainConfig(epochs=8, batch_size=32, lr=3e-3, image_stage=ImageStageConfig(epochs=12))
    result = fit(spec, train, val, config)
    assert result.image_stage is not None and len(result.image_stage.members) == 2
    members = image_backbone(result.model).members()
    for member, classifier in zip(members, result.image_stage.classifier.members, strict=True):
        trained, kept = member.state_dict(), classifier.backbone.net.state_dict()
        assert all(torch.equal(trained[k], kept[k]) for k in kept)  # frozen: weights and batch-norm statistics unchanged
    assert not torch.equal(members[0].state_dict()["final.1.weight"], members[1].state_dict()["final.1.weight"])  # own seeds
    accuracy = (predict(result.model, test, torch.device("cpu")).probabilities.argmax(1) == test.labels).mean()
    assert accuracy > 0.9
    reloaded = load_model(save_model(result.model, tmp_path / "m"))
    assert torch.equal(image_backbone(reloaded).state_dict()["others.0.final.1.weight"], members[1].state_dict()["final.1.weight"])


def test_unfrozen_image_encoder_keeps_training(spec: ModelSpec, toy_table: ToyTable) -> None:
    train, val = toy_table(160, 0), toy_table(60, 1)
    config = TrainConfig(epochs=2, batch_size=32, image_stage=ImageStageConfig(epochs=2, freeze=False))
    result = fit(spec, train, val, config)
    assert result.image_stage is not None
    trained, kept = image_backbone(result.model).state_dict(), result.image_stage.classifier.members[0].backbone.state_dict()
    assert not torch.equal(trained["net.final.1.weight"], kept["net.final.1.weight"])


def test_configs_come_back_from_their_json_form() -> None:
    config = TrainConfig(image_stage=ImageStageConfig(epochs=3), text_stage=TextStageConfig(epochs=1))
    again = TrainConfig(**config.to_dict())
    assert again == config
    with pytest.raises(ValueError, match="unknown augmentation"):
        ImageStageConfig(augmentation={"flip": True})


def test_grid_suits_the_source_resolution() -> None:
    assert grid_size([28] * 5, 2) == 32 and grid_size([64, 64, 60], 2) == 64 and grid_size([1024], 2) == 64
    assert grid_size([28], 3) == 32 and grid_size([10], 2) == 16


def test_soft_targets_merge_repeated_texts() -> None:
    texts, targets = _soft_targets(["cough", "cough", "rash", "cough", ""], [1, 1, 0, 0, 1], 2)
    assert texts == ["cough", "rash"]
    assert targets.tolist() == [[pytest.approx(1 / 3), pytest.approx(2 / 3)], [1.0, 0.0]]


def test_text_stage_fine_tunes_and_saves_a_loadable_encoder(tiny_text_model: Path, tmp_path: Path) -> None:
    texts = [f"{word} since {d} days" for word in ("cough and fever", "itchy skin rash") for d in range(12)]
    labels = [0] * 12 + [1] * 12
    base = TextEncoderConfig(model_path=str(tiny_text_model))
    stage = finetune_text_encoder(base, texts, labels, 2, tmp_path / "enc", TextStageConfig(epochs=3, batch_size=8),
                                  val_texts=texts[::3], val_labels=labels[::3])  # fmt: skip
    assert stage is not None and stage.encoder.model_path == str(tmp_path / "enc")
    assert len(stage.history) == 3 and 1 <= stage.best_epoch <= 3
    assert stage.history[stage.best_epoch - 1]["val_accuracy"] == max(r["val_accuracy"] for r in stage.history)
    tuned, frozen = TextEncoder(stage.encoder), TextEncoder(base)
    assert tuned.fingerprint != frozen.fingerprint  # its vectors never mix with the base model's in the cache
    vectors = tuned.encode(texts[:2])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors, frozen.encode(texts[:2]))
    assert finetune_text_encoder(base, texts[:3], labels[:3], 2, tmp_path / "none") is None  # too few texts


def test_image_stage_trains_on_volumes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 24)
    volumes = rng.random((24, 1, 16, 16, 16)).astype(np.float32) * 0.3
    volumes[labels == 1, :, 4:10, 4:10, 4:10] += 0.7
    table = FeatureTable({"image": volumes}, {"image": np.ones(24, dtype=bool)}, labels.astype(np.int64))
    grid = ImagePreprocessing(spatial_dims=3, size=16)
    stage = train_image_encoder(grid, 2, table, table, ImageStageConfig(epochs=2, batch_size=8), **SMALL)
    assert stage is not None and stage.classifier.probabilities(volumes, torch.device("cpu")).shape == (24, 2)


def test_image_stage_starts_from_user_weights(toy_table: ToyTable, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from diagnosis.features import ImageFeatureNet

    donor = ImageFeatureNet(GRID, SMALL["feature_dim"], SMALL["channels"], SMALL["res_units"])
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in donor.net.state_dict().items()}, str(path))
    table = toy_table(40, 0)
    still = ImageStageConfig(epochs=1, lr=1e-12, ema_decay=0.0)  # a step too small to move the weights
    stage = train_image_encoder(GRID, 2, table, None, still, weights=str(path), **SMALL)
    assert stage is not None
    loaded = stage.classifier.members[0].backbone.net.state_dict()
    assert all(torch.allclose(loaded[k], v, atol=1e-6) for k, v in donor.net.state_dict().items() if k.endswith("weight"))
    wrong = ImageFeatureNet(GRID, 8, (4, 8, 16), 1)
    save_file({k: v.contiguous() for k, v in wrong.net.state_dict().items()}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ValueError, match="do not fit"):
        train_image_encoder(GRID, 2, table, None, still, weights=str(tmp_path / "wrong.safetensors"), **SMALL)


def test_an_ensemble_averages_its_members_and_old_checkpoints_keep_one(toy_table: ToyTable) -> None:
    train, val = toy_table(80, 0), toy_table(40, 1)
    stage = train_image_encoder(GRID, 2, train, val, ImageStageConfig(epochs=2), members=3, **SMALL)
    assert stage is not None and len(stage.classifier.members) == 3 and len(stage.summary()["members"]) == 3
    images, cpu = val.inputs["image"], torch.device("cpu")
    each = [member.probabilities(images, cpu) for member in stage.classifier.members]
    assert np.allclose(stage.classifier.probabilities(images, cpu), np.mean(each, axis=0))
    assert not np.allclose(each[0], each[1])  # seeds differ
    legacy = ModelSpec.from_dict({**ModelSpec(("a", "b"), ModalitySpec(image=GRID), FusionConfig()).to_dict(),
                                  "fusion": {"fusion": "poe", "image_channels": [32, 64, 128], "image_res_units": 2}})
    assert legacy.fusion.image_members == 1  # saved before ensembles: one network, as trained
