"""End to end: the demo flow on ~100 generated cases, then idempotent re-runs, all checked in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import db
from db.models import Case, FlowRun, Prediction

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def demo_report(home: Path, db_url: str) -> dict:
    from flows.demo import demo_flow

    return demo_flow(db_url, str(home), cases=100, dims=2, epochs=6, seed=3)


def test_demo_predicts_every_eligible_case(demo_report: dict, db_url: str) -> None:
    assert demo_report["split"] == "test" and demo_report["n"] > 0
    assert 0.0 <= demo_report["accuracy"] <= 1.0 and demo_report["macro_auc"] > 0.5
    with db.session_scope(db_url) as session:
        counts = db.status_counts(session)
        version = db.latest_model_version(session)
        assert version is not None and set(version.metrics) == {"val", "test"}
        cases = db.list_cases(session, limit=None)
        n_predictions = session.scalar(select(func.count()).select_from(Prediction))
        runs = {r.flow_name: r for r in db.list_flow_runs(session)}
    assert counts.get("ingested", 0) == 0 and counts.get("diagnosed", 0) + counts.get("rejected", 0) + counts.get("failed", 0) == 100
    diagnosed = [c for c in cases if c.status == "diagnosed"]
    assert len(diagnosed) >= 95 and n_predictions == len(diagnosed)
    assert all(c.predicted_by == version.id and c.predictions_per_model == {version.id: 1} for c in diagnosed)
    assert {"ingest", "train", "diagnose", "evaluate"} <= set(runs)
    assert all(r.status == "completed" and r.prefect_run_id for r in runs.values())
    assert runs["ingest"].counts["rows"] == 100 and runs["diagnose"].model_version_id == version.id


def test_text_only_and_image_only_cases_record_their_modalities(demo_report: dict, db_url: str) -> None:
    with db.session_scope(db_url) as session:
        cases = db.list_cases(session, status="diagnosed", limit=None)
        details = [db.get_case(session, c.case_key) for c in cases]
    used = {tuple(d.predictions[0].modalities) for d in details if d is not None}
    assert ("image", "text") in used and ("text",) in used and ("image",) in used


def test_rerunning_ingest_and_diagnose_adds_nothing(demo_report: dict, home: Path, db_url: str) -> None:
    from flows.diagnose import diagnose_flow
    from flows.ingest import ingest_flow

    manifest = next((home / "demo-data").glob("*/manifest.csv"))
    with db.session_scope(db_url) as session:
        before = (session.scalar(select(func.count()).select_from(Case)), session.scalar(select(func.count()).select_from(Prediction)))
    counts = ingest_flow(str(manifest), db_url, home=str(home))
    assert counts["created"] == 0 and counts["unchanged"] == 100
    assert diagnose_flow(db_url, str(home))["predicted"] == 0
    repeat = diagnose_flow(db_url, str(home), pending=False)
    assert repeat["predicted"] == before[1]  # --all re-predicts in place
    with db.session_scope(db_url) as session:
        after = (session.scalar(select(func.count()).select_from(Case)), session.scalar(select(func.count()).select_from(Prediction)))
        failed_runs = session.scalar(select(func.count()).select_from(FlowRun).where(FlowRun.status != "completed"))
    assert after == before and failed_runs == 0
