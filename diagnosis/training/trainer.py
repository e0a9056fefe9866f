"""Training the diagnosis model: ELBO + classification, KL warm-up, modality masking, selection on validation."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from diagnosis.classify.model import DiagnosisModel, ModelSpec
from diagnosis.device import amp_dtype
from diagnosis.features.augment import ImageAugmenter
from diagnosis.features.image import ImageFeatureNet, load_backbone_weights
from diagnosis.features.lexical import LexicalConfig, LexicalReader
from diagnosis.features.table import FeatureTable
from diagnosis.training.calibrate import calibrate, fit_class_latents
from diagnosis.training.image_stage import ImageStage, ImageStageConfig, train_image_encoder
from diagnosis.training.steps import Batches, FusionOptimiser
from diagnosis.training.text_stage import TextStageConfig

__all__ = ["FitResult", "TrainConfig", "fit", "image_backbone", "inverse_frequency", "load_stage_members"]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (stored with the model version)."""

    epochs: int = 30  # maximum passes over the training split
    batch_size: int = 64  # cases per step
    lr: float = 2e-3  # AdamW learning rate (cosine-decayed)
    weight_decay: float = 1e-4  # AdamW weight decay
    patience: int = 8  # stop after this many epochs without a better validation loss
    seed: int = 0  # initialisation, shuffling and masking
    image_weights: str | None = None  # optional user-supplied weights for the image feature network
    class_weights: bool = False  # weight the diagnosis loss by inverse training-class frequency
    amp: bool | None = None  # mixed precision; None: bfloat16 autocast on CUDA devices that support it, else off
    image_stage: ImageStageConfig = field(default_factory=ImageStageConfig)  # supervised image encoder, trained first
    text_stage: TextStageConfig = field(default_factory=TextStageConfig)  # text fine-tuning (run by the caller, which
    # builds the text features with the fine-tuned encoder before ``fit``)
    lexical: LexicalConfig = field(default_factory=LexicalConfig)  # the bag-of-words reader of the text (fitted by the
    # caller, which adds its log-probabilities to the feature tables, and given to ``fit``)

    def __post_init__(self) -> None:
        if isinstance(self.image_stage, dict):  # from JSON
            object.__setattr__(self, "image_stage", ImageStageConfig(**self.image_stage))
        if isinstance(self.text_stage, dict):
            object.__setattr__(self, "text_stage", TextStageConfig(**self.text_stage))
        if isinstance(self.lexical, dict):
            object.__setattr__(self, "lexical", LexicalConfig(**self.lexical))

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class FitResult:
    """The selected model and how training went."""

    model: DiagnosisModel
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    image_stage: ImageStage | None = None  # the supervised image encoder the fusion model started from
    layerwise: list[dict[str, float]] = field(default_factory=list)  # stacked_ae: per layer and epoch, its loss


@torch.no_grad()
def _val_loss(model: DiagnosisModel, table: FeatureTable, device: torch.device, batch_size: int) -> float:
    """Cross-entropy of the diagnosis on the validation rows (joint posterior, no sampling)."""
    model.eval()
    losses, count = 0.0, 0
    for start in range(0, len(table), batch_size):
        inputs, masks, targets = table.batch(slice(start, start + batch_size), device)
        keep = targets >= 0
        if not bool(keep.any()):
            continue
        logits = model.head(model.vae.posterior(inputs, masks).mu)
        losses += float(F.cross_entropy(logits[keep], targets[keep], reduction="sum"))
        count += int(keep.sum())
    return losses / max(count, 1)


def inverse_frequency(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """``(C,)`` weights ``N / (C * count_c)`` over labelled rows (absent classes get weight 0)."""
    counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def image_backbone(model: DiagnosisModel) -> ImageFeatureNet | None:
    """The image feature network inside the model's fusion VAE (experts wrap it as ``backbone``), if any."""
    if "image" not in model.vae.encoders:
        return None
    encoder = model.vae.encoders["image"]
    return getattr(encoder, "backbone", encoder)


def load_stage_members(backbone: ImageFeatureNet, stage: ImageStage) -> None:
    """Copy the image stage's trained networks into the fusion model's image feature network, member by member.

    Raises:
        ValueError: The stage trained another number of networks than the feature network has members.
    """
    trained = [classifier.backbone.net for classifier in stage.classifier.members]
    if len(trained) != len(backbone.members()):
        raise ValueError(f"the image stage trained {len(trained)} network(s) but the model's image feature network has "
                         f"{len(backbone.members())} member(s); train the stage with members=image_members")
    for member, net in zip(backbone.members(), trained, strict=True):
        member.load_state_dict(net.state_dict())


def _image_stage(spec: ModelSpec, train: FeatureTable, val: FeatureTable | None, config: TrainConfig,
                 weights: torch.Tensor | None, device: torch.device,
                 on_epoch: Callable[[dict[str, float]], None] | None) -> ImageStage | None:
    """Stage 1: the supervised image encoder (None without an image modality or labelled images)."""
    if spec.modalities.image is None:
        return None
    return train_image_encoder(
        spec.modalities.image, len(spec.label_names), train, val, config.image_stage,
        feature_dim=spec.fusion.feature_dim, channels=spec.fusion.image_channels, res_units=spec.fusion.image_res_units,
        members=spec.fusion.image_members, weights=config.image_weights, class_weights=weights, seed=config.seed, device=device,
        on_epoch=(lambda r: on_epoch({**r, "stage": "image"})) if on_epoch else None,
    )


def _fusion_augmenter(spec: ModelSpec, config: TrainConfig, staged: bool) -> ImageAugmenter | None:
    """The image augmentation of the fusion stage (after an image stage, when ``augment_fusion`` is on)."""
    image, stage = spec.modalities.image, config.image_stage
    if image is None or not staged or not stage.augment_fusion or not stage.augmentation.enabled:
        return None
    return ImageAugmenter(stage.augmentation, image.spatial_dims, image.size, seed=config.seed + 1)


def _start_model(spec: ModelSpec, lexical: LexicalReader | None, image_stage: ImageStage | None, config: TrainConfig,
                 device: torch.device) -> tuple[DiagnosisModel, list[torch.nn.Module]]:
    """A fresh model whose image feature network holds the image stage's networks (or the user's weights), and the
    modules kept frozen while the fusion model trains."""
    model = DiagnosisModel(spec, lexical).to(device)
    backbone, frozen = image_backbone(model), []
    if backbone is not None and image_stage is not None:
        load_stage_members(backbone, image_stage)
        model.set_image_heads([(c.head, float(c.temperature)) for c in image_stage.classifier.members])
        if config.image_stage.freeze:
            frozen.append(backbone.requires_grad_(False))
    elif backbone is not None and config.image_weights:
        for member in backbone.members():
            load_backbone_weights(member, config.image_weights)
    return model, frozen


def _layerwise(model: DiagnosisModel, batches: Batches, rng: np.random.Generator, config: TrainConfig, epochs: int,
               on_epoch: Callable[[dict[str, float]], None] | None) -> list[dict[str, float]]:
    """The fusion model's stage before training (:meth:`MultimodalVAE.pretrain`: the stacked autoencoder's greedy
    layer-wise stage) on the training rows, feature networks in eval mode."""
    model.vae.encoders.eval()

    def epoch() -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        for inputs, masks, _ in batches.epoch(rng.permutation(len(batches.table)), config.batch_size):
            yield inputs, masks

    report = (lambda r: on_epoch({**r, "stage": "layerwise"})) if on_epoch else None
    return model.vae.pretrain(epoch, epochs, lr=config.lr, on_layer=report)


def fit(
    spec: ModelSpec,
    train: FeatureTable,
    val: FeatureTable | None,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    image_stage: ImageStage | None = None,
    lexical: LexicalReader | None = None,
) -> FitResult:
    """Train a model in two stages and keep the fusion epoch with the lowest validation loss.

    Stage 1 trains the image feature network supervised, with augmentation (:mod:`diagnosis.training.image_stage`).
    Stage 2 trains the fusion VAE and the diagnosis head on top of it, the image network frozen by default.

    Args:
        spec: Model description (labels, modalities, fusion).
        train: Training rows; labels ``-1`` contribute the ELBO only.
        val: Validation rows for model selection and temperature calibration (None: keep the last epoch).
        config: Optimisation settings.
        device: Where to train.
        on_epoch: Called with each epoch's metrics (progress reporting); ``stage`` says ``image`` or ``fusion``.
        image_stage: An image stage already trained for this spec (several fusion variants can share one); None
            trains it here when the spec has an image modality.
        lexical: The lexical reader of the texts, fitted on the training texts (``build_features(..., lexical=)``
            put its log-probabilities into ``train`` and ``val``); stacked at calibration and kept in the model.

    Returns:
        The selected, calibrated model in eval mode.

    Raises:
        ValueError: The training split has no labelled row.
    """
    device = torch.device(device)
    labelled = int((train.labels >= 0).sum())
    if labelled == 0:
        raise ValueError("the training split has no labelled case; label cases with split=train first")
    weights = inverse_frequency(train.labels, len(spec.label_names)).to(device) if config.class_weights else None
    if image_stage is None:
        image_stage = _image_stage(spec, train, val, config, weights, device, on_epoch)
    started = time.perf_counter()  # FitResult.seconds: the fusion stage (the image stage keeps its own)
    torch.manual_seed(config.seed)
    generator = torch.Generator(device).manual_seed(config.seed)  # modality masking, drawn on the training device
    model, frozen = _start_model(spec, lexical, image_stage, config, device)
    augment = _fusion_augmenter(spec, config, image_stage is not None)
    rng = np.random.default_rng(config.seed)
    batches, dtype = Batches(train, device), amp_dtype(device, config.amp)
    layerwise = _layerwise(model, batches, rng, config, spec.fusion.layerwise_epochs, on_epoch)  # stacked_ae only
    steps = config.epochs * max(1, -(-len(train) // config.batch_size))
    step = FusionOptimiser(model, config.lr, config.weight_decay, steps, device, dtype)
    best, best_loss, best_epoch, history = None, float("inf"), 0, []
    for epoch in range(1, config.epochs + 1):
        model.train()
        for module in frozen:  # a frozen network keeps its batch-norm statistics
            module.eval()
        warm = spec.fusion.kl_warmup_epochs
        beta = spec.fusion.beta * min(1.0, epoch / warm) if warm > 0 else spec.fusion.beta
        loss = step.epoch(batches.epoch(rng.permutation(len(train)), config.batch_size), beta, generator, augment,
                          weights)  # fmt: skip
        record = {"epoch": epoch, "train_loss": loss, "beta": beta}
        if val is not None and len(val):
            record["val_loss"] = _val_loss(model, val, device, 256)
            if record["val_loss"] < best_loss:
                best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), record["val_loss"], epoch
        history.append(record)
        if on_epoch is not None:
            on_epoch({**record, "stage": "fusion"})
        if val is not None and epoch - best_epoch >= config.patience and best is not None:
            logger.info("early stop at epoch %d (best %d)", epoch, best_epoch)
            break
    if best is not None:
        model.load_state_dict(best)
    else:
        best_epoch = len(history)
    if val is not None and len(val):
        calibrate(model, val, device)
    fit_class_latents(model, train, device)
    return FitResult(model=model.eval(), best_epoch=best_epoch, history=history, seconds=time.perf_counter() - started,
                     image_stage=image_stage, layerwise=layerwise)
