"""Prior-shift correction: Bayes' rule moves calibrated probabilities to a known deployment prevalence."""

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
