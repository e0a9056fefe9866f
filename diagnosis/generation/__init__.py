"""Generation stage: class-conditional samples from the fusion model's latent space (its per-class Gaussians or a
conditional latent GAN), cross-modal look-ups."""

from __future__ import annotations

from diagnosis.generation.decoded import DecodedCase, decode_case
from diagnosis.generation.gan import GANConfig, GANReport, LatentGAN, load_gan, sample_diversity, save_gan, train_latent_gan
from diagnosis.generation.sampling import GeneratedSamples, cross_modal_coherence, nearest_rows, sample_class
from diagnosis.generation.writer import write_decoded_image

__all__ = ["DecodedCase", "GANConfig", "GANReport", "GeneratedSamples", "LatentGAN", "cross_modal_coherence",
           "decode_case", "load_gan", "nearest_rows", "sample_class", "sample_diversity", "save_gan", "train_latent_gan",
           "write_decoded_image"]
