"""Claiming chunks of diagnosis work: pending pages, row locks on PostgreSQL, rollback releases the claim."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from db import (
    CaseIn,
    PredictionIn,
    claim_chunk,
    is_transient_error,
    migrate,
    pending_case_ids,
    register_model_version,
    save_predictions,
    session_scope,
    upsert_cases,
)
from db.models import Case, Prediction

MakeCase = Callable[..., CaseIn]


def _store(url: str, make_case: MakeCase, n: int = 6) -> tuple[int, list[int]]:
    """``n`` cases (the last rejected, one synthetic extra) and a model; returns (model id, eligible ids)."""
    cases = [make_case(f"c{i}") for i in range(n - 1)]
    cases += [make_case(f"c{n - 1}", status="rejected", error="image missing"), make_case("s0", is_synthetic=True)]
    with session_scope(url) as session:
        upsert_cases(session, cases)
        model = register_model_version(session, name="m", fusion="poe", config={}, label_names=["normal", "pneumonia"],
                                       metrics={}, checkpoint_path="/ckpt/m")
        ids = list(session.execute(select(Case.id).where(Case.case_key.in_([f"c{i}" for i in range(n - 1)]))
                                   .order_by(Case.id)).scalars())
    return model, ids


def _prediction(case_id: int, model: int) -> PredictionIn:
    return PredictionIn(case_id=case_id, model_version_id=model, label="normal",
                        probabilities={"normal": 0.7, "pneumonia": 0.3}, latent=[0.0, 1.0], modalities=["text"])


def test_pending_pages_skip_rejected_synthetic_and_predicted(db_url: str, make_case: MakeCase) -> None:
    model, ids = _store(db_url, make_case)
    with session_scope(db_url) as session:
        assert pending_case_ids(session, model, limit=3) == ids[:3]
        assert pending_case_ids(session, model, after_id=ids[2], limit=3) == ids[3:]
        save_predictions(session, [_prediction(ids[0], model)])
    with session_scope(db_url) as session:
        assert pending_case_ids(session, model, limit=10) == ids[1:]
        assert pending_case_ids(session, model, limit=10, pending=False) == ids
        with pytest.raises(ValueError, match="at least 1"):
            pending_case_ids(session, model, limit=0)


def test_claim_commits_its_writes_and_skips_done_cases(db_url: str, make_case: MakeCase) -> None:
    model, ids = _store(db_url, make_case)
    with claim_chunk(db_url, model, ids[:2]) as claim:
        assert [c.id for c in claim.cases] == ids[:2] and claim.cases[0].text
        save_predictions(claim.session, [_prediction(c.id, model) for c in claim.cases])
    with claim_chunk(db_url, model, ids) as claim:
        assert [c.id for c in claim.cases] == ids[2:]  # the first two are done
    with claim_chunk(db_url, model, ids, pending=False) as claim:
        assert [c.id for c in claim.cases] == ids


def test_an_error_inside_the_claim_rolls_back_everything(db_url: str, make_case: MakeCase) -> None:
    model, ids = _store(db_url, make_case)
    with pytest.raises(RuntimeError), claim_chunk(db_url, model, ids) as claim:
        save_predictions(claim.session, [_prediction(c.id, model) for c in claim.cases])
        raise RuntimeError("worker died")
    with session_scope(db_url) as session:
        assert session.execute(select(Prediction)).first() is None
        assert pending_case_ids(session, model) == ids


@pytest.mark.postgres
def test_postgres_row_locks_keep_a_concurrent_claim_off(pg_database: Callable[[str], str], make_case: MakeCase) -> None:
    pg_url = pg_database("claims")
    migrate(pg_url)
    model, ids = _store(pg_url, make_case)
    with claim_chunk(pg_url, model, ids[:3]) as first:
        assert [c.id for c in first.cases] == ids[:3]
        with claim_chunk(pg_url, model, ids) as second:  # another worker, same ids: the locked rows are skipped
            assert [c.id for c in second.cases] == ids[3:]
        save_predictions(first.session, [_prediction(c.id, model) for c in first.cases])
    with claim_chunk(pg_url, model, ids) as third:  # committed: done, not handed out again
        assert [c.id for c in third.cases] == ids[3:]


def test_transient_errors_are_told_apart_from_bugs() -> None:
    assert is_transient_error(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert is_transient_error(ConnectionResetError())
    assert not is_transient_error(ValueError("bad value"))
    assert not is_transient_error(None)
