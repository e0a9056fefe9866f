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
    assert choose_threshold(labels, p) == 0.8  # balanced accuracy (2/3 + 1) / 2 beats 0.5's (1 + 1/2) / 2
    assert choose_threshold(np.array([0, 1, 1]), np.array([0.2, 0.6, 0.7])) == 0.5  # ties (0.5, 0.6): the lowest
    imbalanced = np.array([0] * 2 + [1] * 8)  # prevalence does not move the threshold: the classes weigh alike
    assert choose_threshold(imbalanced, np.linspace(0.05, 0.95, 10)) == pytest.approx(0.25)
    metrics = binary_metrics(labels, p, 0.5)
    assert metrics["auc"] == pytest.approx(5 / 6) and metrics["recall"] == {"normal": 0.5, "pneumonia": 1.0}
    assert metrics["accuracy"] == pytest.approx(0.8)


def test_bench_p1_command_writes_every_figure(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p1.json"
    result = CliRunner().invoke(app, ["bench", "p1", "--data", str(shared_data), "--json", str(out),
                                      "--fusion", "cnn,graph,poe,concat,late,attention,mmae", "--epochs", "1", "--image-epochs", "2",
                                      "--image-members", "2", "--text-epochs", "1", "--train-limit", "300",
                                      "--home", str(tmp_path)],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"cnn", "graph", "poe", "concat", "late", "attention", "mmae"}
    assert report["results"]["late"]["kind"] == "baseline"
    assert report["results"]["graph"]["kind"] == "graph classifier over poe" and report["results"]["graph"]["epochs"] >= 1
    assert set(report["results"]["cnn"]["modes"]) == {"image"}  # the image encoder alone
    assert report["image_stage"]["epochs"] == 2 and report["config"]["text_epochs"] == 1
    assert len(report["image_stage"]["members"]) == report["config"]["image_members"] == 2  # an ensemble
    for name, fusion in report["results"].items():
        if name != "cnn":
            assert set(fusion["modes"]) == {"image", "text", "fused", "fused_missing50"}
        for metrics in fusion["modes"].values():
            assert 0.0 <= metrics["auc"] <= 1.0 and 0.0 <= metrics["ece"] <= 1.0 and 0.0 <= metrics["val_ece"] <= 1.0
            assert set(metrics["recall"]) == {"normal", "pneumonia"}
    assert report["prevalence"]["pneumonia_share"]["test"] == pytest.approx(390 / 624)
    assert "differ" in report["prevalence"]["note"]  # 74 % in val against 62.5 % in test
    assert "fused_missing50" in result.stdout and "P1" in result.stdout
    assert "estimate:" in result.stderr and "image stage member 2 epoch 2" in result.stderr  # estimate; progress per member


def test_bench_p2_command_trains_the_four_ways(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p2.json"
    result = CliRunner().invoke(app, ["bench", "p2", "--data", str(shared_data), "--json", str(out), "--epochs", "1",
                                      "--image-epochs", "1", "--image-members", "1", "--text-epochs", "0", "--train-limit", "400",
                                      "--home", str(tmp_path)], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["plain", "class_weights", "vae_augment", "vae_augment+class_weights"]
    assert report["counts"]["val"] == {"normal": 19, "pneumonia": 389}  # round(0.05 * 389) normals kept
    assert report["counts"]["test"] == {"normal": 234, "pneumonia": 390}  # test unchanged
    latents = report["results"]["vae_augment"]["latents"]
    assert latents["synthetic"][0] > 0 and latents["real"][0] + latents["synthetic"][0] == latents["real"][1]  # parity
    for metrics in report["results"].values():
        assert 0.0 <= metrics["recall"]["normal"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0


def test_bench_p1_prior_shift_moves_probabilities_not_decisions(shared_data: Path, tmp_path: Path) -> None:
    args = ["bench", "p1", "--data", str(shared_data), "--fusion", "cnn", "--image-epochs", "2", "--image-members", "1",
            "--text-epochs", "0",
            "--train-limit", "200", "--home", str(tmp_path)]
    plain, shifted = tmp_path / "plain.json", tmp_path / "shifted.json"
    for out, extra in ((plain, []), (shifted, ["--prior", "0.625"])):
        result = CliRunner().invoke(app, [*args, "--json", str(out), *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    a, b = (json.loads(p.read_text())["results"]["cnn"]["modes"]["image"] for p in (plain, shifted))
    assert b["auc"] == pytest.approx(a["auc"]) and b["accuracy"] == pytest.approx(a["accuracy"])  # same decisions
    assert b["threshold"] != pytest.approx(a["threshold"]) and b["ece"] != pytest.approx(a["ece"])


def test_bench_p1_refuses_unknown_rows(shared_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "p1", "--data", str(shared_data), "--fusion", "cnn,resnet"])
    assert result.exit_code == 1 and "resnet" in result.output
