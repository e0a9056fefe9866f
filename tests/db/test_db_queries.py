"""Read queries against seeded data."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from db import (
    CaseIn,
    PredictionIn,
    count_cases,
    get_case,
    get_engine,
    get_model_version,
    label_counts,
    latest_model_version,
    list_cases,
    list_model_versions,
    mark_cases_failed,
    predicted_label_counts,
    predictions_for_evaluation,
    register_model_version,
    save_predictions,
    status_counts,
    upsert_cases,
)
from db.models import Case

MakeCase = Callable[..., CaseIn]


def _register(session: Session, name: str) -> int:
    return register_model_version(
        session, name=name, fusion="mopoe", config={"latent_dim": 16}, label_names=["normal", "pneumonia"],
        metrics={"val": {"macro_f1": 0.8}}, checkpoint_path=f"/ckpt/{name}.safetensors",
    )  # fmt: skip


def _pred(case_id: int, model: int, label: str, p: float, modalities: tuple[str, ...] = ("image", "text")) -> Any:
    other = "normal" if label == "pneumonia" else "pneumonia"
    return PredictionIn(case_id, model, label, {label: p, other: round(1 - p, 6)}, [0.0, 1.0], modalities)


@pytest.fixture
def seeded(session: Session, make_case: MakeCase) -> Iterator[dict[str, int]]:
    """Six cases, two model versions and their predictions; yields ids by name."""
    upsert_cases(
        session,
        [
            make_case("A-001", patient_key="P1"),
            make_case("A-002", patient_key="P1", label="normal", text=None),
            make_case("A-003", patient_key=None, label="normal", split="val", image=None),
            make_case("A-004", label=None, split="test"),
            make_case("A-005", split="val"),
            make_case("R-001", label="pnemonia", status="rejected", error="unknown label 'pnemonia'"),
            make_case("S-001", is_synthetic=True),
        ],
    )
    ids = dict(session.execute(select(Case.case_key, Case.id)).tuples().all())
    m1, m2 = _register(session, "first"), _register(session, "second")
    save_predictions(
        session,
        [
            _pred(ids["A-001"], m1, "pneumonia", 0.7),
            _pred(ids["A-002"], m1, "pneumonia", 0.6, ("image",)),
            _pred(ids["A-003"], m1, "normal", 0.9, ("text",)),
            _pred(ids["A-001"], m2, "normal", 0.55),
            _pred(ids["S-001"], m2, "pneumonia", 0.8),
        ],
    )
    mark_cases_failed(session, [(ids["A-004"], "image is all zeros; re-export the scan")])
    yield {**ids, "m1": m1, "m2": m2}


def _keys(rows: list[Any]) -> list[str]:
    return [r.case_key for r in rows]


def test_list_cases_summaries(session: Session, seeded: dict[str, int]) -> None:
    rows = list_cases(session)
    assert _keys(rows) == ["A-001", "A-002", "A-003", "A-004", "A-005", "R-001", "S-001"]
    a1, a2, a3, a4 = rows[:4]
    m1, m2 = seeded["m1"], seeded["m2"]
    assert (a1.patient_key, a1.status, a1.label, a1.split) == ("P1", "diagnosed", "pneumonia", "train")
    assert (a1.has_image, a1.has_text, a1.is_synthetic) == (True, True, False)
    assert (a1.predicted_label, a1.predicted_by) == ("normal", m2)  # the newest model wins
    assert a1.predicted_probability == pytest.approx(0.55)
    assert a1.predictions_per_model == {m1: 1, m2: 1}
    assert (a2.has_text, a2.predicted_label, a2.predicted_by) == (False, "pneumonia", m1)
    assert a2.predictions_per_model == {m1: 1}
    assert (a3.has_image, a3.patient_key, a3.predicted_probability) == (False, None, pytest.approx(0.9))
    assert (a4.status, a4.error, a4.predicted_label, a4.predicted_probability) == (
        "failed", "image is all zeros; re-export the scan", None, None,
    )  # fmt: skip
    assert a4.predicted_by is None and a4.predictions_per_model == {}
    assert a1.updated_at.tzinfo is not None
    assert rows[-1].is_synthetic is True
    with pytest.raises(FrozenInstanceError):
        a1.status = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "diagnosed"}, ["A-001", "A-002", "A-003", "S-001"]),
        ({"status": "rejected"}, ["R-001"]),
        ({"split": "val"}, ["A-003", "A-005"]),
        ({"label": "normal"}, ["A-002", "A-003"]),
        ({"predicted_label": "pneumonia"}, ["A-002", "S-001"]),
        ({"predicted_label": "normal", "split": "train"}, ["A-001"]),
        ({"search": "a-00"}, ["A-001", "A-002", "A-003", "A-004", "A-005"]),
        ({"search": "%"}, []),
        ({"search": "_"}, []),
        ({"status": "ingested", "split": "val"}, ["A-005"]),
    ],
)
def test_list_and_count_filters(
    session: Session, seeded: dict[str, int], filters: dict[str, str], expected: list[str]
) -> None:
    assert _keys(list_cases(session, **filters)) == expected
    assert count_cases(session, **filters) == len(expected)


def test_list_cases_pagination(session: Session, seeded: dict[str, int]) -> None:
    assert _keys(list_cases(session, limit=2, offset=1)) == ["A-002", "A-003"]
    assert _keys(list_cases(session, limit=3, offset=6)) == ["S-001"]
    assert len(list_cases(session, limit=None)) == count_cases(session) == 7


def test_list_cases_uses_two_queries(session: Session, seeded: dict[str, int], db_url: str) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = get_engine(db_url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert len(list_cases(session, limit=None)) == 7
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 2


def test_counts(session: Session, seeded: dict[str, int]) -> None:
    assert status_counts(session) == {"ingested": 1, "rejected": 1, "diagnosed": 4, "failed": 1}
    assert label_counts(session) == {"pneumonia": 2, "normal": 2, "unlabelled": 1, "pnemonia": 1}
    assert predicted_label_counts(session, seeded["m1"]) == {"pneumonia": 2, "normal": 1}
    assert predicted_label_counts(session, seeded["m2"]) == {"normal": 1, "pneumonia": 1}
    assert predicted_label_counts(session, 999) == {}


def test_get_case(session: Session, seeded: dict[str, int]) -> None:
    detail = get_case(session, "A-001")
    assert detail is not None
    assert detail.summary.case_key == "A-001" and detail.summary.predicted_by == seeded["m2"]
    assert (detail.image_path, detail.image_format, detail.image_shape) == ("/data/A-001.png", "png", (64, 64))
    assert detail.image_spacing is None and detail.text == "cough and fever (A-001)"
    assert [p.model_version_id for p in detail.predictions] == [seeded["m2"], seeded["m1"]]
    newest = detail.predictions[0]
    assert newest.label == "normal" and newest.probabilities["normal"] == pytest.approx(0.55)
    assert newest.modalities == ("image", "text") and newest.created_at.tzinfo is not None
    text_only = get_case(session, "A-003")
    assert text_only is not None
    assert (text_only.image_path, text_only.image_shape, text_only.predictions[0].modalities) == (None, None, ("text",))
    assert get_case(session, "missing") is None


def test_model_versions(session: Session, seeded: dict[str, int]) -> None:
    m1, m2 = seeded["m1"], seeded["m2"]
    latest = latest_model_version(session)
    assert latest is not None and latest.id == m2 and latest.name == "second"
    assert latest.label_names == ("normal", "pneumonia") and latest.config == {"latent_dim": 16}
    assert latest.metrics == {"val": {"macro_f1": 0.8}} and latest.checkpoint_path == "/ckpt/second.safetensors"
    assert latest.fusion == "mopoe" and latest.created_at.tzinfo is not None
    assert [v.id for v in list_model_versions(session)] == [m2, m1]
    assert get_model_version(session, "latest").id == m2
    assert get_model_version(session, m1).name == "first"
    assert get_model_version(session, str(m1)).id == m1
    with pytest.raises(LookupError, match=rf"model version 999 not found; known: {m1}, {m2}$"):
        get_model_version(session, 999)
    with pytest.raises(LookupError, match="neither 'latest' nor a numeric id"):
        get_model_version(session, "newest")


def test_model_version_errors_on_empty_store(session: Session) -> None:
    assert latest_model_version(session) is None
    assert list_model_versions(session) == []
    with pytest.raises(LookupError, match=r"^no model trained yet: run `diagnosis train`$"):
        get_model_version(session, "latest")
    with pytest.raises(LookupError, match="model version 7 not found; no model trained yet"):
        get_model_version(session, 7)


def test_predictions_for_evaluation(session: Session, seeded: dict[str, int]) -> None:
    rows = predictions_for_evaluation(session, seeded["m1"], None)
    assert [(r.case_key, r.label) for r in rows] == [("A-001", "pneumonia"), ("A-002", "normal"), ("A-003", "normal")]
    assert rows[0].probabilities == {"pneumonia": pytest.approx(0.7), "normal": pytest.approx(0.3)}
    assert _keys(predictions_for_evaluation(session, seeded["m1"], "val")) == ["A-003"]
    assert _keys(predictions_for_evaluation(session, seeded["m2"], None)) == ["A-001"]  # synthetic S-001 excluded
    assert predictions_for_evaluation(session, seeded["m2"], "test") == []


@pytest.mark.slow
def test_list_cases_fast_with_100k_cases(request: pytest.FixtureRequest, session: Session, make_case: MakeCase) -> None:
    """Pages stay fast on a big store (opt-in: ``-m slow``; seeding takes about a minute)."""
    n = 100_000
    upsert_cases(session, [make_case(f"K{i:06d}", label=("a", "b")[i % 2], split="train") for i in range(n)])
    model = _register(session, "big")
    ids = session.execute(select(Case.id).where(Case.id % 2 == 0)).scalars().all()
    save_predictions(session, [_pred(i, model, "normal", 0.6) for i in ids])
    session.commit()
    for filters in ({}, {"status": "diagnosed"}, {"label": "b"}, {"search": "K0999"}, {"predicted_label": "normal"}):
        start = time.perf_counter()
        page = list_cases(session, limit=100, **filters)
        elapsed = time.perf_counter() - start
        assert len(page) == 100 and elapsed < 1.0, (filters, elapsed)
    start = time.perf_counter()
    assert count_cases(session, predicted_label="normal") == n // 2
    assert time.perf_counter() - start < 3.0
