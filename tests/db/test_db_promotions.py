"""Model promotions (what ``latest`` means), inbox manifest bookkeeping, and migration 0004 with its backfill."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

import db
from db import default_sqlite_url, get_engine, migrate
from db.engine import _alembic_config


def _register(session: Session, name: str) -> int:
    return db.register_model_version(session, name=name, fusion="poe", config={}, label_names=["a", "b"], metrics={},
                                     checkpoint_path=f"/ckpt/{name}")


def _alembic(url: str, action: str, revision: str) -> None:
    """Run ``alembic <action> <revision>`` with the packaged config that :func:`db.migrate` uses."""
    with get_engine(url).begin() as connection:
        getattr(command, action)(_alembic_config(connection), revision)


def test_latest_is_the_newest_promoted_or_never_compared_version(session: Session) -> None:
    first = _register(session, "first")
    db.record_promotion(session, candidate_id=first, promoted=True, reason="trained with `diagnosis train`")
    assert db.latest_model_version(session).id == first and db.current_model_id(session) == first
    candidate = _register(session, "candidate")
    db.record_promotion(session, candidate_id=candidate, promoted=False, reason="candidate awaiting comparison")
    assert db.get_model_version(session, "latest").id == first  # a pending candidate is never served
    db.record_promotion(session, candidate_id=candidate, incumbent_id=first, metric="val_macro_auc",
                        candidate_score=0.70, incumbent_score=0.80, promoted=False, reason="0.700 ≤ 0.800")
    assert db.get_model_version(session, "latest").id == first
    assert db.get_model_version(session, candidate).promoted is False
    assert [(v.id, v.promoted) for v in db.list_model_versions(session)] == [(candidate, False), (first, True)]
    better = _register(session, "better")
    db.record_promotion(session, candidate_id=better, promoted=False, reason="candidate awaiting comparison")
    db.record_promotion(session, candidate_id=better, incumbent_id=first, metric="val_macro_auc",
                        candidate_score=0.9, incumbent_score=float("nan"), promoted=True, reason="0.900 > nan")
    assert db.latest_model_version(session).id == better
    newest = db.list_promotions(session)[0]
    assert (newest.candidate_id, newest.incumbent_id, newest.metric) == (better, first, "val_macro_auc")
    assert (newest.candidate_score, newest.incumbent_score, newest.promoted) == (0.9, None, True)  # NaN stored as None
    direct = _register(session, "registered directly")  # no decision names it: eligible, as before promotions
    assert db.latest_model_version(session).id == direct
    with pytest.raises(LookupError, match="not found"):
        db.record_promotion(session, candidate_id=999, promoted=True, reason="x")


def test_latest_with_only_held_back_versions_says_so(session: Session) -> None:
    only = _register(session, "only")
    db.record_promotion(session, candidate_id=only, promoted=False, reason="candidate awaiting comparison")
    assert db.latest_model_version(session) is None
    with pytest.raises(LookupError, match=rf"no model version is current yet.*known: {only}$"):
        db.get_model_version(session, "latest")


def test_inbox_manifests_are_recorded_by_content_hash(session: Session) -> None:
    run = db.start_flow_run(session, flow_name="inbox", prefect_run_id=None)
    db.record_inbox_manifest(session, path="/in/a.csv", sha256="a" * 64, counts={}, flow_run_id=run, error="bad quoting")
    db.record_inbox_manifest(session, path="/in/b.csv", sha256="b" * 64, counts={"rows": 3}, flow_run_id=run)
    assert db.ingested_manifest_hashes(session, ["a" * 64, "b" * 64, "c" * 64]) == {"b" * 64}  # failed: retried
    db.record_inbox_manifest(session, path="/in/a2.csv", sha256="a" * 64, counts={"rows": 2}, flow_run_id=run)
    assert db.ingested_manifest_hashes(session, ["a" * 64, "b" * 64]) == {"a" * 64, "b" * 64}
    rows = {m.sha256[0]: m for m in db.list_inbox_manifests(session)}
    assert len(rows) == 2 and rows["a"].path == "/in/a2.csv" and rows["a"].error is None
    assert rows["a"].counts == {"rows": 2} and rows["b"].flow_run_id == run


def test_migration_0004_backfills_promotions_and_downgrades(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    _alembic(url, "upgrade", "0003")
    with get_engine(url).begin() as connection:
        for name in ("old-1", "old-2"):
            connection.execute(text(
                "INSERT INTO model_versions (name, created_at, fusion, config, label_names, metrics, checkpoint_path) "
                "VALUES (:n, '2026-01-01 00:00:00', 'poe', '{}', '[\"a\", \"b\"]', '{}', '/ckpt')"), {"n": name})
    migrate(url)
    with db.session_scope(url) as session:
        promotions = db.list_promotions(session)
        assert [(p.candidate_id, p.promoted, p.reason) for p in promotions] == [
            (2, True, "promoted before promotion tracking"), (1, True, "promoted before promotion tracking")]
        assert db.latest_model_version(session).name == "old-2"
        run = db.start_flow_run(session, flow_name="x", prefect_run_id=None)
    assert {"hostname", "pid"} <= {c["name"] for c in inspect(get_engine(url)).get_columns("flow_runs")}
    _alembic(url, "downgrade", "0003")
    inspector = inspect(get_engine(url))
    assert not {"model_promotions", "inbox_manifests"} & set(inspector.get_table_names())
    assert not {"hostname", "pid"} & {c["name"] for c in inspector.get_columns("flow_runs")}
    with get_engine(url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM flow_runs WHERE id = :i"), {"i": run}).scalar_one() == 1
    migrate(url)
    get_engine(url).dispose()
