"""Writes and work queues: ingestion idempotency, predictions, failures, model versions, flow runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import (
    CaseIn,
    ImageIn,
    PredictionIn,
    finish_flow_run,
    get_case,
    iter_case_inputs,
    list_flow_runs,
    mark_cases_failed,
    register_model_version,
    save_predictions,
    start_flow_run,
    update_model_metrics,
    upsert_cases,
)
from db.models import Case, Image, Patient, Prediction, SymptomNote

MakeCase = Callable[..., CaseIn]


def _count(session: Session, model: type) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _model(session: Session, name: str = "m") -> int:
    return register_model_version(
        session, name=name, fusion="poe", config={"latent": 8}, label_names=["normal", "pneumonia"],
        metrics={"val": {"accuracy": 0.5}}, checkpoint_path=f"/ckpt/{name}",
    )  # fmt: skip


def _prediction(case_id: int, model_id: int, label: str = "pneumonia", p: float = 0.8) -> PredictionIn:
    other = "normal" if label == "pneumonia" else "pneumonia"
    return PredictionIn(
        case_id=case_id, model_version_id=model_id, label=label, probabilities={label: p, other: 1 - p},
        latent=[0.1, -0.2, 0.3], modalities=["image", "text"],
    )  # fmt: skip


def test_upsert_same_batch_twice_is_unchanged(session: Session, make_case: MakeCase) -> None:
    batch = [make_case("c1"), make_case("c2", patient_key="shared"), make_case("c3", patient_key="shared", text=None)]
    first = upsert_cases(session, batch)
    assert (first.created, first.unchanged, first.replaced, first.conflicts) == (3, 0, 0, ())
    second = upsert_cases(session, batch)
    assert (second.created, second.unchanged, second.replaced, second.conflicts) == (0, 3, 0, ())
    assert _count(session, Case) == 3
    assert _count(session, Patient) == 2  # "p-c1" and "shared", created once
    assert _count(session, Image) == 3
    assert _count(session, SymptomNote) == 2
    status = session.execute(select(Case.status).where(Case.case_key == "c1")).scalar_one()
    assert status == "ingested"


def test_upsert_conflict_is_reported_not_written(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case("c1", label="normal")])
    outcome = upsert_cases(session, [make_case("c1", label="pneumonia"), make_case("c2")])
    assert (outcome.created, outcome.unchanged, outcome.replaced) == (1, 0, 0)
    assert len(outcome.conflicts) == 1
    key, reason = outcome.conflicts[0]
    assert key == "c1"
    assert "already ingested with different content" in reason and "new case_id" in reason
    assert session.execute(select(Case.label).where(Case.case_key == "c1")).scalar_one() == "normal"


def test_upsert_duplicates_inside_one_batch(session: Session, make_case: MakeCase) -> None:
    outcome = upsert_cases(
        session, [make_case("c1", label="normal"), make_case("c1", label="normal"), make_case("c1", label="x")]
    )
    assert (outcome.created, outcome.unchanged, outcome.replaced) == (1, 1, 0)
    assert [key for key, _ in outcome.conflicts] == ["c1"]
    assert session.execute(select(Case.label).where(Case.case_key == "c1")).scalar_one() == "normal"


def test_rejected_case_is_replaced_by_corrected_row(session: Session, make_case: MakeCase) -> None:
    rejected = make_case("c1", image=None, text=None, status="rejected", error="image file missing: /data/c1.png")
    upsert_cases(session, [rejected])
    assert upsert_cases(session, [rejected]).unchanged == 1
    corrected = make_case(
        "c1", image=ImageIn(path="/data/c1.nii.gz", sha256="ab" * 32, format="nifti", shape=(8, 16, 16),
                            spacing=(1.0, 0.5, 0.5)),
    )  # fmt: skip
    outcome = upsert_cases(session, [corrected])
    assert (outcome.created, outcome.unchanged, outcome.replaced, outcome.conflicts) == (0, 0, 1, ())
    detail = get_case(session, "c1")
    assert detail is not None
    assert (detail.summary.status, detail.summary.error) == ("ingested", None)
    assert detail.image_format == "nifti" and detail.image_shape == (8, 16, 16)
    assert detail.image_spacing == (1.0, 0.5, 0.5)
    assert detail.text == "cough and fever (c1)"
    # Now ingested: a further change is a conflict, and re-sending the same row is unchanged.
    assert upsert_cases(session, [corrected]).unchanged == 1
    assert len(upsert_cases(session, [make_case("c1", label="other")]).conflicts) == 1
    assert _count(session, Image) == 1 and _count(session, Case) == 1


def test_rejected_case_replaced_by_new_images_rows(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case("c1", status="rejected", error="unknown label 'pnemonia'", label="pnemonia")])
    assert upsert_cases(session, [make_case("c1")]).replaced == 1
    paths = session.execute(select(Image.path)).scalars().all()
    assert paths == ["/data/c1.png"]
    assert _count(session, SymptomNote) == 1


def test_upsert_rejects_bad_status(session: Session, make_case: MakeCase) -> None:
    with pytest.raises(ValueError, match="ingest only with one of"):
        upsert_cases(session, [make_case("c1", status="diagnosed")])
    assert _count(session, Case) == 0


def test_large_batch_spans_chunks(session: Session, make_case: MakeCase) -> None:
    batch = [make_case(f"c{i:05d}", patient_key=f"p{i % 300}") for i in range(1200)]
    assert upsert_cases(session, batch).created == 1200
    assert upsert_cases(session, batch).unchanged == 1200
    assert _count(session, Case) == 1200 and _count(session, Patient) == 300


def test_iter_case_inputs_filters_and_batches(session: Session, make_case: MakeCase) -> None:
    upsert_cases(
        session,
        [make_case(f"t{i}", split="train") for i in range(5)]
        + [make_case("v0", split="val", label=None), make_case("v1", split="val")]
        + [make_case("r0", status="rejected", error="bad image"), make_case("s0", is_synthetic=True)],
    )
    batches = list(iter_case_inputs(session, batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 2, 1]
    keys = [c.case_key for b in batches for c in b]
    assert keys == ["t0", "t1", "t2", "t3", "t4", "v0", "v1"]
    ids = [c.id for b in batches for c in b]
    assert ids == sorted(ids)
    first = batches[0][0]
    assert (first.image_path, first.image_format, first.text) == ("/data/t0.png", "png", "cough and fever (t0)")

    assert [c.case_key for b in iter_case_inputs(session, splits=["val"]) for c in b] == ["v0", "v1"]
    assert [c.case_key for b in iter_case_inputs(session, splits=["val"], labelled_only=True) for c in b] == ["v1"]
    with_synthetic = [c.case_key for b in iter_case_inputs(session, include_synthetic=True) for c in b]
    assert "s0" in with_synthetic and "r0" not in with_synthetic

    model = _model(session)
    todo = [c for b in iter_case_inputs(session, pending_for_model=model) for c in b]
    save_predictions(session, [_prediction(c.id, model) for c in todo[:4]])
    pending = [c.case_key for b in iter_case_inputs(session, pending_for_model=model) for c in b]
    assert pending == ["t4", "v0", "v1"]
    assert list(iter_case_inputs(session, splits=["test"])) == []
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_case_inputs(session, batch_size=0))


def test_iter_case_inputs_while_writing(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case(f"c{i}") for i in range(7)])
    model = _model(session)
    seen = []
    for batch in iter_case_inputs(session, pending_for_model=model, batch_size=3):
        seen += [c.case_key for c in batch]
        save_predictions(session, [_prediction(c.id, model) for c in batch])
    assert seen == [f"c{i}" for i in range(7)]
    assert list(iter_case_inputs(session, pending_for_model=model)) == []


def test_save_predictions_twice_keeps_one_row(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case("c1"), make_case("c2")])
    ids = dict(session.execute(select(Case.case_key, Case.id)).tuples().all())
    model = _model(session)
    mark_cases_failed(session, [(ids["c1"], "image unreadable")])
    assert save_predictions(session, [_prediction(ids["c1"], model, "normal", 0.6)]) == 1
    written = save_predictions(
        session, [_prediction(ids["c1"], model, "pneumonia", 0.9), _prediction(ids["c2"], model)]
    )
    assert written == 2
    assert _count(session, Prediction) == 2
    row = session.execute(select(Prediction).where(Prediction.case_id == ids["c1"])).scalar_one()
    session.refresh(row)
    assert row.label == "pneumonia" and row.probabilities["pneumonia"] == pytest.approx(0.9)
    assert row.modalities == ["image", "text"] and row.latent == pytest.approx([0.1, -0.2, 0.3])
    statuses = dict(session.execute(select(Case.case_key, Case.status)).tuples().all())
    assert statuses == {"c1": "diagnosed", "c2": "diagnosed"}
    assert session.execute(select(Case.error).where(Case.id == ids["c1"])).scalar_one() is None


def test_predictions_store_uncertainty_and_conformal_set(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case("c1"), make_case("c2")])
    ids = dict(session.execute(select(Case.case_key, Case.id)).tuples().all())
    model = _model(session)
    rich = PredictionIn(ids["c1"], model, "pneumonia", {"pneumonia": 0.7, "normal": 0.3}, [0.0], ["image"],
                        uncertainty=0.61, prediction_set=["pneumonia", "normal"])
    save_predictions(session, [rich, _prediction(ids["c2"], model)])
    rows = {p.case_id: p for p in session.execute(select(Prediction)).scalars()}
    assert rows[ids["c1"]].uncertainty == pytest.approx(0.61)
    assert rows[ids["c1"]].prediction_set == ["pneumonia", "normal"]
    assert rows[ids["c2"]].uncertainty is None and rows[ids["c2"]].prediction_set is None
    with pytest.raises(ValueError, match="non-finite"):
        save_predictions(session, [PredictionIn(ids["c1"], model, "normal", {"normal": 1.0}, [0.0], ["text"], uncertainty=float("inf"))])


def test_save_predictions_rejects_nan(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case("c1")])
    case_id = session.execute(select(Case.id)).scalar_one()
    model = _model(session)
    bad = PredictionIn(case_id, model, "normal", {"normal": float("nan")}, [0.0], ["image"])
    with pytest.raises(ValueError, match="non-finite"):
        save_predictions(session, [bad])


def test_mark_cases_failed(session: Session, make_case: MakeCase) -> None:
    upsert_cases(session, [make_case("c1"), make_case("c2"), make_case("c3")])
    ids = dict(session.execute(select(Case.case_key, Case.id)).tuples().all())
    mark_cases_failed(session, [(ids["c1"], "DICOM has no pixel data"), (ids["c3"], "text is empty")])
    mark_cases_failed(session, [])
    rows = dict(session.execute(select(Case.case_key, Case.status)).tuples().all())
    assert rows == {"c1": "failed", "c2": "ingested", "c3": "failed"}
    error = session.execute(select(Case.error).where(Case.case_key == "c1")).scalar_one()
    assert error == "DICOM has no pixel data"
    # failed cases are retried by the work queue
    assert [c.case_key for b in iter_case_inputs(session) for c in b] == ["c1", "c2", "c3"]


def test_model_versions_register_and_update(session: Session) -> None:
    first, second = _model(session, "a"), _model(session, "b")
    assert second > first
    update_model_metrics(session, first, {"test": {"accuracy": 0.7}})
    from db import get_model_version

    assert get_model_version(session, first).metrics == {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.7}}
    with pytest.raises(LookupError, match="not found"):
        update_model_metrics(session, 999, {})
    with pytest.raises(ValueError, match="label names"):
        register_model_version(
            session, name="x", fusion="poe", config={}, label_names=[], metrics={}, checkpoint_path="/x"
        )


def test_flow_runs(session: Session) -> None:
    model = _model(session)
    run = start_flow_run(session, flow_name="ingest", prefect_run_id="abc-123")
    other = start_flow_run(session, flow_name="train", prefect_run_id=None)
    running = {r.id: r for r in list_flow_runs(session)}
    assert running[run].status == "running" and running[run].ended_at is None and running[run].counts == {}
    finish_flow_run(session, run, status="completed", counts={"created": 3, "conflicts": 1})
    finish_flow_run(session, other, status="failed", counts={}, model_version_id=model, error="CUDA out of memory")
    views = list_flow_runs(session)
    assert [v.id for v in views] == [other, run]  # newest first
    done = views[1]
    assert (done.flow_name, done.prefect_run_id, done.status) == ("ingest", "abc-123", "completed")
    assert done.counts == {"created": 3, "conflicts": 1}
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert done.started_at.tzinfo is not None
    assert (views[0].status, views[0].model_version_id, views[0].error) == ("failed", model, "CUDA out of memory")
    assert len(list_flow_runs(session, limit=1)) == 1
    with pytest.raises(ValueError, match="completed"):
        finish_flow_run(session, run, status="done", counts={})
    with pytest.raises(LookupError, match="start_flow_run"):
        finish_flow_run(session, 999, status="completed", counts={})


def test_runs_of_dead_processes_are_marked_failed(session: Session) -> None:
    from db import fail_dead_runs

    dead = start_flow_run(session, flow_name="diagnose", prefect_run_id=None, hostname="here", pid=111)
    alive = start_flow_run(session, flow_name="diagnose", prefect_run_id=None, hostname="here", pid=222)
    elsewhere = start_flow_run(session, flow_name="diagnose", prefect_run_id=None, hostname="there", pid=111)
    assert fail_dead_runs(session, "here", lambda pid: pid == 222) == [dead]
    runs = {r.id: r for r in list_flow_runs(session)}
    assert runs[dead].status == "failed" and "killed or crashed" in (runs[dead].error or "")
    assert runs[alive].status == "running" and runs[elsewhere].status == "running"
