"""The MultiVae side-by-side: our half on tiny data, the command's guard, and the real peer run (opt-in, slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from diagnosis.benchmarks.peer import latent_accuracy, run_peer, train_ours
from diagnosis.features import FeatureTable
from flows.cli import app

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-multivae" / "bin" / "python"


def _tables(n: int = 96) -> dict[str, FeatureTable]:
    rng = np.random.default_rng(0)
    out = {}
    for split, size in (("train", n), ("test", n // 2)):
        labels = rng.integers(0, 2, size)
        images = (rng.random((size, 1, 32, 32)) * 0.3).astype(np.float32)
        images[labels == 1, :, 8:20, 8:20] += 0.7
        text = (rng.normal(size=(size, 16)) * 0.5 + labels[:, None]).astype(np.float32)
        ones = np.ones(size, dtype=bool)
        out[split] = FeatureTable({"image": images, "text": text}, {"image": ones, "text": ones.copy()}, labels.astype(np.int64))
    return out


def test_latent_accuracy_separates_separable_latents() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    mu = rng.normal(size=(200, 4)) + y[:, None] * 4
    assert latent_accuracy(mu[:150], y[:150], mu[150:], y[150:]) > 0.95


def test_our_unsupervised_mopoe_latents_carry_the_class() -> None:
    ours = train_ours(_tables(), latent_dim=8, batch_size=32, epochs=3, device=torch.device("cpu"))
    assert ours["seconds_per_epoch"] > 0 and ours["accuracy"] > 0.8


def test_ours_sampled_and_full_objective_side_by_side_without_the_peer() -> None:
    report = run_peer(_tables(), None, latent_dim=8, batch_size=32, epochs=2)
    assert "multivae" not in report and "seconds_ratio" not in report
    for key in ("ours", "ours_full"):
        assert report[key]["seconds_per_epoch"] > 0 and 0 <= report[key]["accuracy"] <= 1
    assert report["sampled_over_full"] == pytest.approx(report["ours"]["seconds_per_epoch"] / report["ours_full"]["seconds_per_epoch"])
    json.dumps(report)


def test_command_explains_how_to_build_the_peer_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "multivae", "--python", str(tmp_path / "none" / "python")])
    assert result.exit_code == 1 and ".ci/multivae-env" in result.output and "--ours-only" in result.output


@pytest.mark.slow
@pytest.mark.skipif(not PEER_PYTHON.is_file(), reason="no MultiVae environment: bash .ci/multivae-env")
def test_peer_run_end_to_end() -> None:
    report = run_peer(_tables(), str(PEER_PYTHON), latent_dim=8, batch_size=32, epochs=2)
    assert report["multivae"]["seconds_per_epoch"] > 0 and 0 <= report["multivae"]["accuracy"] <= 1
    assert report["seconds_ratio"] == pytest.approx(report["ours"]["seconds_per_epoch"] / report["multivae"]["seconds_per_epoch"])
    json.dumps(report)
