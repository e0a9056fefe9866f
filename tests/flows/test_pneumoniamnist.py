"""Real data after the demo, as a new user goes: demo, then import-npz on (a subset of) PneumoniaMNIST -> ingest ->
train (refused while two data sets would mix; then on the one named) -> diagnose -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import db
from flows.cli import app

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_import_train_evaluate_on_pneumoniamnist(shared_data: Path, home: Path, tmp_path: Path) -> None:
    subset = tmp_path / "pneumonia-subset.npz"
    with np.load(shared_data / "pneumoniamnist.npz") as data:
        sizes = {"train": 400, "val": 100, "test": 150}
        rng = np.random.default_rng(0)  # the file is ordered by class: draw a random subset of each split
        rows = {s: np.sort(rng.choice(len(data[f"{s}_labels"]), n, replace=False)) for s, n in sizes.items()}
        np.savez(subset, **{f"{s}_{k}": data[f"{s}_{k}"][rows[s]] for s in sizes for k in ("images", "labels")})
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    from flows.demo import demo_flow

    demo_flow(db.default_sqlite_url(home), str(home), cases=100, dims=2, epochs=2, seed=1)  # the README's first command

    unnamed = runner.invoke(app, ["--home", str(home), "import-npz", str(subset), str(tmp_path / "unnamed")])
    assert unnamed.exit_code == 0 and "labels: 0, 1" in unnamed.stdout and "--labels name0,name1" in unnamed.stderr
    run("import-npz", str(subset), str(tmp_path / "pneumonia"), "--labels", "normal,pneumonia")
    counts = json.loads(run("ingest", str(tmp_path / "pneumonia" / "manifest.csv")))
    assert counts["ingested"] == 650 and counts["rejected"] == 0 and counts["datasets"] == ["pneumonia-subset"]
    mixed = runner.invoke(app, ["--home", str(home), "train", "--epochs", "4"])
    assert mixed.exit_code == 1 and "2 data sets" in mixed.output
    assert "demo (" in mixed.output and "pneumonia-subset (650 labelled cases)" in mixed.output
    run("train", "--epochs", "4", "--image-epochs", "6", "--image-members", "1", "--dataset", "pneumonia-subset")
    with db.session_scope(db.default_sqlite_url(home)) as session:
        version = db.latest_model_version(session)
    assert version.label_names == ("normal", "pneumonia") and version.config["datasets"] == ["pneumonia-subset"]
    assert json.loads(run("diagnose", "--dataset", "pneumonia-subset"))["predicted"] == 650  # not the demo's cases
    run("evaluate", "--json", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 150 and report["macro_auc"] > 0.8  # real signal from 400 training images and short stages
