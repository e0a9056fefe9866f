"""Benchmark P3: the protocol's split, the TF-IDF baseline, and a smoke run of the command on a subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from diagnosis.benchmarks.p3 import load_p3, multiclass_metrics, tfidf_baseline
from flows.cli import app


def test_p3_split_follows_the_protocol(shared_data: Path) -> None:
    data = load_p3(shared_data)
    assert len(data.label_names) == 24 and data.label_names == tuple(sorted(data.label_names))
    sizes = {s: len(v.texts) for s, v in data.splits.items()}
    assert sizes == {"train": 686, "val": 224, "test": 243}  # 1,153 distinct texts, 60 / 20 / 20 per class
    texts = [t.strip().lower() for v in data.splits.values() for t in v.texts]
    assert len(texts) == len(set(texts))  # duplicates dropped: no text in two splits
    for split in data.splits.values():
        assert set(np.unique(split.labels)) == set(range(24))  # stratified: every class in every split
    assert load_p3(shared_data).splits["test"].texts == data.splits["test"].texts  # seeded


def test_tfidf_baseline_chooses_c_on_val(shared_data: Path) -> None:
    data = load_p3(shared_data)
    result = tfidf_baseline(data.splits["train"], data.splits["val"], data.splits["test"], 24)
    assert 0.9 < result["accuracy"] < 1.0 and 0.9 < result["auc"] <= 1.0  # 0.934 measured on this split
    assert result["C"] in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def test_multiclass_metrics() -> None:
    labels = np.array([0, 1, 2, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])
    metrics = multiclass_metrics(labels, probabilities)
    assert metrics["accuracy"] == 0.75 and metrics["auc"] == 1.0


def test_bench_p3_command_compares_the_product_with_the_baselines(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p3.json"
    result = CliRunner().invoke(app, ["bench", "p3", "--data", str(shared_data), "--json", str(out), "--epochs", "2",
                                      "--text-epochs", "1", "--train-limit", "120", "--home", str(tmp_path),
                                      "--seeds", "0,1"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"product", "tfidf_lr", "frozen_minilm_lr"}
    product = report["results"]["product"]
    assert report["sizes"]["train"] == 120 and [r["seed"] for r in product["runs"]] == [0, 1]
    assert all(r["text_stage"]["epochs"] == 1 for r in product["runs"])
    assert product["accuracy"] == sum(r["accuracy"] for r in product["runs"]) / 2  # the mean over seeds
    assert product["min_accuracy"] == min(r["accuracy"] for r in product["runs"])
    assert all(r["lexical_weight"] is not None and "without_lexical" in r for r in product["runs"])
    for way in report["results"].values():
        assert 0.0 <= way["accuracy"] <= 1.0 and 0.0 <= way["macro_f1"] <= 1.0
    d = report["differences"]
    assert d["accuracy"] == report["results"]["product"]["accuracy"] - report["results"]["tfidf_lr"]["accuracy"]
    assert "P3" in result.stdout and "estimate:" in result.stderr and "seed 1" in result.stdout
    refused = CliRunner().invoke(app, ["bench", "p3", "--data", str(shared_data), "--seeds", ","])
    assert refused.exit_code == 1 and "at least one seed" in refused.stderr
