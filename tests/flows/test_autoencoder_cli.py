"""Each deterministic autoencoder through the command line and the dashboard: train, diagnose, evaluate, the case
page; augmentation from its (absent) prior is refused with the reason, its latent GAN generates instead."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

import db
from dashboard import jobs
from dashboard.escape import md
from flows.cli import app

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
KINDS = ("ae", "stacked_ae", "sparse_ae")


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def store(home: Path, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    run(home, "generate", str(data), "--cases", "60", "--seed", "3")
    assert json.loads(run(home, "ingest", str(data / "manifest.csv")))["created"] == 60
    with db.session_scope(db_url) as session:
        db.create_user(session, "clinician1", "correct horse battery", role="clinician")
        db.create_user(session, "admin1", "correct horse battery", role="admin")
    return home


@pytest.mark.parametrize("kind", KINDS)
def test_an_autoencoder_model_trains_diagnoses_evaluates_and_shows_on_the_case_page(
    store: Path, db_url: str, tiny_text_model: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run(store, "train", "--fusion", kind, "--epochs", "2", "--image-epochs", "2", "--image-members", "1",
              "--text-model", str(tiny_text_model))  # fmt: skip
    with db.session_scope(db_url) as session:
        version = db.latest_model_version(session)
    assert version is not None and version.fusion == kind and f"model version {version.id}" in out
    stages = version.config["stages"]
    if kind == "stacked_ae":  # two hidden layers and the code, pre-trained one by one
        assert stages["layerwise"]["layers"] == 3 and stages["layerwise"]["epochs_per_layer"] >= 1
    else:
        assert "layerwise" not in stages
    diagnosed = json.loads(run(store, "diagnose"))
    assert diagnosed["predicted"] == 60 and diagnosed["failed"] == 0
    report_path = store / f"report-{kind}.json"
    run(store, "evaluate", "--model", str(version.id), "--split", "test", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    assert report["model_version_id"] == version.id and report["n"] > 0 and 0 <= report["accuracy"] <= 1
    refused = runner.invoke(app, ["--home", str(store), "augment", "--model", str(version.id), "--label", "pneumonia"])
    assert refused.exit_code != 0 and "deterministic autoencoder" in refused.output
    made = json.loads(run(store, "augment", "--model", str(version.id), "--label", "pneumonia", "--n", "3",
                          "--generator", "gan", "--gan-steps", "60", "--seed", "0").splitlines()[-1])
    assert made["created"] == 3 and made["generator"] == "gan" and made["diversity"] > 0, made
    assert (Path(version.checkpoint_path) / "gan.json").is_file()  # kept: the next call reuses it
    with db.session_scope(db_url) as session:
        case = next(c for c in db.list_cases(session, limit=60) if c.has_image and c.has_text)
        detail = db.get_case(session, case.case_key)
    assert detail.predictions[0].model_version_id == version.id and detail.predictions[0].uncertainty is not None
    monkeypatch.setenv("DIAGNOSIS_HOME", str(store))
    monkeypatch.setenv("DIAGNOSIS_DATABASE_URL", db_url)
    st.cache_data.clear()  # the dashboard caches model names for 30 s: this model is new
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=90)
    at.query_params["case"] = case.case_key
    with db.session_scope(db_url) as session:
        at.session_state["user"] = db.get_user(session, "clinician1")
    at.session_state["last_active"] = time.time()
    at.run()
    at.switch_page("pages/case.py").run()
    assert not at.exception
    shown = " ".join(str(e.value) for kind in (at.title, at.header, at.subheader, at.markdown, at.caption) for e in kind)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predicted diagnosis"] == detail.predictions[0].label and metrics["Status"] == "diagnosed"
    assert md(version.name) in shown and "Prediction history" in shown, shown  # names are Markdown-escaped
    assert version.config["generative"] is False
    monkeypatch.setattr(jobs, "augment_command", lambda: ("diagnosis", "augment"))  # no probe of the installation
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=90)  # an admin on the Augmentation page
    with db.session_scope(db_url) as session:
        at.session_state["user"] = db.get_user(session, "admin1")
    at.session_state["last_active"] = time.time()
    at.run()
    at.switch_page("pages/augmentation.py").run()
    assert not at.exception and "deterministic autoencoder" in " ".join(str(i.value) for i in at.info)
    assert at.radio(key="augment_generator").options == ["GAN (conditional, on the training latents)"]  # no VAE job
    at.selectbox(key="augment_label").set_value("pneumonia").run()
    assert "· GAN" in " ".join(str(c.value) for c in at.caption)  # the GAN's samples are shown
