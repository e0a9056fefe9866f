"""Benchmark P5 end to end on a small training subset: every way, both generators' in-class shares, means over
seeds, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from diagnosis.benchmarks import P5_WAYS
from flows.cli import app


def test_bench_p5_compares_the_vae_and_the_gan_as_rare_class_generators(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p5.json"
    result = CliRunner().invoke(app, ["bench", "p5", "--data", str(shared_data), "--json", str(out), "--seeds", "0,1",
                                      "--epochs", "1", "--image-epochs", "1", "--text-epochs", "0", "--gan-steps", "60",
                                      "--train-limit", "400", "--home", str(tmp_path)], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert tuple(report["results"]) == P5_WAYS and len(report["runs"]) == 2  # every way, one run per seed
    assert report["counts"]["test"] == {"normal": 234, "pneumonia": 390}  # P2's data: test unchanged
    for way, metrics in report["results"].items():
        runs = [r["ways"][way] for r in report["runs"]]
        assert metrics["auc"] == sum(r["auc"] for r in runs) / 2  # the mean over seeds
        assert 0.0 <= metrics["recall"]["normal"] <= 1.0 and metrics["sd"]["macro_f1"] >= 0.0 and metrics["seconds"] > 0
    gan = report["runs"][0]["ways"]["gan_augment"]["latents"]
    assert gan["synthetic"][0] > 0 and gan["real"][0] + gan["synthetic"][0] == gan["real"][1]  # the rare class at parity
    for kind in ("vae", "gan"):
        shares = report["generators"][kind]
        assert set(shares["per_class"]) == {"normal", "pneumonia"} and 0.0 <= shares["in_class"] <= 1.0
    assert set(report["generators"]["gan"]["diversity"]) == {"normal", "pneumonia"}
    assert 0.5 < report["checker"]["test_accuracy"] <= 1.0
    assert "gan_augment+class_weights" in result.stdout and "estimate:" in result.stderr
