"""The fusion stage's steps: training batches of a feature table (resident on the GPU when there is one), the
modality masking that teaches the model to diagnose from any subset of modalities, and the optimiser that steps
through them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from diagnosis.classify.model import DiagnosisModel
from diagnosis.features.augment import ImageAugmenter
from diagnosis.features.table import FeatureTable

__all__ = ["Batch", "Batches", "FusionOptimiser", "mask_modalities"]


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


class FusionOptimiser:
    """The fusion stage's optimisation, a step (``__call__``) or an epoch at a time: AdamW with a one-cycle
    schedule, loss scaling for float16 and gradient clipping, over the model's trainable parameters.

    Args:
        model: The model (frozen parameters are left out).
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        steps: Steps of the whole schedule.
        device: Where the model trains (fused AdamW on a GPU: one kernel per step).
        dtype: The autocast type, if any.
    """

    def __init__(self, model: DiagnosisModel, lr: float, weight_decay: float, steps: int, device: torch.device,
                 dtype: torch.dtype | None) -> None:
        self.model, self.device, self.dtype = model, device, dtype
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(self.parameters, lr=lr, weight_decay=weight_decay,
                                           fused=device.type == "cuda" or None)  # fmt: skip
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimiser, max_lr=lr, total_steps=steps,
                                                            pct_start=0.15)  # fmt: skip
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # float16 needs loss scaling

    def __call__(self, loss: torch.Tensor) -> None:
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimiser)
        torch.nn.utils.clip_grad_norm_(self.parameters, 5.0)
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.schedule.step()

    def epoch(self, batches: Iterator[Batch], beta: float, generator: torch.Generator, augment: ImageAugmenter | None,
              class_weights: torch.Tensor | None) -> float:
        """One pass: each batch with a modality hidden at random (``modality_dropout``) and its images augmented,
        then a step on the objective; the mean loss (summed on the device: no sync per step)."""
        total, steps = 0.0, 0
        dropout = self.model.spec.fusion.modality_dropout
        for inputs, masks, targets in batches:
            masks = mask_modalities(masks, dropout, generator)
            if augment is not None:
                inputs = {**inputs, "image": augment(inputs["image"])}
            with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                out = self.model.objective(inputs, masks, targets, beta, class_weights)
            self(out.loss)
            total, steps = total + out.loss.detach(), steps + 1
        return float(total) / max(steps, 1)
