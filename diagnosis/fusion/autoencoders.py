"""Deterministic multimodal autoencoders: plain, stacked (greedy layer-wise pre-training, then fine-tuning) and sparse
(KL sparsity on the code's activations), over the same feature networks as the early-fusion VAE.

Each modality's feature network feeds a joint encoder (features concatenated with presence flags, as in
:class:`~diagnosis.fusion.concat.ConcatVAE`) that outputs a code ``(B, latent_dim)``; the decoders reconstruct every
present modality from it and the diagnosis head reads it. There is no posterior to sample, so:

- the code is returned as a Gaussian with a negligible variance (:data:`CODE_LOGVAR`): posterior draws at diagnosis
  all equal the code, and the stored uncertainty is the entropy of the calibrated prediction itself, with no part
  from the latent's spread;
- there is no KL term and no prior over codes, so class-conditional generation (``diagnosis augment``) is refused
  (:attr:`generative` is False): decoding a Gaussian fitted to a class's codes would leave the manifold the decoders
  were trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from diagnosis.fusion.base import SubsetTerm, VAEOutput, _masked_mean
from diagnosis.fusion.concat import ConcatVAE
from diagnosis.fusion.config import FusionConfig
from diagnosis.fusion.gaussian import Gaussian

__all__ = ["CODE_LOGVAR", "MultimodalAE", "SparseAE", "StackedAE"]

logger = logging.getLogger(__name__)

Tensors = Mapping[str, torch.Tensor]
CODE_LOGVAR = -30.0  # log-variance reported with a deterministic code: exp(-15) ≈ 3e-7, draws equal the code


class MultimodalAE(ConcatVAE):
    """Plain multimodal autoencoder: one hidden layer from the concatenated features to the code.

    Args:
        encoders: Modality -> feature network ``x_m -> (B, feature_dim)``.
        decoders: Modality -> decoder from the code.
        config: Fusion settings (``latent_dim`` is the code size; ``beta`` and the KL warm-up are unused).
    """

    name = "ae"  # ``--fusion`` value (see :data:`~diagnosis.fusion.config.FUSIONS`)
    generative = False  # no prior over codes: no class-conditional sampling
    hidden: tuple[int, ...] = (256,)  # widths of the joint encoder's hidden layers

    def __init__(self, encoders: Mapping[str, nn.Module], decoders: Mapping[str, nn.Module], config: FusionConfig) -> None:
        super().__init__(encoders, decoders, config)
        sizes = (self.joint_width, *self.hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.code = nn.Linear(sizes[-1], config.latent_dim)
        del self.joint  # the VAE's Gaussian head is not used

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        """The code from the last layer's output (linear for the plain and stacked autoencoders)."""
        return pre

    def _encode(self, features: Mapping[str, torch.Tensor], masks: Tensors) -> Gaussian:
        h = self.joint_input(features, masks)
        for layer in self.layers:
            h = F.silu(layer(h))
        code = self.activation(self.code(h))
        return Gaussian(code, torch.full_like(code, CODE_LOGVAR))

    def code_penalty(self, code: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """A penalty (0-d) on the codes of the ``valid`` rows of a batch: zero for the plain autoencoder."""
        return code.new_zeros(())

    def forward(self, inputs: Tensors, masks: Tensors, beta: float | None = None) -> VAEOutput:
        """Reconstruction of every present modality from the code of each subset term (joint, then each modality
        alone), plus the code penalty; ``beta`` is ignored (no KL term)."""
        terms: list[SubsetTerm] = []
        metrics: dict[str, torch.Tensor] = {}
        penalties = []
        for name, subset, q in self.subset_posteriors(inputs, masks):
            valid = self._valid(subset)
            rec = self.reconstruction_loss(inputs, masks, self.decode(q.mu))
            terms.append(SubsetTerm(name, q, valid, rec))
            penalties.append(self.code_penalty(q.mu, valid))
            metrics[f"recon_{name}"] = _masked_mean(rec.detach(), valid)
        loss = torch.stack([_masked_mean(t.elbo_loss, t.valid) for t in terms]).sum() + torch.stack(penalties).sum()
        return VAEOutput(loss=loss, metrics=metrics, terms=terms)


class SparseAE(MultimodalAE):
    """Sparse autoencoder: sigmoid code units pushed to a low mean activation by a KL sparsity penalty.

    The penalty is ``sparsity_weight * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the mean activation of unit
    ``j`` over the batch's valid rows and ``rho`` = ``config.sparsity_target``: each unit fires for few cases.
    """

    name = "sparse_ae"

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(pre)

    def code_penalty(self, code: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        rho = self.config.sparsity_target
        weights = valid.to(code.dtype).unsqueeze(-1)
        rho_hat = ((code * weights).sum(0) / weights.sum().clamp(min=1.0)).clamp(1e-6, 1 - 1e-6)  # (D,)
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return self.config.sparsity_weight * kl.sum()


class StackedAE(MultimodalAE):
    """Stacked autoencoder: a deeper joint encoder whose layers are first pre-trained greedily, one at a time, each as
    a one-layer autoencoder of the previous layer's output; then the whole model is fine-tuned by the usual objective.
    """

    name = "stacked_ae"
    hidden = (256, 128)

    def pretrain(self, batches: Callable[[], Iterable[tuple[Tensors, Tensors]]], epochs: int, lr: float = 1e-3,
                 on_layer: Callable[[dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Greedy layer-wise pre-training of the joint encoder (hidden layers, then the code layer).

        The feature networks are run once per batch without gradients; layer ``k`` learns to reconstruct its input
        (the output of layers ``1..k-1``, fixed by then) through a linear decoder that is dropped afterwards.

        Args:
            batches: Called once per epoch; yields ``(inputs, masks)`` training batches on the model's device.
            epochs: Passes per layer (0: no stage, nothing is built).
            lr: Adam learning rate of each layer's autoencoder.
            on_layer: Called with each layer's figures (``layer``, ``epoch``, ``loss``).

        Returns:
            One record per layer and epoch: its mean reconstruction error (MSE of its input).
        """
        history: list[dict[str, float]] = []
        if epochs <= 0:
            return history
        stack = [*self.layers, self.code]
        for index, layer in enumerate(stack):
            decoder = nn.Linear(layer.out_features, layer.in_features).to(layer.weight.device)
            optimiser = torch.optim.Adam([*layer.parameters(), *decoder.parameters()], lr=lr)
            last = index == len(stack) - 1
            for epoch in range(1, epochs + 1):
                total, count = 0.0, 0
                for inputs, masks in batches():
                    with torch.no_grad():
                        h = self._layer_input(inputs, masks, index)
                    out = layer(h)
                    code = self.activation(out) if last else F.silu(out)
                    loss = F.mse_loss(decoder(code), h)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    total, count = total + float(loss.detach()) * len(h), count + len(h)
                record = {"layer": index + 1, "epoch": epoch, "loss": total / max(count, 1)}
                history.append(record)
                if on_layer is not None:
                    on_layer(record)
            logger.info("stacked autoencoder: layer %d of %d pre-trained", index + 1, len(stack))
        return history

    def _layer_input(self, inputs: Tensors, masks: Tensors, index: int) -> torch.Tensor:
        """The input of joint layer ``index``: the features through the layers before it."""
        h = self.joint_input(self._features(inputs, masks), masks)
        for layer in self.layers[:index]:
            h = F.silu(layer(h))
        return h
