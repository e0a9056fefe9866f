"""Model inputs for a set of cases: preprocessed images, text embeddings, presence masks and labels."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from diagnosis.features.image import ImagePreprocessing, read_preprocessed
from diagnosis.features.text import TextEncoder
from diagnosis.ingest.images import ImageError

__all__ = ["CaseLike", "FeatureTable", "build_features"]

logger = logging.getLogger(__name__)


class CaseLike(Protocol):
    """What feature building needs from a case (the store's ``CaseInput`` satisfies it)."""

    image_path: str | None
    text: str | None


@dataclass
class FeatureTable:
    """Aligned model inputs for N cases.

    Attributes:
        inputs: Modality -> float32 array (``(N, 1, *grid)`` images, ``(N, F)`` vectors); zeros where missing.
        masks: Modality -> ``(N,)`` bool presence.
        labels: ``(N,)`` int class ids, ``-1`` where unknown.
        errors: Row index -> reason, for rows whose inputs could not be read (all their masks are False).
    """

    inputs: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray | slice, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Tensors for the rows in ``index`` on ``device``."""
        inputs = {m: torch.from_numpy(a[index]).to(device, non_blocking=True) for m, a in self.inputs.items()}
        masks = {m: torch.from_numpy(a[index]).to(device) for m, a in self.masks.items()}
        return inputs, masks, torch.from_numpy(self.labels[index]).to(device)

    def modalities_used(self, row: int) -> list[str]:
        """Names of the modalities present in one row."""
        return [m for m, mask in self.masks.items() if mask[row]]


def build_features(
    cases: Sequence[CaseLike],
    image: ImagePreprocessing | None,
    text_encoder: TextEncoder | None,
    labels: Iterable[str | None] | None = None,
    label_names: Sequence[str] = (),
) -> FeatureTable:
    """Read and preprocess every case's inputs.

    Args:
        cases: Cases with ``image_path`` and ``text``.
        image: Image preprocessing of the model (None: the model has no image modality; images are ignored).
        text_encoder: Text embedder (None: texts are ignored).
        labels: Optional label per case; names outside ``label_names`` become ``-1``.
        label_names: Class names, index = class id.

    Returns:
        The feature table; unreadable images are recorded in ``errors`` and masked out.
    """
    n = len(cases)
    inputs: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    errors: dict[int, str] = {}
    if image is not None:
        inputs["image"] = np.zeros((n, *image.shape), dtype=np.float32)
        masks["image"] = np.zeros(n, dtype=bool)
        for i, case in enumerate(cases):
            if case.image_path:
                try:
                    inputs["image"][i] = read_preprocessed(case.image_path, image)
                    masks["image"][i] = True
                except (ImageError, OSError) as error:
                    errors[i] = f"image unusable at diagnosis time: {error}"
    if text_encoder is not None:
        rows = [i for i, c in enumerate(cases) if c.text and c.text.strip()]
        vectors = text_encoder.encode([cases[i].text for i in rows])  # type: ignore[misc]
        inputs["text"] = np.zeros((n, vectors.shape[1] if len(rows) else text_encoder.dim), dtype=np.float32)
        masks["text"] = np.zeros(n, dtype=bool)
        if rows:
            inputs["text"][rows] = vectors
            masks["text"][rows] = True
    index = {name: i for i, name in enumerate(label_names)}
    ids = np.array([index.get(lbl, -1) if lbl else -1 for lbl in (labels or [None] * n)], dtype=np.int64)
    for i in errors:  # a row with an unusable image is not used at all
        for mask in masks.values():
            mask[i] = False
    return FeatureTable(inputs=inputs, masks=masks, labels=ids, errors=errors)
