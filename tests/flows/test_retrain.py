"""Promotion of retrained candidates: only a strictly better one replaces the current model (no Prefect needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import db
from flows.retrain import METRIC, ValScores, decide, promote_if_better
from flows.train import CANDIDATE_REASON, TRAINED_REASON


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = db.default_sqlite_url(tmp_path)
    db.migrate(url)
    yield url
    db.get_engine(url).dispose()


def _version(url: str, name: str, promote: bool) -> int:
    with db.session_scope(url) as session:
        version = db.register_model_version(session, name=name, fusion="poe", config={}, label_names=["a", "b"],
                                            metrics={}, checkpoint_path=f"/ckpt/{name}")
        db.record_promotion(session, candidate_id=version, promoted=promote,
                            reason=TRAINED_REASON if promote else CANDIDATE_REASON)
    return version


def _latest(url: str) -> int:
    with db.session_scope(url) as session:
        return db.get_model_version(session, "latest").id


@pytest.mark.parametrize(("candidate", "incumbent", "n", "promoted"), [
    (0.9, None, 0, True),  # no current model: the first candidate is promoted
    (0.9, 0.8, 12, True),
    (0.8, 0.8, 12, False),  # a tie keeps the current model
    (0.7, 0.8, 12, False),
    (math.nan, 0.8, 12, False),  # a score that cannot be computed never wins
    (0.7, math.nan, 12, True),
    (0.9, 0.8, 0, False),  # nothing to compare on
])
def test_decide(candidate: float, incumbent: float | None, n: int, promoted: bool) -> None:
    decided, reason = decide(candidate, incumbent, n)
    assert decided is promoted and reason


def test_a_worse_candidate_is_stored_but_not_served_and_a_better_one_is(store: str) -> None:
    current = _version(store, "current", promote=True)
    worse = _version(store, "worse", promote=False)
    assert _latest(store) == current  # a candidate awaiting its comparison is never `latest`
    promoted, reason = promote_if_better(store, worse, current, 0.71, 0.83, n=40)
    assert not promoted and "keeping the current model" in reason
    assert _latest(store) == current
    better = _version(store, "better", promote=False)
    assert promote_if_better(store, better, current, 0.91, 0.83, n=40)[0]
    assert _latest(store) == better
    with db.session_scope(store) as session:
        decisions = [p for p in db.list_promotions(session) if p.metric == METRIC]
        versions = {v.id: v.promoted for v in db.list_model_versions(session)}
    assert [(p.candidate_id, p.incumbent_id, p.candidate_score, p.incumbent_score, p.promoted) for p in decisions] == [
        (better, current, 0.91, 0.83, True), (worse, current, 0.71, 0.83, False)]
    assert versions == {current: True, worse: False, better: True}


def test_val_scores_compare_on_the_given_cases_only() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    scores = ValScores(labels=["a", "b", "b", None], probabilities=probabilities,
                       usable=np.array([True, True, True, False]), label_names=("a", "b"))
    assert scores.macro_auc(np.array([True, True, False, False])) == 1.0
    assert scores.macro_auc(np.array([True, True, True, False])) == 1.0
    assert math.isnan(scores.macro_auc(np.array([False, True, True, False])))  # one class only
