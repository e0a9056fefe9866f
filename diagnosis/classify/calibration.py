"""Calibration: the softmax temperature fitted on validation, and prior-shift correction.

Temperature scaling divides the logits by one scalar that minimises the validation negative log-likelihood.
Stacking (:func:`fit_combination`) generalises it to several logit sources, one weight each.
Prior-shift correction: probabilities calibrated at one class prevalence, re-weighted for another. A model calibrated on validation data reports probabilities at the validation prevalence. Where a user knows the
deployment prevalence (a clinic with more normal cases than the training hospital, say), Bayes' rule moves each
probability there without retraining: ``p'(c | x) ∝ p(c | x) · π'(c) / π(c)`` (Saerens et al. 2002). The map is
monotone in each class's odds, so a decision threshold moves with it and the decisions stay those chosen on val.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["class_prevalence", "fit_combination", "fit_temperature", "shift_prior"]


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The softmax temperature in [e^-2.5, e^2.5] minimising the NLL of ``(N, C)`` logits (log-scale grid of 201)."""
    grid = torch.exp(torch.linspace(-2.5, 2.5, 201, device=logits.device))
    nll = torch.stack([F.cross_entropy(logits / t, targets) for t in grid])
    return float(grid[int(nll.argmin())])


def fit_combination(parts: torch.Tensor, targets: torch.Tensor, initial: torch.Tensor, free: torch.Tensor,
                    penalty: float = 0.01, steps: int = 100) -> torch.Tensor:
    """Weights ``(K,)`` of ``K`` logit sources ``(N, K, C)`` whose weighted sum minimises the NLL of ``targets``.

    Stacking on validation rows: the sum ``sum_k w_k parts[:, k]`` is the calibrated logit. Only the ``free`` weights
    move from ``initial``, under an L2 penalty towards it (validation sets are small and often separable: without it
    the weights grow without bound).

    Examples:
        >>> parts = torch.tensor([[[0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])  # (N=2, K=2, C=2)
        >>> w = fit_combination(parts, torch.tensor([1, 0]), torch.tensor([1.0, 0.0]), torch.tensor([True, False]))
        >>> bool(w[0] > 1.0), float(w[1])
        (True, 0.0)
    """
    parts, initial = parts.detach().float(), initial.detach().float().to(parts.device)
    free = free.to(parts.device)
    delta = torch.zeros_like(initial, requires_grad=True)
    optimiser = torch.optim.LBFGS([delta], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        weights = initial + delta * free
        loss = F.cross_entropy((parts * weights[None, :, None]).sum(1), targets) + penalty * (delta * free).pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    weights = (initial + delta.detach() * free).float()
    return weights if bool(torch.isfinite(weights).all()) else initial


def class_prevalence(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C,)`` share of each class among the labelled rows (``labels >= 0``)."""
    counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def shift_prior(probabilities: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Re-weight ``(N, C)`` probabilities calibrated at prevalence ``source`` for prevalence ``target``.

    Raises:
        ValueError: A prevalence is not a distribution over the ``C`` classes, or a class has source prevalence 0.

    Examples:
        >>> shift_prior(np.array([[0.5, 0.5]]), np.array([0.5, 0.5]), np.array([0.8, 0.2])).round(2)
        array([[0.8, 0.2]])
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    for name, prior in (("source", source), ("target", target)):
        if prior.shape != (probabilities.shape[1],) or (prior < 0).any() or not np.isclose(prior.sum(), 1.0):
            raise ValueError(f"{name} prevalence must be {probabilities.shape[1]} non-negative shares summing to 1")
    if (source <= 0).any():
        raise ValueError("every class needs a positive source prevalence")
    weighted = probabilities * (target / source)
    return weighted / weighted.sum(1, keepdims=True).clip(min=1e-300)
