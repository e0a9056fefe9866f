"""Run every dashboard page with Streamlit's AppTest, signed in, against a seeded (or empty) SQLite store."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import db
from dashboard.escape import md

Store = Any  # the seeded store from conftest.py (url, case keys, labels, reject_reason, volume_shape)
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
TIMEOUT_S = 90  # the first image shown imports MONAI, which is slow on a busy CI machine
PAGES = ("pages/overview.py", "pages/worklist.py", "pages/case.py", "pages/model.py", "pages/augmentation.py",
         "pages/runs.py")


def sign_in_as(at: AppTest, username: str = "clinician1") -> AppTest:
    """Put a signed-in user into the app's session state (as the sign-in form does)."""
    with db.session_scope(os.environ["DIAGNOSIS_DATABASE_URL"]) as session:
        user = db.get_user(session, username)
    assert user is not None
    at.session_state["user"] = user
    at.session_state["last_active"] = time.time()
    return at


def open_page(page: str | None = None, *, user: str | None = "clinician1", **query: str) -> AppTest:
    """Run ``app.py`` signed in as ``user`` (optionally with query parameters), then switch to ``page``."""
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params.update(query)
    if user is not None:
        sign_in_as(at, user)
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
    """Case ids listed in the worklist."""
    return table(at, {"case", "prediction"})["case"].tolist()


def _values(trace_field: object) -> list[float]:
    """Decode a plotly trace array (a list, or base64 ``bdata`` as plotly >= 6 writes numpy arrays)."""
    if isinstance(trace_field, dict):
        return np.frombuffer(base64.b64decode(trace_field["bdata"]), dtype=trace_field["dtype"]).tolist()
    return [float(v) for v in trace_field]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_its_own(store: Store, page: str) -> None:
    at = AppTest.from_file(str(DASHBOARD / page), default_timeout=TIMEOUT_S)
    at.query_params["case"] = store.text_only
    sign_in_as(at).run()
    assert not at.exception
    assert at.title[0].value in {"Overview", "Worklist", "Case", "Model", "Augmentation", "Runs"}


def test_overview_shows_counts_trend_and_model_metrics(store: Store) -> None:
    at = open_page()
    assert at.title[0].value == "Overview"
    shown = metrics(at)
    assert {k: shown[k] for k in ("Ingested", "Rejected", "Diagnosed", "Failed")} == {
        "Ingested": "1", "Rejected": "1", "Diagnosed": "3", "Failed": "0"}  # fmt: skip
    assert shown["Reviews overriding the model"] == "0"
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
    [trend] = at.get("plotly_chart")  # cases per day
    assert sum(_values(json.loads(trend.proto.spec)["data"][0]["y"])) == 5


def test_runs_page_lists_flow_runs(store: Store) -> None:
    at = open_page("pages/runs.py")
    assert table(at, {"flow", "counts"})["flow"].tolist() == ["ingest"]
    assert metrics(at)["Failed"] == "0"


def test_empty_home_shows_empty_state_everywhere(empty_home: Path) -> None:
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S)
    at.run()
    assert (empty_home / "diagnosis.db").is_file(), "the dashboard creates the schema of an empty home"
    url = os.environ.get("DIAGNOSIS_DATABASE_URL") or db.default_sqlite_url(empty_home)
    with db.session_scope(url) as session:
        user = db.create_user(session, "solo", "password-123")
    at.session_state["user"], at.session_state["last_active"] = user, time.time()
    at.run()
    assert not at.exception
    assert "No cases yet" in texts(at) and "diagnosis demo" in texts(at)
    for page, message in [("pages/worklist.py", "No cases yet"), ("pages/case.py", "Enter a case id"),
                          ("pages/model.py", "No model trained yet"), ("pages/augmentation.py", "No labelled cases"),
                          ("pages/runs.py", "No flow runs")]:  # fmt: skip
        at.switch_page(page).run()
        assert not at.exception and message in texts(at), page


def test_worklist_lists_predicted_cases_most_uncertain_first(store: Store) -> None:
    at = open_page("pages/worklist.py")
    frame = table(at, {"case", "prediction", "probability", "uncertainty", "conformal set", "review"})
    assert frame["case"].tolist() == [store.image_2d, store.image_3d, store.text_only]  # NULL uncertainty last
    rows = frame.set_index("case")
    assert rows.loc[store.image_2d, "uncertainty"] == pytest.approx(0.9)
    assert rows.loc[store.image_2d, "conformal set"] == "pneumonia, normal"
    assert np.isnan(rows.loc[store.text_only, "uncertainty"]) and rows.loc[store.text_only, "conformal set"] == ""
    assert rows.loc[store.image_2d, "probability"] == pytest.approx(0.8)
    assert "3 cases predicted by poe-v2" in texts(at)
    assert not at.pagination, "one page of cases needs no pagination"


@pytest.mark.parametrize(
    ("widget", "choice", "expected"),
    [
        ("filter_review", "unreviewed", ["case-2d", "case-3d", "case-text"]),
        ("filter_review", "reviewed", []),
        ("filter_predicted_label", "covid", ["case-text"]),
        ("filter_uncertainty", 0.5, ["case-2d"]),
    ],
)
def test_worklist_filters_narrow_the_list(store: Store, widget: str, choice: Any, expected: list[str]) -> None:
    at = open_page("pages/worklist.py")
    if widget == "filter_uncertainty":
        at.number_input(key=widget).set_value(choice).run()
    else:
        at.selectbox(key=widget).select(choice).run()
    assert not at.exception
    if expected:
        assert case_ids(at) == expected
    else:
        assert "No case matches" in texts(at)


def test_worklist_filters_by_data_set(store: Store) -> None:
    from sqlalchemy import update

    from db.models import Case

    with db.session_scope(store.url) as session:
        session.execute(update(Case).where(Case.case_key == store.image_3d).values(dataset="clinic-b"))
    at = open_page("pages/worklist.py")
    assert at.selectbox(key="filter_dataset").options == ["clinic-b", db.NO_DATASET]
    at.selectbox(key="filter_dataset").select("clinic-b").run()
    assert not at.exception and case_ids(at) == [store.image_3d]
    at.selectbox(key="filter_dataset").select(db.NO_DATASET).run()
    assert case_ids(at) == [store.image_2d, store.text_only]


def test_worklist_disagreement_filter_shows_overridden_cases(store: Store) -> None:
    with db.session_scope(store.url) as session:
        db.submit_review(session, case_key=store.image_3d, username=store.clinician, final_label="covid",
                         expected_version=0, predicted_label="normal")  # fmt: skip
    at = open_page("pages/worklist.py")
    at.selectbox(key="filter_review").select("disagreement").run()
    assert case_ids(at) == [store.image_3d]
    assert table(at, {"case", "review"})["review"].tolist() == ["covid"]


def add_bulk_predictions(store: Store, n: int, uncertainty: Callable[[int], float]) -> int:
    """Store ``n`` text cases ``bulk-000``… predicted ``normal`` by the latest model; returns that model's id."""
    extra = [db.CaseIn(f"bulk-{i:03d}", None, "normal", "train", f"note {i}", None) for i in range(n)]
    with db.session_scope(store.url) as session:
        db.upsert_cases(session, extra)
        model = db.latest_model_version(session)
        ids = {c.case_key: c.id for batch in db.iter_case_inputs(session) for c in batch}
        db.save_predictions(session, [
            db.PredictionIn(ids[f"bulk-{i:03d}"], model.id, "normal", {"normal": 1.0}, [0.0] * 8, ("text",),
                            uncertainty=uncertainty(i)) for i in range(n)])  # fmt: skip
        return model.id


def test_worklist_pagination_pages_through_50_at_a_time(store: Store) -> None:
    add_bulk_predictions(store, 60, lambda i: 0.01 * i)
    at = open_page("pages/worklist.py")
    assert len(case_ids(at)) == 50 and at.pagination[0].num_pages == 2
    assert case_ids(at)[:3] == [store.image_2d, "bulk-059", "bulk-058"]
    at.pagination[0].select(2).run()
    assert case_ids(at)[-1] == store.text_only and len(case_ids(at)) == 13
    at.selectbox(key="filter_predicted_label").select("normal").run()  # back to page 1 of 2
    assert at.pagination[0].value == 1


def test_worklist_jumps_to_any_page_and_pages_back_by_keyset(store: Store) -> None:
    model_id = add_bulk_predictions(store, 140, lambda i: 0.01 * (i // 3))  # ties across page edges
    with db.session_scope(store.url) as session:
        every = [r.case_key for r in db.list_worklist(session, db.WorklistFilter(model_version_id=model_id), limit=1000)]
    at = open_page("pages/worklist.py")
    assert at.pagination[0].num_pages == 3
    at.pagination[0].select(3).run()  # a jump: no page before it was shown
    assert case_ids(at) == every[100:]
    at.pagination[0].select(2).run()
    assert case_ids(at) == every[50:100]
    at.pagination[0].select(1).run()
    at.pagination[0].select(2).run()  # after page 1: the keyset page
    assert case_ids(at) == every[50:100]


def test_worklist_counts_only_ahead_of_the_page_and_reaches_further_from_the_last(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "COUNT_AHEAD", 100)  # 143 rows match: the first count stops after 101
    model_id = add_bulk_predictions(store, 140, lambda i: 0.01 * i)
    with db.session_scope(store.url) as session:
        every = [r.case_key for r in db.list_worklist(session, db.WorklistFilter(model_version_id=model_id), limit=1000)]
        assert db.count_worklist(session, db.WorklistFilter(model_version_id=model_id), limit=101) == 101
    at = open_page("pages/worklist.py")
    assert at.pagination[0].num_pages == 2 and "more than 100 cases predicted by" in texts(at)
    at.pagination[0].select(2).run()  # the last page listed: the count now reaches 100 rows past it, and ends
    assert at.pagination[0].num_pages == 3 and "143 cases predicted by" in texts(at)
    assert case_ids(at) == every[50:100]
    at.pagination[0].select(3).run()
    assert case_ids(at) == every[100:]


def test_open_case_from_the_worklist(store: Store) -> None:
    at = open_page("pages/worklist.py")
    at.selectbox(key="open_case").select(store.image_2d).run()
    at.button(key="open_button").click().run()
    assert not at.exception
    assert at.title[0].value == "Case" and at.query_params["case"] == store.image_2d
    assert metrics(at)["Predicted diagnosis"] == "pneumonia"


def test_case_page_2d_shows_image_text_and_probabilities(store: Store) -> None:
    at = open_page("pages/case.py", case=store.image_2d)
    assert metrics(at) == {"Status": "diagnosed", "True diagnosis": "pneumonia", "Split": "test",
                           "Predicted diagnosis": "pneumonia", "Uncertainty": "0.90 nats",
                           "Conformal set": "pneumonia, normal"}  # fmt: skip
    similar = table(at, {"case", "confirmed diagnosis", "distance"})
    assert similar["case"].tolist() == [store.text_only, store.image_3d]  # nearest latent first
    assert similar["confirmed diagnosis"].tolist() == ["covid", "normal"]
    assert "Not computed yet" in texts(at) and at.button(key="reconstruct") is not None
    assert len(at.image) == 1 and at.image[0].captions[0].startswith("png · 48 × 40 px")
    assert [slider.label for slider in at.slider] == ["Window (intensity range shown)"], "no slice slider in 2D"
    assert "Productive cough and fever" in texts(at)
    [chart] = at.get("plotly_chart")
    [trace] = json.loads(chart.proto.spec)["data"]
    shown = dict(zip(trace["y"], _values(trace["x"]), strict=True))
    assert shown == pytest.approx({"pneumonia": 0.8, "normal": 0.1, "covid": 0.1})
    history = table(at, {"model version", "model", "prediction", "modalities"})
    assert history["model"].tolist() == ["poe-v2", "poe-v1"]
    assert history["prediction"].tolist() == ["pneumonia", "normal"]
    assert history["modalities"].tolist() == ["image + text", "image"]


def test_case_page_shows_computed_reconstruction_views(store: Store) -> None:
    from PIL import Image

    folder = store.home / "reconstructions"  # the case's latest model version is 2
    folder.mkdir()
    paths = {}
    for name, value in (("reconstruction", 200), ("image_from_text", 90)):
        pixels = np.zeros((16, 16), dtype=np.uint8)
        pixels[4:12, 4:12] = value
        paths[name] = str(folder / f"{name}.png")
        Image.fromarray(pixels).save(paths[name])
    with db.session_scope(store.url) as session:
        db.save_reconstruction(session, store.image_2d, 2, reconstruction_path=paths["reconstruction"],
                               image_from_text_path=paths["image_from_text"],
                               nearest_texts=[{"text": "Dry cough and fever since Monday.", "label": "pneumonia"}])
    at = open_page("pages/case.py", case=store.image_2d)
    captions = [image.captions[0] for image in at.image]
    assert captions[1:] == ["Reconstruction", "Image from the text"]  # after the case image itself
    assert "[pneumonia] Dry cough and fever since Monday." in texts(at) and "Not computed yet" not in texts(at)


def test_case_page_3d_shows_three_orthogonal_views_with_sliders(store: Store) -> None:
    at = open_page("pages/case.py", case=store.image_3d)
    x, y, z = store.volume_shape
    axial = at.slider(key=f"slice_2_{store.image_3d}")
    assert (axial.min, axial.max, axial.value) == (0, z - 1, z // 2)
    assert at.slider(key=f"slice_0_{store.image_3d}").max == x - 1
    assert at.slider(key=f"slice_1_{store.image_3d}").max == y - 1
    assert len(at.image) == 3
    captions = [image.captions[0] for image in at.image]
    assert f"axial slice {z // 2 + 1} of {z}" in captions[0]
    assert "coronal" in captions[1] and "sagittal" in captions[2]
    before = at.image[0].value
    axial.set_value(2).run()
    assert not at.exception
    assert "axial slice 3 of 10" in at.image[0].captions[0] and "spacing 1.5 × 1.5 × 2 mm" in at.image[0].captions[0]
    assert at.image[0].value != before, "another slice is another picture"
    low, high = at.slider(key=f"window_{store.image_3d}").value
    at.slider(key=f"window_{store.image_3d}").set_value((low, (low + high) / 2)).run()
    assert not at.exception and at.image[0].value != before, "a narrower window changes the picture"


def test_case_page_text_only_and_rejected_cases(store: Store) -> None:
    at = open_page("pages/case.py", case=store.text_only)
    assert "No image for this case" in texts(at) and not at.image
    assert metrics(at)["Predicted diagnosis"] == "covid"
    assert metrics(at)["Uncertainty"] == "not estimated" and metrics(at)["Conformal set"] == "not calibrated"
    at = open_page("pages/case.py", case=store.rejected)
    assert metrics(at)["Status"] == "rejected"
    assert f"Reason: {md(store.reject_reason)}" in texts(at) and "No predictions yet" in texts(at)  # shown escaped


def test_case_page_unknown_or_missing_case(store: Store) -> None:
    at = open_page("pages/case.py", case="nope")
    assert "No case with id `nope`" in texts(at)
    at.text_input(key="case").input(store.image_2d).run()
    assert not at.exception and "No case with id" not in texts(at)
    assert metrics(at)["True diagnosis"] == "pneumonia"


def test_unreachable_store_shows_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAGNOSIS_DATABASE_URL", "postgresql+psycopg2://user:secret@127.0.0.1:1/none")
    at = open_page(user=None)
    [error] = at.error
    assert "Cannot open the diagnosis store" in error.value and "DIAGNOSIS_DATABASE_URL" in error.value
    assert "secret" not in error.value


def test_model_page_says_which_data_sets_each_version_was_trained_on(store: Store) -> None:
    from sqlalchemy import update

    from db.models import ModelVersion

    with db.session_scope(store.url) as session:
        latest = db.latest_model_version(session)
        session.execute(update(ModelVersion).where(ModelVersion.id == latest.id)
                        .values(config={**latest.config, "datasets": ["clinic-b", db.NO_DATASET]}))  # fmt: skip
    at = open_page("pages/model.py")
    assert not at.exception
    frame = next(f.value for f in at.dataframe if "data sets" in f.value.columns)
    assert frame.set_index("id").loc[latest.id, "data sets"] == f"clinic-b, {db.NO_DATASET}"


def test_the_dashboard_process_never_imports_torch_or_monai(store: Store) -> None:
    """Every page, and the case page of a PNG and of a NIfTI case, in a fresh process: images are decoded by Pillow,
    nibabel and pydicom, reconstructions come from the store."""
    import subprocess
    import sys

    script = f"""
import sys, time
from streamlit.testing.v1 import AppTest
import db
pages = {PAGES!r}
with db.session_scope({store.url!r}) as session:
    user = db.get_user(session, "clinician1")
for page, case in [(p, None) for p in pages] + [("pages/case.py", {store.image_2d!r}), ("pages/case.py", {store.image_3d!r})]:
    at = AppTest.from_file({str(DASHBOARD / "app.py")!r}, default_timeout=90)
    if case:
        at.query_params["case"] = case
    at.session_state["user"], at.session_state["last_active"] = user, time.time()
    at.run()
    at.switch_page(page).run()
    assert not at.exception, (page, at.exception)
    assert case is None or len(at.image) >= 1, page
print(sorted(m for m in ("torch", "monai", "transformers") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=os.environ)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
