"""Bulk prediction writes on SQLite and PostgreSQL: idempotent, last one wins, exactly what the ORM reads back."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import CaseIn, PredictionIn, get_case, mark_cases_failed, register_model_version, save_predictions, upsert_cases
from db._sql import COPY_MIN_ROWS, IN_CHUNK, VALUES_PAGE
from db.models import Case, Prediction

MakeCase = Callable[..., CaseIn]
LABELS = ("normal", "pneumonia", "covid")
N = VALUES_PAGE + IN_CHUNK + 7  # more than one multi-row page and more than one IN list


def _cases(session: Session, make_case: MakeCase, n: int) -> list[int]:
    upsert_cases(session, [make_case(f"b{i:05d}", image=None) for i in range(n)])
    return list(session.execute(select(Case.id).order_by(Case.id)).scalars())


def _model(session: Session) -> int:
    return register_model_version(session, name="bulk", fusion="poe", config={}, label_names=list(LABELS), metrics={},
                                  checkpoint_path="/ckpt/bulk")  # fmt: skip


def _predictions(ids: list[int], model: int, seed: int) -> list[PredictionIn]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(LABELS)), size=len(ids)).astype(np.float32)
    latents = rng.normal(size=(len(ids), 8)).astype(np.float32)
    out = []
    for i, case_id in enumerate(ids):
        label = LABELS[int(probs[i].argmax())]
        out.append(PredictionIn(case_id, model, label, {n: float(p) for n, p in zip(LABELS, probs[i], strict=True)},
                                latents[i] if i % 2 else [float(v) for v in latents[i]],  # numpy arrays or lists
                                ["image", "text"] if i % 3 else ["text"], uncertainty=None if i % 5 == 0 else float(i) / N,
                                prediction_set=None if i % 4 == 0 else [label]))  # fmt: skip
    return out


def _stored(session: Session) -> dict[int, Prediction]:
    session.expire_all()
    return {p.case_id: p for p in session.execute(select(Prediction)).scalars()}


def _assert_matches(stored: dict[int, Prediction], expected: list[PredictionIn]) -> None:
    assert len(stored) == len(expected)
    for p in expected:
        row = stored[p.case_id]
        assert row.label == p.label and row.modalities == list(p.modalities)
        assert row.probabilities == p.probabilities  # exact: JSON keeps every digit of a float
        assert row.latent == [float(v) for v in p.latent]
        assert row.uncertainty == p.uncertainty
        assert row.prediction_set == (None if p.prediction_set is None else list(p.prediction_set))
        assert row.created_at.tzinfo is not None


def test_bulk_write_twice_is_idempotent_and_the_newest_wins(session: Session, make_case: MakeCase) -> None:
    ids = _cases(session, make_case, N)
    model = _model(session)
    first = _predictions(ids, model, seed=0)
    assert save_predictions(session, first) == N
    _assert_matches(_stored(session), first)
    assert save_predictions(session, first) == N  # the same batch again: nothing added
    assert session.execute(select(func.count()).select_from(Prediction)).scalar_one() == N
    newer = _predictions(ids, model, seed=1)
    assert save_predictions(session, newer) == N
    _assert_matches(_stored(session), newer)
    assert set(session.execute(select(Case.status)).scalars()) == {"diagnosed"}


def test_last_prediction_of_a_case_in_one_call_wins(session: Session, make_case: MakeCase) -> None:
    ids = _cases(session, make_case, 3)
    model = _model(session)
    older, newer = _predictions(ids, model, seed=2), _predictions(ids, model, seed=3)
    assert save_predictions(session, [*older, *newer]) == 3
    _assert_matches(_stored(session), newer)


def test_bulk_write_refuses_non_finite_values(session: Session, make_case: MakeCase) -> None:
    ids = _cases(session, make_case, 2)
    model = _model(session)
    good = _predictions(ids, model, seed=4)
    bad_latent = PredictionIn(ids[1], model, "normal", {"normal": 1.0}, np.array([0.0, np.nan], np.float32), ["image"])
    bad_probability = PredictionIn(ids[1], model, "normal", {"normal": math.inf}, [0.0], ["image"])
    for bad in (bad_latent, bad_probability):
        with pytest.raises(ValueError, match=f"case {ids[1]} has non-finite"):
            save_predictions(session, [good[0], bad])
    huge = PredictionIn(ids[0], model, "normal", {"normal": 1.0}, [1e308, 1e308], ["text"])  # finite, the sum is not
    assert save_predictions(session, [huge]) == 1
    assert _stored(session)[ids[0]].latent == [1e308, 1e308]


def test_bulk_writes_read_back_through_the_queries(session: Session, make_case: MakeCase) -> None:
    ids = _cases(session, make_case, 4)
    model = _model(session)
    predictions = _predictions(ids, model, seed=5)
    save_predictions(session, predictions)
    mark_cases_failed(session, [(ids[3], "image unusable at diagnosis time")])
    detail = get_case(session, "b00001")
    assert detail is not None and detail.summary.status == "diagnosed"
    view = detail.predictions[0]
    assert view.label == predictions[1].label and view.probabilities == predictions[1].probabilities
    assert get_case(session, "b00003").summary.status == "failed"  # type: ignore[union-attr]


def test_bulk_writes_keep_hostile_text_exactly(session: Session, make_case: MakeCase) -> None:
    ids = _cases(session, make_case, COPY_MIN_ROWS + 6)  # a batch that PostgreSQL streams with COPY
    model = _model(session)
    odd = 'a,"b"\n\\c\tä \u2028 ;--'
    predictions = [PredictionIn(case_id, model, odd if i % 2 else "", {odd: 0.25, "": 0.75}, [1e-300, -0.0, 3.5],
                                [odd], uncertainty=0.0 if i % 3 else None, prediction_set=[] if i % 2 else [odd, ""])
                   for i, case_id in enumerate(ids)]  # fmt: skip
    assert save_predictions(session, predictions) == len(ids)
    _assert_matches(_stored(session), predictions)
