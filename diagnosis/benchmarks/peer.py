"""Side by side with MultiVae's MoPoE (``shared/benchmarks.md``): the same P1 split, networks, latent size, batch
size and epochs; seconds per epoch and the test accuracy of a logistic regression on each model's latent means.

MultiVae needs torchvision, so it runs in a separate environment: this module writes the features to an ``.npz``,
runs :mod:`diagnosis.benchmarks.multivae_peer` with that environment's Python, and reads its latents back.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from diagnosis.benchmarks.p1 import LABELS
from diagnosis.classify import ModelSpec, predict
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.training import TrainConfig, fit
from diagnosis.training.image_stage import ImageStageConfig

__all__ = ["latent_accuracy", "run_peer", "train_ours"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def latent_accuracy(train_mu: np.ndarray, train_y: np.ndarray, test_mu: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of a logistic regression fitted on training latent means."""
    classifier = LogisticRegression(max_iter=5000).fit(train_mu, train_y)
    return float((classifier.predict(test_mu) == test_y).mean())


def train_ours(tables: dict[str, FeatureTable], latent_dim: int, batch_size: int, epochs: int, device: torch.device,
               subset_sampling: bool = True) -> dict:
    """Our MoPoE, unsupervised like MultiVae's (no diagnosis term), every epoch run (no early stop); with
    ``subset_sampling`` one subset is decoded per case and step (MultiVae's estimator), else every subset.

    The networks are MultiVae's: one image network trained inside the VAE (no supervised image stage, no
    augmentation), so the two runs differ only in the training loop.
    """
    image = ImagePreprocessing(spatial_dims=2, size=tables["train"].inputs["image"].shape[-1])
    modalities = ModalitySpec(image=image, vectors={"text": tables["train"].inputs["text"].shape[1]})
    spec = ModelSpec(LABELS, modalities, FusionConfig(fusion="mopoe", latent_dim=latent_dim, classifier_weight=0.0,
                                                          kl_warmup_epochs=0, subset_sampling=subset_sampling, image_members=1))
    config = TrainConfig(epochs=epochs, batch_size=batch_size, image_stage=ImageStageConfig(epochs=0))
    result = fit(spec, tables["train"], None, config, device)
    train_mu, test_mu = (predict(result.model, tables[s], device, samples=1).latents for s in ("train", "test"))
    return {"seconds_per_epoch": result.seconds / epochs,
            "accuracy": latent_accuracy(train_mu, tables["train"].labels, test_mu, tables["test"].labels)}


def run_peer(tables: dict[str, FeatureTable], python: str | None, latent_dim: int = 32, batch_size: int = 128,
             epochs: int = 10, device: torch.device | None = None) -> dict:
    """Train ours (sampled and full objective) and MultiVae's; seconds per epoch, ratios and latent accuracies.

    Args:
        tables: P1 feature tables (``train``, ``test``).
        python: Interpreter of the environment where ``multivae`` is installed (None: ours only).
        latent_dim: Shared latent size.
        batch_size: Shared batch size.
        epochs: Shared number of epochs.
        device: Where ours trains (MultiVae uses its own default).

    Raises:
        RuntimeError: The MultiVae run failed (its output is in the message).
    """
    device = device or torch.device("cpu")
    ours = train_ours(tables, latent_dim, batch_size, epochs, device)
    full = train_ours(tables, latent_dim, batch_size, epochs, device, subset_sampling=False)
    report: dict = {"epochs": epochs, "batch_size": batch_size, "latent_dim": latent_dim, "ours": ours, "ours_full": full,
                    "sampled_over_full": ours["seconds_per_epoch"] / full["seconds_per_epoch"]}
    if python is None:
        return report
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "features.npz", Path(tmp) / "latents.npz"
        np.savez(data, **{f"{split}_{m}": tables[split].inputs[m] for split in ("train", "test") for m in ("image", "text")})
        args = [python, "-m", "diagnosis.benchmarks.multivae_peer", str(data), str(out),
                json.dumps({"latent_dim": latent_dim, "batch_size": batch_size, "epochs": epochs})]
        started = time.perf_counter()
        done = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"MultiVae run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        with np.load(out) as latents:
            peer_seconds = float(latents["seconds_per_epoch"])
            peer_accuracy = latent_accuracy(latents["train_mu"], tables["train"].labels, latents["test_mu"], tables["test"].labels)
    report["multivae"] = {"seconds_per_epoch": peer_seconds, "accuracy": peer_accuracy,
                          "wall_seconds": round(time.perf_counter() - started, 1)}
    report["seconds_ratio"] = ours["seconds_per_epoch"] / peer_seconds
    report["full_seconds_ratio"] = full["seconds_per_epoch"] / peer_seconds
    return report
