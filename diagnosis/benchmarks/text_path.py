"""The product's text encoder for a benchmark run: the text stage on the run's train texts, as ``diagnosis train``
runs it, or the frozen packaged encoder when the stage is off or skipped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from diagnosis.features.cache import EmbeddingCache
from diagnosis.features.text import TextEncoder, TextEncoderConfig
from diagnosis.training.text_stage import TextStage, TextStageConfig, finetune_text_encoder

__all__ = ["benchmark_text_encoder"]


def benchmark_text_encoder(
    train_texts: Sequence[str], train_labels: Sequence[int], val_texts: Sequence[str], val_labels: Sequence[int],
    n_classes: int, work_dir: str | Path, epochs: int, *, seed: int = 0, device: torch.device | str = "cpu",
    cache: EmbeddingCache | None = None, on_epoch: Callable[[dict], None] | None = None,
) -> tuple[TextEncoder, TextStage | None]:
    """Fine-tune the packaged encoder for ``epochs`` (selected on val) into ``work_dir``.

    Returns:
        The encoder to build features with and the stage (None when skipped). A fine-tuned encoder is not cached:
        ``work_dir`` is a benchmark's temporary folder. The frozen one uses ``cache``.
    """
    stage = finetune_text_encoder(TextEncoderConfig(), train_texts, list(train_labels), n_classes, work_dir,
                                  TextStageConfig(epochs=epochs), val_texts=val_texts, val_labels=list(val_labels),
                                  seed=seed, device=device, on_epoch=on_epoch)  # fmt: skip
    if stage is not None:
        return TextEncoder(stage.encoder, device=device), stage
    return TextEncoder(device=device, cache=cache), None
