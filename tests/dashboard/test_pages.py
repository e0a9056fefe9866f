"""Run every dashboard page with Streamlit's AppTest against a seeded (or empty) SQLite store."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import db

Store = Any  # the seeded store from conftest.py (url, case keys, labels, reject_reason, volume_shape)
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
TIMEOUT_S = 90  # the first image shown imports MONAI, which is slow on a busy CI machine
PAGES = ("pages/overview.py", "pages/cases.py", "pages/case.py")


def open_page(page: str | None = None, **query: str) -> AppTest:
    """Run ``app.py`` (optionally with query parameters), then switch to ``page`` the way a user would."""
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params.update(query)
    at.run()
    assert not at.exception
    if page is not None:
        at.switch_page(page).run()
        assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    """Label -> value of every ``st.metric`` on the page."""
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> str:
    """All info / warning / caption / markdown / text of the page, joined (for substring checks)."""
    parts = [e.value for kind in ("info", "warning", "caption", "markdown", "text") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def table(at: AppTest, columns: set[str]):  # noqa: ANN201 - pandas DataFrame
    """The first dataframe on the page that has all of ``columns``."""
    for frame in at.dataframe:
        value = frame.value
        if columns <= set(value.columns) | {value.index.name}:
            return value
    raise AssertionError(f"no table with columns {columns}")


def case_ids(at: AppTest) -> list[str]:
    """Case ids listed in the case table."""
    return table(at, {"case", "status"})["case"].tolist()


def _values(trace_field: object) -> list[float]:
    """Decode a plotly trace array (a list, or base64 ``bdata`` as plotly >= 6 writes numpy arrays)."""
    if isinstance(trace_field, dict):
        return np.frombuffer(base64.b64decode(trace_field["bdata"]), dtype=trace_field["dtype"]).tolist()
    return [float(v) for v in trace_field]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_its_own(store: Store, page: str) -> None:
    at = AppTest.from_file(str(DASHBOARD / page), default_timeout=TIMEOUT_S)
    at.query_params["case"] = store.text_only
    at.run()
    assert not at.exception
    assert at.title[0].value in {"Overview", "Cases", "Case"}


def test_overview_shows_counts_and_model_metrics(store: Store) -> None:
    at = open_page()
    assert at.title[0].value == "Overview"
    assert metrics(at) == {"Ingested": "1", "Rejected": "1", "Diagnosed": "3", "Failed": "0"}
    counts = table(at, {"diagnosis", "true", "predicted"}).set_index("diagnosis")
    assert counts["true"].to_dict() == {"covid": 1, "normal": 2, "pneumonia": 2}
    assert counts["predicted"].to_dict() == {"covid": 1, "normal": 1, "pneumonia": 1}
    assert "poe-v2" in texts(at) and "`poe`" in texts(at)
    scores = table(at, {"split", "accuracy", "macro AUC"})
    assert scores.index.tolist() == ["val", "test"]
    assert scores.loc["test", "accuracy"] == pytest.approx(0.875)
    assert scores.loc["val", "cases"] == 12
    recall = table(at, {"diagnosis", "val", "test"})
    assert recall.loc["pneumonia", "test"] == pytest.approx(0.8)
    assert np.isnan(recall.loc["covid", "test"])
    assert table(at, {"flow", "counts"})["flow"].tolist() == ["ingest"]


def test_empty_home_shows_empty_state_everywhere(empty_home: Path) -> None:
    at = open_page()
    assert "No cases yet" in texts(at) and "diagnosis demo" in texts(at)
    assert (empty_home / "diagnosis.db").is_file(), "the dashboard creates the schema of an empty home"
    at.switch_page("pages/cases.py").run()
    assert not at.exception and "No cases yet" in texts(at)
    at.switch_page("pages/case.py").run()
    assert not at.exception and "Enter a case id" in texts(at)


def test_cases_page_lists_seeded_cases(store: Store) -> None:
    at = open_page("pages/cases.py")
    frame = table(at, {"case", "status", "reason", "diagnosis", "split", "modalities", "prediction", "probability"})
    assert frame["case"].tolist() == [store.image_2d, store.image_3d, store.text_only, store.pending, store.rejected]
    rows = frame.set_index("case")
    assert rows.loc[store.rejected, "reason"] == store.reject_reason
    assert rows.loc[store.image_2d, "prediction"] == "pneumonia"
    assert rows.loc[store.image_2d, "probability"] == pytest.approx(0.8)
    assert rows.loc[store.text_only, "modalities"] == "text"
    assert rows.loc[store.image_3d, "modalities"] == "image + text"
    assert "5 cases" in texts(at)
    assert not at.pagination, "one page of cases needs no pagination"


@pytest.mark.parametrize(
    ("widget", "choice", "expected"),
    [
        ("filter_status", "rejected", ["case-rejected"]),
        ("filter_split", "val", ["case-3d"]),
        ("filter_label", "pneumonia", ["case-2d", "case-rejected"]),
        ("filter_predicted_label", "covid", ["case-text"]),
    ],
)
def test_cases_filters_narrow_the_list(store: Store, widget: str, choice: str, expected: list[str]) -> None:
    at = open_page("pages/cases.py")
    at.selectbox(key=widget).select(choice).run()
    assert not at.exception
    assert case_ids(at) == expected


def test_cases_search_and_no_match(store: Store) -> None:
    at = open_page("pages/cases.py")
    at.text_input(key="filter_search").input("3D").run()
    assert case_ids(at) == [store.image_3d]
    at.text_input(key="filter_search").input("no-such-case").run()
    assert not at.exception and "No case matches" in texts(at)


def test_cases_pagination_pages_through_50_at_a_time(store: Store) -> None:
    extra = [db.CaseIn(f"bulk-{i:03d}", None, "normal", "train", f"note {i}", None) for i in range(60)]
    with db.session_scope(store.url) as session:
        db.upsert_cases(session, extra)
    at = open_page("pages/cases.py")
    assert len(case_ids(at)) == 50 and at.pagination[0].num_pages == 2
    at.pagination[0].select(2).run()
    assert case_ids(at) == [f"bulk-{i:03d}" for i in range(45, 60)]
    at.selectbox(key="filter_status").select("ingested").run()  # 61 ingested cases: back to page 1 of 2
    assert case_ids(at)[0] == store.pending and at.pagination[0].value == 1


def test_open_case_from_the_list(store: Store) -> None:
    at = open_page("pages/cases.py")
    at.selectbox(key="open_case").select(store.image_2d).run()
    at.button(key="open_button").click().run()
    assert not at.exception
    assert at.title[0].value == "Case" and at.query_params["case"] == store.image_2d
    assert metrics(at)["Predicted diagnosis"] == "pneumonia"


def test_case_page_2d_shows_image_text_and_probabilities(store: Store) -> None:
    at = open_page("pages/case.py", case=store.image_2d)
    assert metrics(at) == {"Status": "diagnosed", "True diagnosis": "pneumonia", "Split": "test",
                           "Predicted diagnosis": "pneumonia"}  # fmt: skip
    assert len(at.image) == 1 and at.image[0].captions[0].startswith("png · 48 × 40 px")
    assert not at.slider, "a 2D image has no slice slider"
    assert "Productive cough and fever" in texts(at)
    [chart] = at.get("plotly_chart")
    [trace] = json.loads(chart.proto.spec)["data"]
    shown = dict(zip(trace["y"], _values(trace["x"]), strict=True))
    assert shown == pytest.approx({"pneumonia": 0.8, "normal": 0.1, "covid": 0.1})
    history = table(at, {"model version", "model", "prediction", "modalities"})
    assert history["model"].tolist() == ["poe-v2", "poe-v1"]
    assert history["prediction"].tolist() == ["pneumonia", "normal"]
    assert history["modalities"].tolist() == ["image + text", "image"]


def test_case_page_3d_slice_slider_moves_through_the_volume(store: Store) -> None:
    at = open_page("pages/case.py", case=store.image_3d)
    [slider] = at.slider
    depth = store.volume_shape[-1]
    assert (slider.min, slider.max, slider.value) == (0, depth - 1, depth // 2)
    before = at.image[0].value
    assert f"slice {depth // 2 + 1} of {depth}" in at.image[0].captions[0]
    slider.set_value(2).run()
    assert not at.exception
    assert "slice 3 of 10" in at.image[0].captions[0] and "spacing 1.5 × 1.5 × 2 mm" in at.image[0].captions[0]
    assert at.image[0].value != before, "another slice is another picture"


def test_case_page_text_only_and_rejected_cases(store: Store) -> None:
    at = open_page("pages/case.py", case=store.text_only)
    assert "No image for this case" in texts(at) and not at.image
    assert metrics(at)["Predicted diagnosis"] == "covid"
    at = open_page("pages/case.py", case=store.rejected)
    assert metrics(at)["Status"] == "rejected"
    assert store.reject_reason in texts(at) and "No predictions yet" in texts(at)


def test_case_page_unknown_or_missing_case(store: Store) -> None:
    at = open_page("pages/case.py", case="nope")
    assert "No case with id `nope`" in texts(at)
    at.text_input(key="case").input(store.image_2d).run()
    assert not at.exception and "No case with id" not in texts(at)
    assert metrics(at)["True diagnosis"] == "pneumonia"


def test_unreachable_store_shows_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAGNOSIS_DATABASE_URL", "postgresql+psycopg2://user:secret@127.0.0.1:1/none")
    at = open_page()
    [error] = at.error
    assert "Cannot open the diagnosis store" in error.value and "DIAGNOSIS_DATABASE_URL" in error.value
    assert "secret" not in error.value
