"""Training batches of a feature table (resident on the GPU when there is one) and the modality masking that
teaches the fusion model to diagnose from any subset of modalities."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from diagnosis.features.table import FeatureTable

__all__ = ["Batch", "Batches", "mask_modalities"]


Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]  # inputs, masks, labels


class Batches:
    """Training batches of a table; on a GPU the whole table is copied there once and indexed there.

    Args:
        table: The training rows.
        device: Where the model trains.
    """

    def __init__(self, table: FeatureTable, device: torch.device) -> None:
        self.table, self.device = table, device
        self.resident = None
        if device.type == "cuda":  # no host-to-device copy per step: the feature tables are small
            self.resident = (
                {m: torch.from_numpy(a).pin_memory().to(device, non_blocking=True) for m, a in table.inputs.items()},
                {m: torch.from_numpy(a).pin_memory().to(device, non_blocking=True) for m, a in table.masks.items()},
                torch.from_numpy(table.labels).pin_memory().to(device, non_blocking=True),
            )

    def epoch(self, order: np.ndarray, batch_size: int) -> Iterator[Batch]:
        """Inputs, masks and labels on the device, ``batch_size`` rows at a time in ``order``.

        A last batch of a single row is left out (batch norm needs two samples). On a GPU the order is copied
        there once per epoch, so a step copies nothing and never waits for the device.
        """
        starts = [s for s in range(0, len(order), batch_size) if len(order) - s >= 2]
        if self.resident is None:
            for start in starts:
                yield self.table.batch(order[start : start + batch_size], self.device)
            return
        inputs, masks, labels = self.resident
        rows_all = torch.from_numpy(order).pin_memory().to(self.device, non_blocking=True)
        for start in starts:
            rows = rows_all[start : start + batch_size]
            yield {m: t[rows] for m, t in inputs.items()}, {m: t[rows] for m, t in masks.items()}, labels[rows]


def mask_modalities(masks: dict[str, torch.Tensor], p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Hide one random modality of complete cases with probability ``p`` (the case keeps at least one)."""
    names = list(masks)
    if len(names) < 2 or p <= 0:
        return masks
    stacked = torch.stack([masks[m] for m in names])  # (M, B)
    complete = stacked.all(0)
    on = generator.device  # draws made where the generator lives, then moved (no copy when that is the masks' device)
    drop = complete & (torch.rand(complete.shape, generator=generator, device=on) < p).to(complete.device)
    which = torch.randint(len(names), complete.shape, generator=generator, device=on).to(complete.device)
    return {m: masks[m] & ~(drop & (which == i)) for i, m in enumerate(names)}
