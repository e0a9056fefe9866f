"""Model inputs for a set of cases: preprocessed images, text embeddings, presence masks and labels."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diagnosis.features.image import ImagePreprocessing, read_preprocessed
from diagnosis.features.lexical import LEXICAL_INPUT, LexicalReader
from diagnosis.features.text import TextEncoder
from diagnosis.ingest.images import ImageError

__all__ = ["READ_BATCH", "CaseLike", "FeatureTable", "build_features"]

logger = logging.getLogger(__name__)

READ_BATCH = 32  # images per DataLoader batch (one inter-process transfer per batch with workers)


class CaseLike(Protocol):
    """What feature building needs from a case (the store's ``CaseInput`` satisfies it)."""

    image_path: str | None
    text: str | None


@dataclass
class FeatureTable:
    """Aligned model inputs for N cases.

    Attributes:
        inputs: Modality -> float32 array (``(N, 1, *grid)`` images, ``(N, F)`` vectors); zeros where missing. With a
            lexical reader also ``LEXICAL_INPUT``: ``(N, C)`` log-probabilities of the texts (evidence, not a modality).
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


class _ImageFiles(Dataset):
    """Image files read and preprocessed one by one (by ``DataLoader`` workers when there are any).

    Args:
        items: ``(row, path)`` pairs; ``row`` is the case's index in the feature table.
        config: The model's image preprocessing.
    """

    def __init__(self, items: list[tuple[int, str]], config: ImagePreprocessing) -> None:
        self.items = items
        self.config = config

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[int, np.ndarray | None, str | None]:
        """``(row, (1, *grid) array, None)``, or ``(row, None, reason)`` for an unusable image."""
        row, path = self.items[k]
        try:
            return row, read_preprocessed(path, self.config), None
        except (ImageError, OSError) as error:
            return row, None, f"image unusable at diagnosis time: {error}"


def _collate(batch: list[tuple[int, np.ndarray | None, str | None]]) -> tuple[list[int], torch.Tensor | None, dict[int, str]]:
    """Rows read, their images stacked ``(B', 1, *grid)`` (shared memory between processes), and row -> reason."""
    rows = [row for row, array, _ in batch if array is not None]
    arrays = [torch.from_numpy(array) for _, array, _ in batch if array is not None]
    return rows, torch.stack(arrays) if arrays else None, {row: reason for row, _, reason in batch if reason is not None}


def _image_batches(items: list[tuple[int, str]], config: ImagePreprocessing, workers: int) -> Iterator[tuple[list[int], torch.Tensor | None, dict[int, str]]]:
    """Batches of read images; with ``workers`` > 0, worker processes start reading the whole chunk at once, in the
    background (the chunk's images are held until consumed: memory is bounded by the chunk, as the table is)."""
    if not items:
        return iter(())
    batches = -(-len(items) // READ_BATCH)
    workers = min(workers, batches)  # no idle processes for a small chunk
    ahead = -(-batches // workers) if workers else None  # every batch requested at once: reading runs unattended
    loader = DataLoader(_ImageFiles(items, config), batch_size=READ_BATCH, num_workers=workers, collate_fn=_collate,
                        prefetch_factor=ahead, worker_init_fn=_forget_exit_hooks)  # fmt: skip
    return iter(loader)


def _forget_exit_hooks(_worker: int) -> None:
    """In a reader process: drop the thread-exit hooks copied from the parent by ``fork``.

    Prefect registers hooks that drain its background services at exit; the service threads do not exist in a forked
    child, the hooks fail there and the worker would exit with status 1. Readers need none of them.
    """
    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list behind threading._register_atexit
    if isinstance(hooks, list):
        hooks.clear()


def build_features(
    cases: Sequence[CaseLike],
    image: ImagePreprocessing | None,
    text_encoder: TextEncoder | None,
    labels: Iterable[str | None] | None = None,
    label_names: Sequence[str] = (),
    *,
    workers: int = 0,
    timings: dict[str, float] | None = None,
    lexical: LexicalReader | None = None,
) -> FeatureTable:
    """Read and preprocess every case's inputs.

    Images are read through a torch ``DataLoader`` in batches of :data:`READ_BATCH`. With ``workers`` > 0 the
    worker processes start reading before the texts are embedded, so file reading overlaps the text model.

    Args:
        cases: Cases with ``image_path`` and ``text``.
        image: Image preprocessing of the model (None: the model has no image modality; images are ignored).
        text_encoder: Text embedder (None: texts are ignored).
        labels: Optional label per case; names outside ``label_names`` become ``-1``.
        label_names: Class names, index = class id.
        workers: Image-reading worker processes (0: read in this process).
        timings: When given, seconds are added under ``read_images`` and ``embed_text`` (which includes the lexical
            reader).
        lexical: The model's lexical reader: its log-probabilities of the texts go under ``LEXICAL_INPUT``.

    Returns:
        The feature table; unreadable images are recorded in ``errors`` and masked out.
    """
    n = len(cases)
    inputs: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    errors: dict[int, str] = {}
    clock = {"read_images": 0.0, "embed_text": 0.0}
    batches: Iterator[tuple[list[int], torch.Tensor | None, dict[int, str]]] = iter(())
    if image is not None:
        inputs["image"] = np.zeros((n, *image.shape), dtype=np.float32)
        masks["image"] = np.zeros(n, dtype=bool)
        started = time.perf_counter()
        batches = _image_batches([(i, c.image_path) for i, c in enumerate(cases) if c.image_path], image, workers)
        clock["read_images"] += time.perf_counter() - started
    if text_encoder is not None:
        started = time.perf_counter()
        rows = [i for i, c in enumerate(cases) if c.text and c.text.strip()]
        vectors = text_encoder.encode([cases[i].text for i in rows])  # type: ignore[misc]
        inputs["text"] = np.zeros((n, vectors.shape[1] if len(rows) else text_encoder.dim), dtype=np.float32)
        masks["text"] = np.zeros(n, dtype=bool)
        if rows:
            inputs["text"][rows] = vectors
            masks["text"][rows] = True
        if lexical is not None:
            inputs[LEXICAL_INPUT] = lexical.evidence([c.text if masks["text"][i] else None for i, c in enumerate(cases)])
        clock["embed_text"] += time.perf_counter() - started
    started = time.perf_counter()
    for read, arrays, failed in batches:
        if arrays is not None:
            inputs["image"][read] = arrays.numpy()
            masks["image"][read] = True
        errors.update(failed)
    clock["read_images"] += time.perf_counter() - started
    index = {name: i for i, name in enumerate(label_names)}
    ids = np.array([index.get(lbl, -1) if lbl else -1 for lbl in (labels or [None] * n)], dtype=np.int64)
    for i in errors:  # a row with an unusable image is not used at all
        for mask in masks.values():
            mask[i] = False
    if timings is not None:
        for stage, seconds in clock.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    return FeatureTable(inputs=inputs, masks=masks, labels=ids, errors=dict(sorted(errors.items())))
