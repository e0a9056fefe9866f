"""Mixture-based fusion: mixture of experts (MMVAE) and mixture of products of experts (MoPoE)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import torch

from diagnosis.fusion.base import ExpertFusionVAE
from diagnosis.fusion.gaussian import Gaussian, mixture_moments, product_of_experts

__all__ = ["MoEVAE", "MoPoEVAE"]


def _present(masks: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """``(B,)`` True where every modality in ``names`` is present."""
    return torch.stack([masks[m] for m in names]).all(0)


class MoEVAE(ExpertFusionVAE):
    """Mixture of experts (Shi et al. 2019): ``q(z | X)`` is the uniform mixture of the present unimodal experts.

    The objective visits each unimodal posterior (the stratified mixture ELBO: every expert's sample must
    reconstruct every present modality); the joint used for diagnosis is the mixture's moment-matched Gaussian.
    """

    name = "moe"  # ``--fusion`` value (see :data:`~diagnosis.fusion.config.FUSIONS`)

    samples_subsets = True  # with ``subset_sampling``, training decodes one sampled expert per case

    def fuse(self, experts: Mapping[str, Gaussian], masks: Mapping[str, torch.Tensor]) -> Gaussian:
        """Moment-matched mixture of the present experts."""
        names = [m for m in self.modalities if m in experts]
        if not names:
            return self.prior(masks)
        return mixture_moments([experts[m] for m in names], [masks[m] for m in names])

    def subsets(self, masks: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
        """One term per modality (each expert's sample explains all present modalities), plus the mixture."""
        out = [(m, {k: v & (k == m) for k, v in masks.items()}) for m in self.modalities]
        return out + [("joint", dict(masks))] if len(self.modalities) > 1 else out


class MoPoEVAE(ExpertFusionVAE):
    """Mixture of products of experts (Sutter et al. 2021): a mixture over the PoE of every modality subset.

    The objective visits the PoE posterior of every non-empty subset; diagnosis uses the moment-matched mixture of
    the subset posteriors available for each case. With ``subset_sampling`` (the default) training decodes one
    sampled subset per case instead of every subset (MultiVae's estimator), a fraction of the full objective's cost.
    """

    name = "mopoe"  # ``--fusion`` value (see :data:`~diagnosis.fusion.config.FUSIONS`)

    samples_subsets = True

    def _subset_names(self) -> list[tuple[str, ...]]:
        return [c for k in range(1, len(self.modalities) + 1) for c in combinations(self.modalities, k)]

    def _poe(self, experts: Mapping[str, Gaussian], names: tuple[str, ...], masks: Mapping[str, torch.Tensor]) -> Gaussian:
        present = [m for m in names if m in experts]
        if not present:
            return self.prior(masks)
        return product_of_experts([experts[m] for m in present], [masks[m] for m in present])

    def fuse(self, experts: Mapping[str, Gaussian], masks: Mapping[str, torch.Tensor]) -> Gaussian:
        """Mixture of the PoEs of every subset whose modalities are all present."""
        names = [n for n in self._subset_names() if all(m in experts for m in n)]
        if not names:
            return self.prior(masks)
        return mixture_moments([self._poe(experts, n, masks) for n in names], [_present(masks, n) for n in names])

    def subsets(self, masks: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
        """Every non-empty subset (its PoE is trained to explain all present modalities) and the mixture."""
        out = []
        for names in self._subset_names():
            keep = _present(masks, names)
            out.append(("+".join(names), {k: v & keep & (k in names) for k, v in masks.items()}))
        return out + [("joint", dict(masks))] if len(self.modalities) > 1 else out

    def subset_posteriors(self, inputs, masks):  # noqa: ANN001, ANN201 - see base class
        """Subset terms use the subset's own PoE; the joint term the mixture."""
        experts = self.encode_experts(inputs, masks)
        result = []
        for name, subset in self.subsets(masks):
            q = self.fuse(experts, subset) if name == "joint" else self._poe(experts, tuple(name.split("+")), subset)
            result.append((name, subset, q))
        return result

