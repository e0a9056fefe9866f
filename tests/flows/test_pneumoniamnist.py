"""Real data: import-npz on (a subset of) PneumoniaMNIST -> ingest -> train -> diagnose -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

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

    run("import-npz", str(subset), str(tmp_path / "pneumonia"), "--labels", "normal,pneumonia")
    counts = json.loads(run("ingest", str(tmp_path / "pneumonia" / "manifest.csv")))
    assert counts["ingested"] == 650 and counts["rejected"] == 0
    run("train", "--epochs", "4")
    assert json.loads(run("diagnose"))["predicted"] == 650
    run("evaluate", "--json", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 150 and report["macro_auc"] > 0.8  # real signal from 400 training images and 4 epochs
