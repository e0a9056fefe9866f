"""The graph classifier through the command line and the dashboard: train with --classifier graph, diagnose (the
neighbours that mattered are stored with each prediction), evaluate, and the case page shows and links them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

import db
from flows.cli import app

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_graph_classifier_model_diagnoses_with_its_neighbours_and_the_case_page_shows_them(
    home: Path, db_url: str, tiny_text_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(home, "generate", str(tmp_path / "data"), "--cases", "60", "--seed", "5")
    run(home, "ingest", str(tmp_path / "data" / "manifest.csv"))
    refused = runner.invoke(app, ["--home", str(home), "train", "--classifier", "tree"])
    assert refused.exit_code != 0 and "unknown classifier 'tree'" in refused.output
    run(home, "train", "--classifier", "graph", "--epochs", "2", "--image-epochs", "2", "--image-members", "1",
        "--text-model", str(tiny_text_model))  # fmt: skip
    with db.session_scope(db_url) as session:
        version = db.latest_model_version(session)
        train_keys = {c.case_key for c in db.list_cases(session, limit=None) if c.split == "train"}
    assert version.config["classifier"] == "graph" and "+graph-" in version.name
    checkpoint = Path(version.checkpoint_path)
    assert (checkpoint / "graph.json").is_file() and (checkpoint / "latents.npz").is_file()
    assert json.loads(run(home, "diagnose"))["failed"] == 0
    report_path = tmp_path / "report.json"
    run(home, "evaluate", "--split", "test", "--json", str(report_path))
    assert json.loads(report_path.read_text())["n"] > 0
    with db.session_scope(db_url) as session:
        case = next(c for c in db.list_cases(session, limit=None) if c.split == "test" and c.has_image)
        latest = db.get_case(session, case.case_key).predictions[0]
    assert latest.model_version_id == version.id and latest.neighbours
    assert {n["case_key"] for n in latest.neighbours} <= train_keys  # nodes are training cases
    monkeypatch.setenv("DIAGNOSIS_HOME", str(home))
    monkeypatch.setenv("DIAGNOSIS_DATABASE_URL", db_url)
    with db.session_scope(db_url) as session:
        db.create_user(session, "clinician9", "correct horse battery", role="clinician")
        user = db.get_user(session, "clinician9")
    st.cache_data.clear()
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=90)
    at.query_params["case"] = case.case_key
    at.session_state["user"], at.session_state["last_active"] = user, time.time()
    at.run()
    at.switch_page("pages/case.py").run()
    assert not at.exception
    assert "Neighbours in the case graph" in [s.value for s in at.subheader]
    frames = {tuple(f.value.columns): f.value for f in at.dataframe}
    shown = next(v for c, v in frames.items() if "share of the logit" in c)
    assert list(shown["case"]) == [n["case_key"] for n in latest.neighbours]
    similar = next(v for c, v in frames.items() if "distance" in c)
    assert "graph neighbour" in similar.columns  # the two tables are linked
    first = latest.neighbours[0]["case_key"]
    at.selectbox(key="graph_neighbour_choice").set_value(first).run()
    at.button(key="graph_neighbour_open").click().run()
    assert not at.exception and at.text_input(key="case").value == first  # the neighbour's own page
