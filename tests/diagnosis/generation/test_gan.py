"""The conditional latent GAN: each network's hinge loss falls under its own updates, samples land in their class
with the real spread, collapse is measured, and a model's decoders turn GAN latents into cases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec
from diagnosis.classify.bank import latent_bank
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.generation import GANConfig, LatentGAN, load_gan, sample_class, sample_diversity, save_gan, train_latent_gan
from diagnosis.generation.gan import discriminator_loss, generator_loss
from diagnosis.training import TrainConfig, fit
from diagnosis.training.image_stage import ImageStageConfig

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)
NAMES = ("common", "rare")


def toy_latents(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian classes in 6-d, the second rare and narrower."""
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.normal(0, 1, (300, 6)) + 3, rng.normal(0, 0.5, (40, 6)) - 2]).astype(np.float32)
    return z, np.array([0] * 300 + [1] * 40)


def test_each_network_lowers_its_own_hinge_loss_on_a_toy_problem() -> None:
    torch.manual_seed(0)
    z, y = toy_latents()
    gan = LatentGAN(6, NAMES, GANConfig(hidden=32))
    real, labels = torch.from_numpy((z - z.mean(0)) / z.std(0)), torch.from_numpy(y)
    noise = torch.randn(len(z), gan.config.noise_dim)
    d_opt = torch.optim.Adam([*gan.features.parameters(), *gan.critic.parameters(), *gan.projection.parameters()], lr=2e-3)
    g_opt = torch.optim.Adam([*gan.generator.parameters(), *gan.label_embedding.parameters()], lr=2e-3)

    def d_loss() -> torch.Tensor:
        return discriminator_loss(gan, real, gan.generate(labels, noise).detach(), labels)

    start = float(d_loss().detach())
    for _ in range(150):  # the discriminator learns to tell real from the (fixed) generator's latents
        loss = d_loss()
        d_opt.zero_grad(), loss.backward(), d_opt.step()
    trained_d = float(d_loss().detach())
    assert trained_d < 0.5 * start, (start, trained_d)
    g_start = float(generator_loss(gan, gan.generate(labels, noise), labels).detach())
    for _ in range(150):  # the generator learns to fool the (fixed) discriminator
        loss = generator_loss(gan, gan.generate(labels, noise), labels)
        g_opt.zero_grad(), loss.backward(), g_opt.step()
    g_end = float(generator_loss(gan, gan.generate(labels, noise), labels).detach())
    assert g_end < g_start - 0.5, (g_start, g_end)
    assert float(d_loss().detach()) > trained_d  # what the generator learnt is what fools the discriminator


def test_trained_samples_land_in_their_class_with_the_real_spread() -> None:
    z, y = toy_latents()
    gan, report = train_latent_gan(z, y, NAMES, GANConfig(steps=800, hidden=64), seed=0)
    for c, name in enumerate(NAMES):
        samples = gan.sample(name, 400, seed=1).numpy()
        real = z[y == c]
        assert np.abs(samples.mean(0) - real.mean(0)).max() < 0.5 * real.std(0).mean() + 0.2, name
        assert 0.4 < report.diversity[name] < 1.5, report.diversity  # the rare class is spread too, not one point
    assert report.collapsed == [] and len(report.history) == 800 // 50
    assert {"step", "d_loss", "g_loss"} <= set(report.history[-1])
    np.testing.assert_array_equal(gan.sample("rare", 5, seed=2).numpy(), gan.sample("rare", 5, seed=2).numpy())
    with pytest.raises(ValueError, match="unknown diagnosis"):
        gan.sample("other", 2)


def test_sample_diversity_flags_a_collapsed_generator() -> None:
    z, y = toy_latents()
    real = z[y == 0]
    assert sample_diversity(np.repeat(real[:1], 100, 0), real) == 0.0  # every sample the same point
    assert 0.9 < sample_diversity(real[::-1].copy(), real) < 1.1
    assert np.isnan(sample_diversity(real[:1], real))
    _, report = train_latent_gan(z, y, NAMES, GANConfig(steps=50, diversity_floor=10.0), seed=0)
    assert report.collapsed == list(NAMES)  # a floor no generator reaches: every class reported


def test_a_saved_gan_loads_and_samples_the_same(tmp_path: Path) -> None:
    z, y = toy_latents()
    gan, report = train_latent_gan(z, y, NAMES, GANConfig(steps=50), seed=0)
    save_gan(gan, report, tmp_path)
    loaded, loaded_report = load_gan(tmp_path)
    np.testing.assert_allclose(loaded.sample("common", 8, seed=4).numpy(), gan.sample("common", 8, seed=4).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert loaded_report.diversity == report.diversity and load_gan(tmp_path / "none") is None


def test_the_models_decoders_turn_gan_latents_into_cases_even_for_an_autoencoder(toy_table: ToyTable) -> None:
    modalities = ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 8})
    spec = ModelSpec(("negative", "positive"), modalities,
                     FusionConfig(fusion="ae", latent_dim=4, feature_dim=16, image_members=1))  # fmt: skip
    train = toy_table(160, 0)
    model = fit(spec, train, toy_table(120, 1), TrainConfig(epochs=4, batch_size=32, lr=3e-3,
                                                            image_stage=ImageStageConfig(epochs=2))).model
    with pytest.raises(ValueError, match="--generator gan"):  # no prior of its own
        sample_class(model, "positive", 4)
    bank = latent_bank(model, train, [f"c{i}" for i in range(len(train))], "cpu")
    assert bank.latents.shape == (int((train.labels >= 0).sum()), 4) and bank.keys[0] == "c0"
    gan, _ = train_latent_gan(bank.latents, bank.labels, spec.label_names, GANConfig(steps=300), seed=0)
    samples = sample_class(model, "positive", 16, seed=0, gan=gan)
    assert samples.outputs["image"].shape == (16, 1, 16, 16) and samples.outputs["text"].shape == (16, 8)
    assert float((samples.probabilities.argmax(1) == 1).mean()) >= 0.6  # the model diagnoses them in class
