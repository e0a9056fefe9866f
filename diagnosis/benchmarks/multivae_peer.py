"""MultiVae's MoPoE on our networks; run by :func:`diagnosis.benchmarks.peer.run_peer` in MultiVae's environment.

Usage: ``python -m diagnosis.benchmarks.multivae_peer FEATURES.npz OUT.npz '{"latent_dim": 32, ...}'``. Reads the
P1 features, wraps this project's encoder and decoder networks in MultiVae's interfaces, trains, and writes the
seconds per epoch and the posterior means of the train and test splits.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
import torch
from multivae.data.datasets.base import MultimodalBaseDataset
from multivae.models import MoPoE, MoPoEConfig
from multivae.trainers import BaseTrainer, BaseTrainerConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder
from torch import nn

from diagnosis.features.image import ImagePreprocessing
from diagnosis.fusion.networks import ModalitySpec, build_networks

__all__ = ["main"]


class _Encoder(BaseEncoder):
    """Our Gaussian expert as a MultiVae encoder."""

    def __init__(self, expert: nn.Module) -> None:
        super().__init__()
        self.expert = expert

    def forward(self, x: torch.Tensor) -> ModelOutput:
        q = self.expert(x)
        return ModelOutput(embedding=q.mu, log_covariance=q.logvar)


class _Decoder(BaseDecoder):
    """Our decoder as a MultiVae decoder (any leading sample axes are flattened and restored)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> ModelOutput:
        lead = z.shape[:-1]
        out = self.net(z.reshape(-1, z.shape[-1]))
        return ModelOutput(reconstruction=out.reshape(*lead, *out.shape[1:]))


def main(features: str, out: str, options: str) -> None:
    """Train MultiVae's MoPoE and write ``seconds_per_epoch``, ``train_mu`` and ``test_mu`` to ``out``."""
    settings = json.loads(options)
    data = np.load(features)
    train = {m: torch.from_numpy(data[f"train_{m}"]) for m in ("image", "text")}
    test = {m: torch.from_numpy(data[f"test_{m}"]) for m in ("image", "text")}
    image = ImagePreprocessing(spatial_dims=2, size=train["image"].shape[-1])
    spec = ModalitySpec(image=image, vectors={"text": train["text"].shape[1]})
    encoders, decoders = build_networks(spec, settings["latent_dim"], feature_dim=128)
    config = MoPoEConfig(
        n_modalities=2, latent_dim=settings["latent_dim"],
        input_dims={"image": tuple(train["image"].shape[1:]), "text": tuple(train["text"].shape[1:])},
        decoders_dist={"image": "normal", "text": "normal"},
        decoder_dist_params={"image": {"scale": 0.2}, "text": {"scale": 0.1}},  # our likelihood scales
        beta=1.0,
    )
    model = MoPoE(config, encoders={m: _Encoder(e) for m, e in encoders.items()},
                  decoders={m: _Decoder(d) for m, d in decoders.items()})
    with tempfile.TemporaryDirectory() as tmp:
        trainer_config = BaseTrainerConfig(num_epochs=settings["epochs"], per_device_train_batch_size=settings["batch_size"],
                                           learning_rate=1e-3, output_dir=tmp, drop_last=True)
        trainer = BaseTrainer(model, train_dataset=MultimodalBaseDataset(data=train), training_config=trainer_config)
        started = time.perf_counter()
        trainer.train()
        seconds = (time.perf_counter() - started) / settings["epochs"]
    model.eval()
    with torch.no_grad():
        means = {split: model.encode(MultimodalBaseDataset(data=d), cond_mod="all", return_mean=True).z.reshape(len(d["text"]), -1)
                 for split, d in (("train", train), ("test", test))}
    np.savez(out, seconds_per_epoch=seconds, train_mu=means["train"].numpy(), test_mu=means["test"].numpy())


if __name__ == "__main__":
    main(*sys.argv[1:4])
