"""Non-VAE fusion baselines from the literature, for the benchmark report (same feature networks as the VAEs).

- ``late``: one classifier per modality, probabilities averaged over the present modalities (late fusion).
- ``attention``: modality features weighted by a learned attention score over the present modalities, one head.
- ``mmae``: a multimodal autoencoder; modality embeddings averaged, every modality decoded from the average, a
  cross-modal correlation loss pulling paired image / text embeddings together, a head on the fused embedding.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diagnosis.features.image import ImageFeatureNet
from diagnosis.features.table import FeatureTable
from diagnosis.fusion.networks import ImageDecoder, ModalitySpec, VectorDecoder, VectorFeatureNet
from diagnosis.training.steps import mask_modalities

__all__ = ["BASELINES", "Baseline", "fit_baseline", "predict_baseline"]

BASELINES = ("late", "attention", "mmae")
MODALITY_DROPOUT = 0.2  # chance of hiding one modality of a complete training case, as for the VAEs
Tensors = Mapping[str, torch.Tensor]


class Baseline(nn.Module):
    """Per-modality feature networks and a fusion rule named by ``kind``."""

    def __init__(self, kind: str, spec: ModalitySpec, n_classes: int, feature_dim: int = 128) -> None:
        super().__init__()
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
        self.kind, self.modalities = kind, spec.names
        nets: dict[str, nn.Module] = {}
        if spec.image is not None:
            nets["image"] = ImageFeatureNet(spec.image, feature_dim)
        nets.update({m: VectorFeatureNet(size, feature_dim) for m, size in spec.vectors.items()})
        self.features = nn.ModuleDict(nets)
        heads = self.modalities if kind == "late" else ("fused",)
        self.heads = nn.ModuleDict({m: nn.Linear(feature_dim, n_classes) for m in heads})
        self.score = nn.Linear(feature_dim, 1)  # attention scorer
        if kind == "mmae":
            decoders: dict[str, nn.Module] = {}
            if spec.image is not None:
                decoders["image"] = ImageDecoder(spec.image, feature_dim)
            decoders.update({m: VectorDecoder(feature_dim, size) for m, size in spec.vectors.items()})
            self.decoders = nn.ModuleDict(decoders)

    def embed(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        """Feature vector ``(B, F)`` per modality."""
        return {m: self.features[m](inputs[m]) for m in self.modalities}

    def logits(self, features: Mapping[str, torch.Tensor], masks: Tensors) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits ``(B, C)`` (log of averaged probabilities for ``late``) and the fused embedding if any."""
        present = torch.stack([masks[m] for m in self.modalities]).T.to(next(self.parameters()).dtype)  # (B, M)
        if self.kind == "late":
            probs = torch.stack([torch.softmax(self.heads[m](features[m]), -1) for m in self.modalities], 1)  # (B, M, C)
            mean = (probs * present.unsqueeze(-1)).sum(1) / present.sum(1, keepdim=True).clamp(min=1)
            return torch.log(mean.clamp(min=1e-8)), None
        stacked = torch.stack([features[m] for m in self.modalities], 1)  # (B, M, F)
        if self.kind == "attention":
            scores = self.score(stacked).squeeze(-1).masked_fill(present == 0, -1e4)  # (B, M)
            fused = (torch.softmax(scores, -1).unsqueeze(-1) * stacked).sum(1)
        else:  # mmae: average of the present embeddings
            fused = (stacked * present.unsqueeze(-1)).sum(1) / present.sum(1, keepdim=True).clamp(min=1)
        return self.heads["fused"](fused), fused

    def loss(self, inputs: Tensors, masks: Tensors, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (per modality too for ``late``); ``mmae`` adds reconstruction and correlation terms."""
        features = self.embed(inputs)
        logits, fused = self.logits(features, masks)
        loss = F.nll_loss(logits, targets) if self.kind == "late" else F.cross_entropy(logits, targets)
        if self.kind == "late":
            for m in self.modalities:
                keep = masks[m]
                if bool(keep.any()):
                    loss = loss + F.cross_entropy(self.heads[m](features[m][keep]), targets[keep])
        if self.kind == "mmae" and fused is not None:
            for m in self.modalities:
                err = (self.decoders[m](fused) - inputs[m]).pow(2).flatten(1).mean(-1)
                loss = loss + (err * masks[m].float()).sum() / masks[m].float().sum().clamp(min=1)
            if len(self.modalities) == 2:
                both = masks[self.modalities[0]] & masks[self.modalities[1]]
                if int(both.sum()) > 1:
                    a, b = (F.normalize(features[m][both], dim=-1) for m in self.modalities)
                    loss = loss + (1 - (a * b).sum(-1)).mean()  # cross-modal correlation (cosine) loss
        return loss


def fit_baseline(kind: str, spec: ModalitySpec, n_classes: int, train: FeatureTable, val: FeatureTable,
                 epochs: int = 30, batch_size: int = 128, lr: float = 2e-3, seed: int = 0, patience: int = 8,
                 device: torch.device | str = "cpu") -> Baseline:
    """Train a baseline with modality dropout and keep the epoch with the lowest validation cross-entropy."""
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = Baseline(kind, spec, n_classes).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    best, best_loss, best_epoch = None, float("inf"), 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            if len(index) < 2:
                continue  # batch norm needs two samples
            inputs, masks, targets = train.batch(index, device)
            loss = model.loss(inputs, mask_modalities(masks, MODALITY_DROPOUT, generator), targets)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        probs = predict_baseline(model, val, device)
        val_loss = float(-np.log(np.clip(probs[np.arange(len(val)), val.labels], 1e-8, 1)).mean())
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), val_loss, epoch
        if epoch - best_epoch >= patience:
            break
    if best is not None:
        model.load_state_dict(best)
    return model.eval()


@torch.no_grad()
def predict_baseline(model: Baseline, table: FeatureTable, device: torch.device | str = "cpu", batch_size: int = 512) -> np.ndarray:
    """Class probabilities ``(N, C)``."""
    model.eval()
    out = []
    for start in range(0, len(table), batch_size):
        inputs, masks, _ = table.batch(slice(start, start + batch_size), torch.device(device))
        logits, _ = model.logits(model.embed(inputs), masks)
        out.append(torch.softmax(logits, -1).float().cpu().numpy())
    return np.concatenate(out)
