"""The command line as a user runs it: generate, a hand-written mixed manifest, train, diagnose, evaluate, cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def mixed_manifest(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """A generated training set plus a hand-written manifest mixing PNG, NIfTI, text-only and bad rows."""
    data = tmp_path_factory.mktemp("data")
    run(home, "generate", str(data / "synthetic"), "--cases", "90", "--seed", "5")
    rows = list(csv.DictReader(open(data / "synthetic" / "manifest.csv")))
    png = next(r for r in rows if r["image"])
    volume = np.random.default_rng(0).random((32, 32, 9)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([0.7, 0.7, 3.0, 1.0])), data / "ct.nii.gz")
    manifest = data / "hand.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "patient_id", "image", "text", "label", "split"])
        writer.writerow(["H-png", "P1", str(data / "synthetic" / png["image"]), "dry cough, fever for three days", "", ""])
        writer.writerow(["H-nifti", "P2", "ct.nii.gz", "", "", ""])
        writer.writerow(["H-text", "P3", "", "I am short of breath and my chest hurts", "", ""])
        writer.writerow(["H-missing", "P4", "gone.png", "", "", ""])
    return manifest


def test_cli_round_trip(home: Path, mixed_manifest: Path, tiny_text_model: Path) -> None:
    assert json.loads(run(home, "ingest", str(mixed_manifest.parent / "synthetic" / "manifest.csv")))["created"] == 90
    counts = json.loads(run(home, "ingest", str(mixed_manifest)))
    assert counts["rows"] == 4 and counts["rejected"] == 1
    assert json.loads(run(home, "ingest", str(mixed_manifest)))["created"] == 0  # idempotent
    assert "model version 1" in run(home, "train", "--epochs", "3", "--text-model", str(tiny_text_model), "--image-members", "1")
    (folder,) = (home / "models").iterdir()  # the lexical reader of the texts is saved beside the weights
    assert (folder / "lexical.json").is_file() and (folder / "lexical.safetensors").is_file()
    assert json.loads((folder / "model.json").read_text())["train"]["lexical"]["enabled"] is True
    diagnosed = json.loads(run(home, "diagnose"))
    assert diagnosed["predicted"] >= 88 and diagnosed["failed"] == 0
    import flows.diagnose

    def no_flow(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing is pending: no flow (and no Prefect server) should start")

    original, flows.diagnose.diagnose_flow = flows.diagnose.diagnose_flow, no_flow
    try:
        assert json.loads(run(home, "diagnose"))["predicted"] == 0  # answered from the store alone
    finally:
        flows.diagnose.diagnose_flow = original
    report_path = mixed_manifest.parent / "report.json"
    table = run(home, "evaluate", "--split", "test", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    assert report["model_version_id"] == 1 and report["n"] > 0 and "macro_auc" in table
    assert set(report) >= {"accuracy", "macro_f1", "macro_auc", "ece", "per_class_recall"}
    listed = {}
    for line in run(home, "cases", "--json", "--limit", "0").splitlines():
        row = json.loads(line)
        listed[row["case_key"]] = row
    assert len(listed) == 94
    assert listed["H-missing"]["status"] == "rejected" and "not found" in listed["H-missing"]["error"]
    for key, has_image, has_text in (("H-png", True, True), ("H-nifti", True, False), ("H-text", False, True)):
        assert listed[key]["status"] == "diagnosed" and listed[key]["predicted_label"]
        assert (listed[key]["has_image"], listed[key]["has_text"]) == (has_image, has_text)
    assert "H-missing" in run(home, "cases", "--status", "rejected")
    page = runner.invoke(app, ["--home", str(home), "cases", "--limit", "5"])
    assert "5 of 94 cases" in page.stdout and "showing 5 of 94 cases (use --limit 0 for all)" in page.stderr


def test_diagnose_with_mixed_precision_rewrites_close_predictions(home: Path, db_url: str) -> None:
    """``diagnose --all --amp`` re-predicts every case in bfloat16; the stored probabilities stay near float32's."""
    from sqlalchemy import select

    import db
    from db.models import Prediction

    def stored() -> dict[int, dict[str, float]]:
        with db.session_scope(db_url) as session:
            return {p.case_id: p.probabilities for p in session.scalars(select(Prediction).where(Prediction.model_version_id == 1))}

    before = stored()
    counts = json.loads(run(home, "diagnose", "--all", "--amp", "--model", "1", "--batch-size", "32"))
    after = stored()
    assert counts["predicted"] == len(before) >= 88 and set(after) == set(before)
    gaps = [abs(after[case][label] - p) for case, probs in before.items() for label, p in probs.items()]
    assert max(gaps) < 0.05 and 0 < sum(gaps)  # rewritten in reduced precision, not left as they were


def test_reconstruct_writes_the_views_the_dashboard_shows(home: Path, db_url: str, mixed_manifest: Path) -> None:
    import db
    from diagnosis.ingest import load_image
    from diagnosis.settings import Settings

    record = json.loads(run(home, "reconstruct", "H-png", "--model", "1"))
    assert record["model_version_id"] == 1 and len(record["nearest_texts"]) == 3
    with db.session_scope(db_url) as session:
        stored = db.get_reconstruction(session, "H-png", 1)
    assert (stored.reconstruction_path, stored.image_from_text_path) == (record["reconstruction"], record["image_from_text"])
    assert stored.nearest_texts == record["nearest_texts"]
    stem = Settings(home=home).reconstruction_stem(1, "H-png")
    assert record["reconstruction"] == str(stem.with_name(f"{stem.name}-reconstruction.png"))  # no case id in the name
    for name in ("reconstruction", "image_from_text"):
        assert load_image(record[name]).array.shape == (1, 64, 64)  # back on the model grid (64-px generated images)
    text_only = json.loads(run(home, "reconstruct", "H-text", "--model", "1"))
    assert text_only["reconstruction"] is None and text_only["image_from_text"] and text_only["nearest_texts"] == []
    missing = runner.invoke(app, ["--home", str(home), "reconstruct", "nope"])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_augment_adds_synthetic_cases_that_are_never_evaluated(home: Path, mixed_manifest: Path) -> None:
    report_path = mixed_manifest.parent / "before.json"
    run(home, "evaluate", "--split", "all", "--json", str(report_path))
    evaluated_before = json.loads(report_path.read_text())["n"]
    out = json.loads(run(home, "augment", "--label", "pneumothorax", "--n", "6", "--seed", "1"))
    assert out["created"] == 6 and 0.0 <= out["in_class"] <= 1.0 and 0.0 <= out["text_coherence"] <= 1.0
    synthetic = [json.loads(line) for line in run(home, "cases", "--json", "--limit", "0").splitlines()]
    synthetic = [row for row in synthetic if row["is_synthetic"]]
    assert len(synthetic) == 6 and all(r["label"] == "pneumothorax" and r["has_image"] and r["has_text"] for r in synthetic)
    assert json.loads(run(home, "diagnose"))["predicted"] == 0  # synthetic cases are not diagnosed
    run(home, "evaluate", "--split", "all", "--json", str(report_path))
    assert json.loads(report_path.read_text())["n"] == evaluated_before  # nor evaluated
    assert "model version 2" in run(home, "train", "--epochs", "1", "--augment", "--fusion", "mopoe", "--image-members", "1",
                                    "--batch-size", "16", "--lr", "0.001")
    from db import get_model_version, list_flow_runs, session_scope

    with session_scope(f"sqlite:///{home / 'diagnosis.db'}") as session:
        train_run = next(r for r in list_flow_runs(session) if r.flow_name == "train")
        trained_with = get_model_version(session, "2").config["train"]
    assert train_run.counts["synthetic"] == 6 and train_run.model_version_id == 2
    assert trained_with["batch_size"] == 16 and trained_with["lr"] == 0.001
    unknown = runner.invoke(app, ["--home", str(home), "augment", "--label", "nope"])
    assert unknown.exit_code == 1 and "unknown diagnosis" in unknown.output


def test_evaluate_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--home", str(tmp_path), "evaluate"])
    assert result.exit_code == 1 and "diagnosis train" in result.output


def test_train_on_an_empty_store_says_what_is_missing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--home", str(tmp_path), "train", "--epochs", "1"])
    assert result.exit_code == 1 and "at least two diagnoses" in result.output


def test_ingest_of_an_unreadable_manifest_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("id,text\n1,x\n")
    result = runner.invoke(app, ["--home", str(tmp_path), "ingest", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "case_id" in result.output


def test_every_command_has_help() -> None:
    for command in ("generate", "ingest", "import-npz", "train", "diagnose", "evaluate", "cases", "dashboard", "demo"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_dashboard_command_starts_streamlit_on_the_packaged_app_bound_to_loopback(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import subprocess

    started: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(subprocess, "call", lambda command, env: started.append((command, env)) or 0)
    result = runner.invoke(app, ["--home", str(tmp_path), "dashboard", "--port", "8599"])
    assert result.exit_code == 0, result.output
    ((command, env),) = started
    server = Path(command[command.index("run") + 1])
    assert server.name == "server.py" and server.is_file() and (server.parent / "app.py").is_file()
    assert command[command.index("--server.address") + 1] == "127.0.0.1" and "8599" in command
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    assert command[command.index("--client.showSidebarNavigation") + 1] == "false"  # st.navigation alone lists pages
    assert env["DIAGNOSIS_HOME"] == str(tmp_path) and "http://127.0.0.1:8599" in result.stdout


def test_the_help_names_every_fusion_variant_the_library_has() -> None:
    """The command line is imported without the networks, so its help lists the variants by name: kept in step."""
    from diagnosis.fusion import FUSIONS, build_fusion  # noqa: F401 - the registry checks itself on import

    for command in (["train", "--help"], ["bench", "p1", "--help"]):
        shown = " ".join(runner.invoke(app, command, terminal_width=200).stdout.split())
        assert all(variant in shown for variant in FUSIONS), (command, shown)
