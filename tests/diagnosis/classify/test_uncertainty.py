"""Uncertainty and conformal prediction sets."""

from __future__ import annotations

import numpy as np
import pytest

from diagnosis.classify.uncertainty import conformal_threshold, prediction_sets, predictive_entropy


def _calibrated(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from a Dirichlet and labels drawn from them (perfectly calibrated by construction)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c) * 0.7, size=n)
    labels = np.array([rng.choice(c, p=p) for p in probs])
    return probs, labels


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_conformal_sets_reach_their_coverage_on_fresh_cases(coverage: float) -> None:
    cal_p, cal_y = _calibrated(2000, 5, 0)  # large enough that the realised coverage sits within ±0.03
    test_p, test_y = _calibrated(4000, 5, 1)
    sets = prediction_sets(test_p, conformal_threshold(cal_p, cal_y, coverage))
    covered = sets[np.arange(len(test_y)), test_y].mean()
    assert coverage - 0.03 <= covered <= coverage + 0.05
    assert sets.any(1).all()  # never empty


def test_tiny_calibration_split_gives_every_class() -> None:
    probs, labels = _calibrated(5, 3, 0)
    assert conformal_threshold(probs, labels, 0.95) == 1.0
    assert prediction_sets(probs, 1.0).all()


def test_predictive_entropy_bounds() -> None:
    import torch

    certain = torch.tensor([[[1.0, 0.0, 0.0]]]).repeat(4, 1, 1)
    uniform = torch.full((4, 1, 3), 1 / 3)
    disagree = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    assert float(predictive_entropy(certain)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(predictive_entropy(uniform)[0]) == pytest.approx(np.log(3))
    assert float(predictive_entropy(disagree)[0]) == pytest.approx(np.log(2))  # confident samples that disagree
