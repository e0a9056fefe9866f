"""Calibration: temperature fitting and prior-shift correction (Bayes' rule moves calibrated probabilities to a known deployment prevalence)."""

from __future__ import annotations

import numpy as np
import pytest

from diagnosis.classify import class_prevalence, shift_prior


def test_shift_prior_matches_bayes_rule_and_keeps_the_ranking() -> None:
    p = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    source, target = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    shifted = shift_prior(p, source, target)
    odds = (p[:, 1] / p[:, 0]) * (0.25 / 0.75)  # posterior odds divided by the source's prior odds
    assert np.allclose(shifted[:, 1], odds / (1 + odds)) and np.allclose(shifted.sum(1), 1.0)
    assert (np.argsort(shifted[:, 1]) == np.argsort(p[:, 1])).all()
    assert np.allclose(shift_prior(p, source, source), p)  # no shift, no change


def test_shift_prior_refuses_bad_prevalences() -> None:
    p = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="summing to 1"):
        shift_prior(p, np.array([0.5, 0.6]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="positive source"):
        shift_prior(p, np.array([0.0, 1.0]), np.array([0.5, 0.5]))


def test_class_prevalence_ignores_unlabelled_rows() -> None:
    assert class_prevalence(np.array([0, 1, 1, -1]), 3).tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])


def test_fit_temperature_softens_overconfident_logits() -> None:
    import torch

    from diagnosis.classify import fit_temperature

    rng = np.random.default_rng(0)
    targets = torch.from_numpy(rng.integers(0, 2, 400))
    right = rng.random(400) < 0.8  # 80 % correct, but logits as if certain
    predicted = torch.where(torch.from_numpy(right), targets, 1 - targets)
    logits = torch.nn.functional.one_hot(predicted, 2).float() * 10.0
    assert fit_temperature(logits, targets) > 3.0  # log(0.8/0.2) = 1.39 needs about 10 / 1.39 = 7


def test_fit_combination_weighs_each_logit_source_by_what_it_tells_on_val() -> None:
    import torch
    import torch.nn.functional as F

    from diagnosis.classify.calibration import fit_combination

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (400,), generator=generator)
    sign = (2 * labels - 1).float()
    weak = 0.3 * sign + torch.randn(400, generator=generator)  # the head on the latent: a little signal
    strong = 2.0 * sign + torch.randn(400, generator=generator)  # the image stage: much more
    noise = torch.randn(400, generator=generator)
    parts = torch.stack([torch.stack([-x / 2, x / 2], -1) for x in (weak, strong, noise)], 1)  # (N, 3, C=2)
    initial = torch.tensor([1.0, 0.0, 0.0])
    weights = fit_combination(parts, labels, initial, torch.tensor([True, True, True]))
    assert float(weights[1]) > 0.5 > abs(float(weights[2])) and float(weights[1]) > float(weights[0])
    nll = lambda w: float(F.cross_entropy((parts * w[None, :, None]).sum(1), labels))  # noqa: E731
    assert nll(weights) < nll(initial) - 0.1
    held = fit_combination(parts, labels, initial, torch.tensor([True, False, False]))
    assert held[1:].tolist() == [0.0, 0.0]  # a source that is not free stays where it started
