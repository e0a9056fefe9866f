"""Batch prediction over a feature table: probabilities, latents, uncertainty and conformal sets.

The fast path is the default path: ``torch.inference_mode``, large batches, every batch's outputs kept on the
device and copied back once. On CUDA the inputs are pinned and copied without blocking, and mixed precision
(bfloat16 autocast) is on by default; ``compile=True`` runs the forward through ``torch.compile``. The posterior
draws for the uncertainty come from a CPU generator seeded per call, drawn row by row, so a case gets the same
uncertainty whatever the batch size, device or precision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diagnosis.classify.graph import log_probabilities
from diagnosis.classify.model import DiagnosisModel
from diagnosis.classify.uncertainty import prediction_sets, predictive_entropy
from diagnosis.device import amp_dtype
from diagnosis.features.lexical import LEXICAL_INPUT
from diagnosis.features.table import FeatureTable

__all__ = ["CPU_BATCH", "CUDA_BATCH", "Predictions", "forward_batch", "predict"]

logger = logging.getLogger(__name__)

CPU_BATCH = 512  # rows per forward pass on the CPU
CUDA_BATCH = 8192  # rows per forward pass on a GPU (the whole chunk, usually)
NOISE_SEED = 0  # the same case gets the same uncertainty on every run

Forward = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
_compiled: Forward | None = None


@dataclass(frozen=True)
class Predictions:
    """Per-row outputs.

    Attributes:
        probabilities: ``(N, C)`` calibrated class probabilities at the posterior mean.
        latents: ``(N, D)`` fused posterior means.
        uncertainty: ``(N,)`` predictive entropy (nats) over latent posterior samples.
        sets: ``(N, C)`` bool split-conformal prediction-set membership.
        modalities: Modalities used per row.
        ok: ``(N,)`` the row had at least one usable modality.
        neighbours: With a graph classifier, per row the training cases that mattered most (``case_key``, ``weight``:
            its share of the predicted class's logit); None otherwise.
    """

    probabilities: np.ndarray
    latents: np.ndarray
    uncertainty: np.ndarray
    sets: np.ndarray
    modalities: list[list[str]]
    ok: np.ndarray
    neighbours: list[list[dict]] | None = None

    def labels(self, label_names: tuple[str, ...]) -> list[str]:
        """Most probable diagnosis per row."""
        return [label_names[i] for i in self.probabilities.argmax(1)]

    def set_labels(self, row: int, label_names: tuple[str, ...]) -> list[str]:
        """The conformal set of one row, most probable first."""
        order = np.argsort(-self.probabilities[row])
        return [label_names[i] for i in order if self.sets[row, i]]


def forward_batch(
    model: DiagnosisModel, inputs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor], noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch through the model.

    Args:
        model: The model, in eval mode.
        inputs: Modality -> batch tensor.
        masks: Modality -> ``(B,)`` presence.
        noise: ``(S, B, D)`` standard-normal draws for the posterior samples.

    Returns:
        Probabilities at the posterior mean ``(B, C)``, the mean ``(B, D)`` and the predictive entropy ``(B,)``,
        all float32.
    """
    evidence = model.evidence(inputs, masks)  # calibrated per row's pattern of present modalities
    mu, logvar = evidence.posterior.mu.float(), evidence.posterior.logvar.float()
    drawn = model.probabilities(evidence, mu + noise * torch.exp(0.5 * logvar)).float()  # (S, B, C)
    return model.probabilities(evidence, mu).float(), mu, predictive_entropy(drawn)


def _compiled_forward() -> Forward:
    """``torch.compile`` of :func:`forward_batch` (built once; guards recompile it per model and shape)."""
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(forward_batch, dynamic=True)
    return _compiled


def _staged(table: FeatureTable, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The table as CPU tensors (no copy), pinned when they go to a GPU so that copies can run asynchronously."""
    pin = device.type == "cuda"
    inputs = {m: torch.from_numpy(a) for m, a in table.inputs.items()}
    masks = {m: torch.from_numpy(a) for m, a in table.masks.items()}
    if pin:
        inputs = {m: t.pin_memory() for m, t in inputs.items()}
        masks = {m: t.pin_memory() for m, t in masks.items()}
    return inputs, masks


def _on_graph(model: DiagnosisModel, probabilities: np.ndarray, latents: np.ndarray, ok: np.ndarray,
              device: torch.device, patients: Sequence[str | None] | None) -> tuple[np.ndarray, list[list[dict]]]:
    """The graph classifier's probabilities for the usable rows (attached to their nearest training cases), and the
    neighbours that mattered for each (none for a row without a usable modality)."""
    graph = model.graph
    log_p = log_probabilities(probabilities).to(device)
    attached = graph.attach(torch.from_numpy(latents).float().to(device), log_p, patients)
    on_graph = torch.softmax(attached.logits, 1).float().cpu().numpy()
    out = np.where(ok[:, None], on_graph, probabilities).astype(np.float32)
    return out, [graph.mattered(attached, i) if ok[i] else [] for i in range(len(out))]


@torch.inference_mode()
def predict(
    model: DiagnosisModel,
    table: FeatureTable,
    device: torch.device | str,
    batch_size: int | None = None,
    samples: int = 16,
    *,
    amp: bool | None = None,
    compile: bool = False,  # noqa: A002 - the torch name says what it does
    timings: dict[str, float] | None = None,
    patients: Sequence[str | None] | None = None,
) -> Predictions:
    """Run the model over every row of ``table`` in batches.

    Args:
        model: A trained model (switched to eval mode and moved to ``device`` here).
        table: Inputs built with the model's preprocessing.
        device: Where to compute.
        batch_size: Rows per forward pass (None: :data:`CPU_BATCH` on the CPU, :data:`CUDA_BATCH` on a GPU).
        samples: Latent posterior draws for the uncertainty estimate.
        amp: Mixed precision (see :func:`diagnosis.device.amp_dtype`; None: on for CUDA with bfloat16). A batch
            whose reduced-precision outputs are not finite is recomputed in float32.
        compile: Run the forward through ``torch.compile`` (needs a C++ compiler on the CPU, Triton on CUDA).
        timings: When given, the seconds spent here are added under ``model``.
        patients: Each row's patient key (None: unknown), read by a graph classifier that joins a patient's cases.

    Returns:
        Probabilities, latents, uncertainty and conformal sets per row. With a graph classifier (``model.graph``) the
        probabilities and sets are its own, and the neighbours that mattered come with them; the uncertainty stays
        the fusion model's (posterior draws).

    Raises:
        ValueError: The model reads texts with a lexical reader and the table was built without it.
    """
    if model.lexical is not None and bool(table.masks.get("text", np.zeros(0, bool)).any()) \
            and LEXICAL_INPUT not in table.inputs:  # fmt: skip
        raise ValueError("this model reads texts with its lexical reader too: build the table with "
                         "build_features(..., lexical=model.lexical)")
    started = time.perf_counter()
    device = torch.device(device)
    model.eval().to(device)
    size = batch_size or (CUDA_BATCH if device.type == "cuda" else CPU_BATCH)
    dtype = amp_dtype(device, amp)
    forward = _compiled_forward() if compile else forward_batch
    generator = torch.Generator().manual_seed(NOISE_SEED)
    inputs, masks = _staged(table, device)
    latent = model.spec.fusion.latent_dim
    probs, latents, entropy = [], [], []
    for start in range(0, len(table), size):
        batch = {m: t[start : start + size].to(device, non_blocking=True) for m, t in inputs.items()}
        present = {m: t[start : start + size].to(device, non_blocking=True) for m, t in masks.items()}
        rows = min(size, len(table) - start)
        noise = torch.randn(rows, samples, latent, generator=generator)  # row-major: independent of the batching
        noise = noise.to(device, non_blocking=True).transpose(0, 1)  # (S, B, D)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = forward(model, batch, present, noise)
        if dtype is not None and not all(bool(torch.isfinite(t).all()) for t in out):
            logger.warning("mixed precision gave non-finite outputs; recomputing the batch in float32")
            out = forward_batch(model, batch, present, noise)
        for kept, value in zip((probs, latents, entropy), out, strict=True):
            kept.append(value)
    n_classes = len(model.spec.label_names)
    probabilities = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, n_classes), np.float32)
    means = torch.cat(latents).cpu().numpy() if latents else np.zeros((0, latent), np.float32)
    ok = np.stack(list(table.masks.values())).any(0) if table.masks else np.zeros(len(table), dtype=bool)
    threshold, neighbours = float(model.conformal_threshold), None
    if model.graph is not None and len(table):
        probabilities, neighbours = _on_graph(model, probabilities, means, ok, device, patients)
        threshold = float(model.graph.conformal_threshold)
    result = Predictions(
        probabilities=probabilities,
        latents=means,
        uncertainty=torch.cat(entropy).cpu().numpy() if entropy else np.zeros(0, np.float32),
        sets=prediction_sets(probabilities, threshold),
        modalities=[table.modalities_used(i) for i in range(len(table))],
        ok=ok,
        neighbours=neighbours,
    )
    if timings is not None:
        timings["model"] = timings.get("model", 0.0) + time.perf_counter() - started
    return result
