"""Early fusion: the classic two-branch VAE that concatenates modality features before one Gaussian encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from diagnosis.fusion.base import MultimodalVAE
from diagnosis.fusion.config import FusionConfig
from diagnosis.fusion.gaussian import Gaussian

__all__ = ["ConcatVAE"]

Tensors = Mapping[str, torch.Tensor]


class ConcatVAE(MultimodalVAE):
    """Feature networks per modality, concatenated with presence flags, then one joint Gaussian head.

    A missing modality contributes zeros and a 0 flag, so a case with one modality still gets a latent. The objective
    visits the joint and each single-modality input (the other modality zeroed), so one-modality cases are trained.

    Args:
        encoders: Modality -> feature network ``x_m -> (B, feature_dim)``.
        decoders: Modality -> decoder.
        config: Fusion settings.
    """

    name = "concat"  # ``--fusion`` value (see :data:`~diagnosis.fusion.config.FUSIONS`)

    def __init__(self, encoders: Mapping[str, nn.Module], decoders: Mapping[str, nn.Module], config: FusionConfig) -> None:
        super().__init__(encoders, decoders, config)
        self.widths = {m: int(getattr(self.encoders[m], "out_dim", config.feature_dim)) for m in self.modalities}
        self.joint_width = sum(self.widths.values()) + len(self.modalities)  # features and a presence flag each
        self.joint = nn.Sequential(nn.Linear(self.joint_width, 256), nn.SiLU(), nn.Linear(256, 2 * config.latent_dim))

    def _features(self, inputs: Tensors, masks: Tensors) -> dict[str, torch.Tensor]:
        batch = next(iter(masks.values())).shape[0]
        device = next(self.parameters()).device
        return {
            m: self.encoders[m](inputs[m]) if m in inputs and bool(masks[m].any())
            else torch.zeros(batch, self.widths[m], device=device)
            for m in self.modalities
        }

    def joint_input(self, features: Mapping[str, torch.Tensor], masks: Tensors) -> torch.Tensor:
        """``(B, joint_width)``: each modality's features (zeros where absent) and its presence flag."""
        parts = []
        for m in self.modalities:
            flag = masks[m].to(features[m].dtype).unsqueeze(-1)  # (B, 1)
            parts += [features[m] * flag, flag]
        return torch.cat(parts, dim=-1)

    def _encode(self, features: Mapping[str, torch.Tensor], masks: Tensors) -> Gaussian:
        mu, logvar = self.joint(self.joint_input(features, masks)).chunk(2, dim=-1)
        return Gaussian(mu, logvar.clamp(-8.0, 8.0))

    def posterior(self, inputs: Tensors, masks: Tensors) -> Gaussian:
        """``q(z | concatenated features)``."""
        return self._encode(self._features(inputs, masks), masks)

    def posteriors(self, inputs: Tensors, masks: Tensors, subsets: Sequence[Tensors]
                   ) -> tuple[list[Gaussian], dict[str, torch.Tensor]]:
        """The posterior under each of ``subsets``, features computed once; and the features of present modalities."""
        features = self._features(inputs, masks)
        present = {m: h for m, h in features.items() if m in inputs and bool(masks[m].any())}
        return [self._encode(features, subset) for subset in subsets], present

    def subset_posteriors(self, inputs: Tensors, masks: Tensors) -> list[tuple[str, dict[str, torch.Tensor], Gaussian]]:
        """The joint, then each modality alone (features computed once)."""
        features = self._features(inputs, masks)
        subsets = [("joint", dict(masks))]
        if len(self.modalities) > 1:
            subsets += [(m, {k: v & (k == m) for k, v in masks.items()}) for m in self.modalities]
        return [(name, subset, self._encode(features, subset)) for name, subset in subsets]
