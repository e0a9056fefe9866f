"""Stage 1 of training: the image encoder, trained supervised on the labelled training images before fusion.

No pretrained medical image weights exist offline, and an image network trained only through the ELBO learns what
reconstructs pixels rather than what tells diagnoses apart. So the image feature network (the same MONAI network
the fusion model's image expert wraps) is first trained as a plain classifier with MONAI random augmentation. The
epoch with the lowest validation loss is kept, from an exponential moving average of the weights, which is steadier
from epoch to epoch than the raw weights. The fusion stage then starts from that network and, by default, keeps it
frozen.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diagnosis.classify.calibration import fit_temperature
from diagnosis.features.augment import ImageAugmentation, ImageAugmenter
from diagnosis.features.image import ImageFeatureNet, ImagePreprocessing, load_backbone_weights
from diagnosis.features.table import FeatureTable
from diagnosis.training.stage_result import StageResult

__all__ = ["ImageClassifier", "ImageEnsemble", "ImageStage", "ImageStageConfig", "image_rows", "train_image_encoder"]

logger = logging.getLogger(__name__)

MIN_IMAGES = 8  # fewer labelled training images than this: the stage is skipped (the fusion model trains the net)


@dataclass(frozen=True)
class ImageStageConfig:
    """Settings of the supervised image stage (part of ``TrainConfig``, stored with the model version)."""

    epochs: int = 30  # maximum passes over the labelled training images; 0 skips the stage
    lr: float = 2e-3  # AdamW peak learning rate (one-cycle)
    batch_size: int = 64  # images per step
    patience: int = 8  # stop after this many epochs without a lower validation loss
    ema_decay: float = 0.99  # per-step decay of the weight average that is evaluated and kept; 0: raw weights
    augmentation: ImageAugmentation = field(default_factory=ImageAugmentation)  # MONAI random transforms
    freeze: bool = True  # keep the trained network fixed while the fusion model trains
    augment_fusion: bool = True  # augment the images in the fusion stage too (its heads then read robust features)

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):  # from JSON
            known = {f.name for f in fields(ImageAugmentation)}
            if unknown := sorted(set(self.augmentation) - known):
                raise ValueError(f"unknown augmentation option(s) {unknown}; known: {', '.join(sorted(known))}")
            object.__setattr__(self, "augmentation", ImageAugmentation(**self.augmentation))
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


class ImageClassifier(nn.Module):
    """The image feature network with a linear diagnosis head: ``(B, 1, *grid) -> (B, C)`` logits.

    Args:
        preprocessing: Input grid.
        n_classes: Diagnoses.
        feature_dim: Feature size (the fusion model's ``feature_dim``).
        channels: Channels per stage of the feature network.
        res_units: Residual units per stage.
    """

    def __init__(self, preprocessing: ImagePreprocessing, n_classes: int, feature_dim: int = 128,
                 channels: tuple[int, ...] = (32, 64, 128), res_units: int = 2) -> None:
        super().__init__()
        self.backbone = ImageFeatureNet(preprocessing, feature_dim, channels, res_units)
        self.head = nn.Linear(feature_dim, n_classes)
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, *grid)`` -> logits ``(B, C)``."""
        return self.head(self.backbone(x))

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, device: torch.device, batch_size: int = 512) -> np.ndarray:
        """Temperature-scaled class probabilities ``(N, C)`` of ``(N, 1, *grid)`` images."""
        self.eval()
        out = [torch.softmax(self(torch.from_numpy(images[s : s + batch_size]).to(device)) / self.temperature, -1).cpu()
               for s in range(0, len(images), batch_size)]  # fmt: skip
        return torch.cat(out).numpy() if out else np.zeros((0, self.head.out_features), dtype=np.float32)


class ImageEnsemble(nn.Module):
    """Image classifiers trained alike with different seeds; their temperature-scaled probabilities are averaged."""

    def __init__(self, members: list[ImageClassifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, device: torch.device, batch_size: int = 512) -> np.ndarray:
        """Mean of the members' class probabilities ``(N, C)``."""
        return np.mean([member.probabilities(images, device, batch_size) for member in self.members], axis=0)


@dataclass
class ImageStage(StageResult):
    """The trained image classifiers and how their training went (``best_epoch`` / ``history``: the first member's)."""

    classifier: ImageEnsemble  # the selected networks with their heads, each temperature-scaled on val
    members: list[StageResult] = field(default_factory=list)  # each member's own selection and figures

    def summary(self) -> dict:
        """The first member's figures, and every member's."""
        return {**super().summary(), "members": [member.summary() for member in self.members]}


def image_rows(table: FeatureTable) -> np.ndarray:
    """Indices of rows with a present image and a known label."""
    if "image" not in table.masks:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(table.masks["image"] & (table.labels >= 0))


@torch.no_grad()
def _evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy and the logits ``(N, C)`` of ``net`` in eval mode."""
    net.eval()
    logits = torch.cat([net(images[s : s + batch_size]) for s in range(0, len(images), batch_size)])
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean()), logits


def _ema(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Exponential moving average whose decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so
    that a small data set (a few steps per epoch) is not averaged mostly over its random initialisation."""

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        rate = min(decay, (1.0 + float(updates)) / (10.0 + float(updates)))
        return averaged * rate + current * (1.0 - rate)

    return average


def train_image_encoder(
    preprocessing: ImagePreprocessing,
    n_classes: int,
    train: FeatureTable,
    val: FeatureTable | None,
    config: ImageStageConfig = ImageStageConfig(),
    *,
    feature_dim: int = 128,
    channels: tuple[int, ...] = (32, 64, 128),
    res_units: int = 2,
    members: int = 1,
    weights: str | None = None,
    class_weights: torch.Tensor | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> ImageStage | None:
    """Train the image feature network as a supervised classifier, ``members`` times with seeds ``seed``,
    ``seed + 1``, …; each keeps the epoch with its lowest val loss.

    Args:
        preprocessing: The model's image grid.
        n_classes: Diagnoses.
        train: Training rows (those with an image and a label are used).
        val: Validation rows for selection and the temperature (None or no image rows: the last epoch is kept).
        config: Stage settings.
        feature_dim: Feature size of the network.
        channels: Channels per stage.
        res_units: Residual units per stage.
        members: Networks to train (an ensemble: the fusion model reads their features side by side).
        weights: Optional user-supplied weights every member starts from (``.safetensors`` / ``.pt`` of the
            feature network).
        class_weights: Optional ``(C,)`` cross-entropy weights.
        seed: Initialisation, order and augmentation.
        device: Where to train.
        on_epoch: Called with each epoch's figures (with ``member`` when there are several).

    Returns:
        The selected classifiers, or None when there are fewer than :data:`MIN_IMAGES` labelled training images or
        ``config.epochs`` is 0.
    """
    device = torch.device(device)
    rows = image_rows(train)
    if config.epochs <= 0 or len(rows) < MIN_IMAGES:
        logger.info("image stage skipped (%d labelled training images)", len(rows))
        return None
    started = time.perf_counter()
    trained: list[tuple[ImageClassifier, StageResult]] = []
    for index in range(members):
        report = on_epoch if members == 1 or on_epoch is None else (lambda r, i=index: on_epoch({**r, "member": i + 1}))
        trained.append(_train_member(preprocessing, n_classes, train, val, config, rows, feature_dim, channels, res_units,
                                     weights, class_weights, seed + index, device, report))
    first = trained[0][1]
    return ImageStage(first.best_epoch, first.history, time.perf_counter() - started,
                      classifier=ImageEnsemble([net for net, _ in trained]).eval(), members=[r for _, r in trained])


def _epoch(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, order: np.ndarray, augment: ImageAugmenter,
           optimiser: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
           average: torch.optim.swa_utils.AveragedModel | None, batch_size: int, class_weights: torch.Tensor | None,
           device: torch.device) -> float:
    """One pass over the augmented ``images[order]``, updating the weight average after each step; the mean loss."""
    net.train()
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < 2:  # batch norm needs two samples
            continue
        x = augment(images[batch]).to(device, non_blocking=True)
        loss = F.cross_entropy(net(x), labels[batch], weight=class_weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if average is not None:
            average.update_parameters(net)
        total, count = total + float(loss.detach()) * len(batch), count + len(batch)
    return total / max(count, 1)


def _train_member(
    preprocessing: ImagePreprocessing, n_classes: int, train: FeatureTable, val: FeatureTable | None,
    config: ImageStageConfig, rows: np.ndarray, feature_dim: int, channels: tuple[int, ...], res_units: int,
    weights: str | None, class_weights: torch.Tensor | None, seed: int, device: torch.device,
    on_epoch: Callable[[dict[str, float]], None] | None,
) -> tuple[ImageClassifier, StageResult]:
    """One member of :func:`train_image_encoder`: the classifier at its lowest val loss, temperature-scaled."""
    torch.manual_seed(seed)
    net = ImageClassifier(preprocessing, n_classes, feature_dim, channels, res_units).to(device)
    if weights:
        load_backbone_weights(net.backbone.net, weights)
    images = torch.from_numpy(train.inputs["image"][rows])  # (N, 1, *grid), kept on the CPU for augmentation
    labels = torch.from_numpy(train.labels[rows]).to(device)
    val_rows = image_rows(val) if val is not None else np.zeros(0, dtype=np.int64)
    val_images = torch.from_numpy(val.inputs["image"][val_rows]).to(device) if len(val_rows) else None
    val_labels = torch.from_numpy(val.labels[val_rows]).to(device) if len(val_rows) else None
    augment = ImageAugmenter(config.augmentation, preprocessing.spatial_dims, preprocessing.size, seed)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, sum(1 for s in range(0, len(rows), config.batch_size) if len(rows) - s >= 2))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                   pct_start=0.15)  # fmt: skip
    average = torch.optim.swa_utils.AveragedModel(net, avg_fn=_ema(config.ema_decay), use_buffers=True) \
        if config.ema_decay > 0 else None  # fmt: skip
    kept: nn.Module = average.module if average is not None else net
    rng = np.random.default_rng(seed)
    best, best_loss, best_epoch, history = None, float("inf"), 0, []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        loss = _epoch(net, images, labels, rng.permutation(len(rows)), augment, optimiser, schedule, average,
                      config.batch_size, class_weights, device)  # fmt: skip
        record = {"epoch": epoch, "train_loss": loss}
        if val_images is not None:
            record["val_loss"], record["val_accuracy"], _ = _evaluate(kept, val_images, val_labels)
            if record["val_loss"] < best_loss:
                best, best_loss, best_epoch = copy.deepcopy(kept.state_dict()), record["val_loss"], epoch
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if best is not None and epoch - best_epoch >= config.patience:
            logger.info("image stage: early stop at epoch %d (best %d)", epoch, best_epoch)
            break
    classifier = ImageClassifier(preprocessing, n_classes, feature_dim, channels, res_units).to(device)
    classifier.load_state_dict(best if best is not None else kept.state_dict())
    if best is None:
        best_epoch = len(history)
    if val_images is not None and len(val_rows) >= 10:
        _, _, logits = _evaluate(classifier, val_images, val_labels)
        classifier.temperature.fill_(fit_temperature(logits, val_labels))
    return classifier.eval(), StageResult(best_epoch, history, time.perf_counter() - started)
