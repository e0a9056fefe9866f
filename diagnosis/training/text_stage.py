"""Stage 0 of training: the text encoder, fine-tuned on the labelled training texts before features are built.

A frozen, mean-pooled sentence embedding reads every note the same way whatever the diagnoses are; a few epochs of
supervised fine-tuning make it attend to the words that tell this data set's diagnoses apart (on Symptom2Disease,
test accuracy of a logistic regression on the embeddings rose from 0.94 frozen to 0.97 after one epoch). The
transformer is trained with the pooling the product embeds with (masked mean, L2-normalised) under a cosine
classifier, so the fine-tuned vectors keep the geometry that the fusion model's text expert reads. Each distinct
text is visited once per epoch with its empirical label distribution as a soft target (repeated indication texts
cost one forward pass). The epoch with the best validation accuracy is kept and saved as a Hugging Face folder
beside the model version; the spec's text encoder then points at it, so diagnosis embeds with the same weights.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from diagnosis.features.text import TextEncoderConfig, default_text_model_path
from diagnosis.training.stage_result import StageResult

__all__ = ["SECONDS_PER_TEXT_EPOCH", "TextStage", "TextStageConfig", "finetune_text_encoder"]

logger = logging.getLogger(__name__)

MIN_TEXTS = 8  # fewer distinct labelled training texts than this: the stage is skipped (frozen embeddings)
COSINE_SCALE = 20.0  # logits = scale * cos(embedding, class weight)
SECONDS_PER_TEXT_EPOCH = 0.045  # MiniLM fine-tuning on 2 CPU cores, per distinct text and epoch (benchmark estimates)


@dataclass(frozen=True)
class TextStageConfig:
    """Settings of the text fine-tuning stage (part of ``TrainConfig``, stored with the model version)."""

    epochs: int = 3  # passes over the distinct labelled training texts; 0 keeps the encoder frozen
    lr: float = 1e-4  # AdamW peak learning rate of the transformer (one-cycle); the head uses 1e-2
    batch_size: int = 32  # texts per step
    max_length: int = 64  # tokens per text while fine-tuning (symptom notes average ~45); embedding keeps its own
    max_texts: int = 2048  # distinct texts per epoch at most (a seeded sample): bounds the CPU time on large stores
    label_smoothing: float = 0.1  # cross-entropy label smoothing

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class TextStage(StageResult):
    """Where the fine-tuned encoder was saved and how its training went."""

    encoder: TextEncoderConfig  # the base encoder's settings with ``model_path`` at the fine-tuned folder


def _soft_targets(texts: Sequence[str], labels: Sequence[int], n_classes: int) -> tuple[list[str], torch.Tensor]:
    """Distinct texts and their empirical label distributions ``(T, C)``."""
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n_classes, dtype=np.float32))
    for text, label in zip(texts, labels, strict=True):
        if label >= 0 and text and text.strip():
            counts[text][label] += 1
    distinct = list(counts)
    targets = np.stack([counts[t] / counts[t].sum() for t in distinct]) if distinct else np.zeros((0, n_classes))
    return distinct, torch.from_numpy(targets.astype(np.float32))


def _pooled(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Masked-mean, L2-normalised embeddings ``(B, H)``, as :class:`~diagnosis.features.text.TextEncoder` pools."""
    hidden = model(**batch).last_hidden_state  # (B, T, H)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


class _CosineClassifier:
    """The transformer with the product's pooling under a cosine head (``COSINE_SCALE`` times the cosine between
    the pooled text and each class's row of ``head``)."""

    def __init__(self, model: torch.nn.Module, tokenizer: object, n_classes: int, max_length: int,
                 device: torch.device) -> None:
        self.model, self.tokenizer, self.max_length, self.device = model, tokenizer, max_length, device
        self.head = torch.nn.Parameter(torch.randn(n_classes, int(model.config.hidden_size), device=device) * 0.02)

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """``(B, C)`` class logits."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)  # fmt: skip
        return COSINE_SCALE * _pooled(self.model, batch) @ F.normalize(self.head, dim=-1).T

    def train_epoch(self, texts: Sequence[str], targets: torch.Tensor, order: np.ndarray,
                    optimiser: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
                    config: TextStageConfig) -> float:
        """One pass over ``texts[order]`` against label-smoothed soft ``targets``; the mean training loss."""
        self.model.train()
        total, n_classes = 0.0, targets.shape[1]
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            target = targets[rows].to(self.device)
            smoothed = target * (1 - config.label_smoothing) + config.label_smoothing / n_classes
            loss = -(smoothed * F.log_softmax(self.logits([texts[i] for i in rows]), -1)).sum(-1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        return total / max(len(order), 1)

    @torch.no_grad()
    def accuracy(self, labelled: Sequence[tuple[str, int]]) -> float:
        """Accuracy on ``(text, class id)`` pairs, in batches of 128."""
        self.model.eval()
        predicted = torch.cat([self.logits([t for t, _ in labelled[s : s + 128]]).argmax(1).cpu()
                               for s in range(0, len(labelled), 128)])  # fmt: skip
        return float((predicted.numpy() == np.array([y for _, y in labelled])).mean())


def finetune_text_encoder(
    base: TextEncoderConfig,
    texts: Sequence[str],
    labels: Sequence[int],
    n_classes: int,
    out_dir: str | Path,
    config: TextStageConfig = TextStageConfig(),
    *,
    val_texts: Sequence[str] = (),
    val_labels: Sequence[int] = (),
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TextStage | None:
    """Fine-tune the text transformer as a diagnosis classifier and save the selected epoch.

    Args:
        base: The encoder to start from (its ``model_path``, or the packaged MiniLM).
        texts: Training texts (repeats allowed).
        labels: Their class ids (``-1``: unlabelled, ignored).
        n_classes: Diagnoses.
        out_dir: Folder for the fine-tuned Hugging Face model (created).
        config: Stage settings.
        val_texts: Validation texts for selection (none: the last epoch is kept).
        val_labels: Their class ids.
        seed: Order, sampling and head initialisation.
        device: Where to train.
        on_epoch: Called with each epoch's figures.

    Returns:
        The stage, whose ``encoder`` points at ``out_dir``; None when the stage is off or there are fewer than
        :data:`MIN_TEXTS` distinct labelled texts.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    distinct, targets = _soft_targets(texts, labels, n_classes)
    if config.epochs <= 0 or len(distinct) < MIN_TEXTS:
        logger.info("text stage skipped (%d distinct labelled training texts)", len(distinct))
        return None
    device = torch.device(device)
    hf_logging.disable_progress_bar()
    path = Path(base.model_path or default_text_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).to(device)
    torch.manual_seed(seed)
    classifier = _CosineClassifier(model, tokenizer, n_classes, config.max_length, device)
    rng = np.random.default_rng(seed)
    per_epoch = min(len(distinct), config.max_texts)
    steps = config.epochs * -(-per_epoch // config.batch_size)
    optimiser = torch.optim.AdamW([{"params": model.parameters(), "lr": config.lr},
                                   {"params": [classifier.head], "lr": 1e-2}], weight_decay=0.01)  # fmt: skip
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=[config.lr, 1e-2], total_steps=steps, pct_start=0.1)
    kept_val = [(t, int(y)) for t, y in zip(val_texts, val_labels, strict=True) if y >= 0 and t and t.strip()]
    best, best_accuracy, best_epoch, history = None, -1.0, 0, []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(distinct))[:per_epoch]
        loss = classifier.train_epoch(distinct, targets, order, optimiser, schedule, config)
        record = {"epoch": epoch, "train_loss": loss}
        if kept_val:
            record["val_accuracy"] = classifier.accuracy(kept_val)
        if record.get("val_accuracy", epoch) > best_accuracy or not kept_val:
            best, best_accuracy, best_epoch = copy.deepcopy(model.state_dict()), record.get("val_accuracy", epoch), epoch
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    model.load_state_dict(best)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    logger.info("text stage: epoch %d kept (%d distinct texts, %.0f s)", best_epoch, len(distinct), time.perf_counter() - started)
    return TextStage(best_epoch, history, time.perf_counter() - started, encoder=replace(base, model_path=str(out_dir)))
