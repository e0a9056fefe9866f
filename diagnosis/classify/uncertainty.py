"""Uncertainty and coverage: predictive entropy from latent samples, split-conformal prediction sets."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["conformal_threshold", "predictive_entropy", "prediction_sets"]


def predictive_entropy(probability_samples: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the mean predictive distribution (what ``predict`` stores as a case's uncertainty).

    Args:
        probability_samples: ``(S, N, C)`` class probabilities from S latent samples.

    Returns:
        ``(N,)`` entropies; 0 = certain, ``log(C)`` = uniform.

    Examples:
        >>> round(float(predictive_entropy(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))[0]), 4)  # draws disagree
        0.6931
    """
    mean = probability_samples.mean(0)
    return -(mean * torch.log(mean.clamp(1e-12, 1.0))).sum(-1)


def conformal_threshold(probabilities: np.ndarray, labels: np.ndarray, coverage: float) -> float:
    """Split-conformal threshold on the score ``1 - p(true class)`` (LAC), from a calibration split.

    Args:
        probabilities: ``(N, C)`` calibrated probabilities on held-out cases.
        labels: ``(N,)`` true class ids.
        coverage: Target marginal coverage, e.g. 0.9.

    Returns:
        ``q``: include class ``c`` in a case's set when ``1 - p_c <= q``. 1.0 (every class) when N is too small.
    """
    n = len(labels)
    level = math.ceil((n + 1) * coverage) / max(n, 1)
    if n == 0 or level > 1.0:
        return 1.0
    scores = 1.0 - probabilities[np.arange(n), labels]
    return float(np.quantile(scores, level, method="higher"))


def prediction_sets(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """``(N, C)`` bool membership of each class in each case's conformal set (never empty: the top class is in)."""
    member = (1.0 - probabilities) <= threshold + 1e-12
    member[np.arange(len(probabilities)), probabilities.argmax(1)] = True
    return member
