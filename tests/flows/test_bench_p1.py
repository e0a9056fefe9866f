"""Benchmark P1 end to end on a small training subset: the protocol's pairing, every mode, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from diagnosis.benchmarks import binary_metrics, choose_threshold, load_p1
from flows.cli import app


def test_p1_pairing_follows_the_protocol(shared_data: Path) -> None:
    data = load_p1(shared_data)
    sizes = {s: len(v.labels) for s, v in data.splits.items()}
    assert sizes == {"train": 4707, "val": 524, "test": 624}
    for split, paired in data.splits.items():
        pools = data.pools[split]
        assert all(t in pools["pneumonia"] or t in pools["other"] for t in paired.texts)  # a split's own pool only
        own = [(t in pools["pneumonia"]) == bool(y) for t, y in zip(paired.texts, paired.labels, strict=True)]
        assert 0.70 < np.mean(own) < 0.80  # 75 % of texts come from the image's own class
    assert not set(data.pools["train"]["other"]) & set(data.pools["test"]["other"])
    again = load_p1(shared_data)
    assert again.splits["test"].texts == data.splits["test"].texts  # seeded


def test_threshold_and_metrics() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.55, 0.8, 0.9])
    assert choose_threshold(labels, p) == 0.5  # ties (accuracy 4 / 5) resolve to the lowest threshold
    metrics = binary_metrics(labels, p, 0.5)
    assert metrics["auc"] == pytest.approx(5 / 6) and metrics["recall"] == {"normal": 0.5, "pneumonia": 1.0}
    assert metrics["accuracy"] == pytest.approx(0.8)


def test_bench_p1_command_writes_every_figure(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p1.json"
    result = CliRunner().invoke(app, ["bench", "p1", "--data", str(shared_data), "--json", str(out), "--fusion", "poe,concat,late,attention,mmae",
                                      "--epochs", "1", "--train-limit", "300", "--home", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"poe", "concat", "late", "attention", "mmae"}
    assert report["results"]["late"]["kind"] == "baseline"
    for fusion in report["results"].values():
        assert set(fusion["modes"]) == {"image", "text", "fused", "fused_missing50"}
        for metrics in fusion["modes"].values():
            assert 0.0 <= metrics["auc"] <= 1.0 and 0.0 <= metrics["ece"] <= 1.0
            assert set(metrics["recall"]) == {"normal", "pneumonia"}
    assert "fused_missing50" in result.stdout and "P1" in result.stdout


def test_bench_p2_command_trains_the_four_ways(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p2.json"
    result = CliRunner().invoke(app, ["bench", "p2", "--data", str(shared_data), "--json", str(out), "--epochs", "1",
                                      "--train-limit", "400", "--home", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["plain", "class_weights", "vae_augment", "vae_augment+class_weights"]
    assert report["counts"]["val"] == {"normal": 19, "pneumonia": 389}  # round(0.05 * 389) normals kept
    assert report["counts"]["test"] == {"normal": 234, "pneumonia": 390}  # test unchanged
    latents = report["results"]["vae_augment"]["latents"]
    assert latents["synthetic"][0] > 0 and latents["real"][0] + latents["synthetic"][0] == latents["real"][1]  # parity
    for metrics in report["results"].values():
        assert 0.0 <= metrics["recall"]["normal"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0
