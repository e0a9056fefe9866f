"""``diagnosis bench store|train|throughput|memory`` at tiny sizes, and memory that stays flat on a streamed run."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

import db
from flows.cli import app


def _run(args: list[str], out: Path) -> dict:
    result = CliRunner().invoke(app, ["bench", *args, "--json", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.mark.postgres
def test_bench_store_times_bulk_writes_and_the_dashboard(tmp_path: Path) -> None:
    report = _run(["store", "--rows", "300", "--batch", "128,300", "--dashboard-cases", "200", "--repeat", "1"], tmp_path / "s.json")
    assert set(report["writes"]) == {"sqlite", "postgresql"}
    for runs in report["writes"].values():
        assert [w["batch"] for w in runs] == [128, 300]
        assert all(w["stored"] == 300 and w["insert_rows_per_s"] > 0 and w["update_rows_per_s"] > 0 for w in runs)
    assert report["dashboard"]["cases"] == 200
    assert all(t["p50_ms"] > 0 for t in report["dashboard"]["timings"].values())


def test_bench_train_times_each_variant(tmp_path: Path, tiny_text_model: Path) -> None:
    report = _run(["train", "--cases", "80", "--epochs", "2", "--fusion", "poe,concat", "--workers", "0",
                   "--text-model", str(tiny_text_model), "--work-dir", str(tmp_path / "work")], tmp_path / "t.json")  # fmt: skip
    assert report["cases"] == 80 and set(report["results"]) == {"poe", "concat"}
    for result in report["results"].values():
        assert len(result["epoch_s"]) == 2 and result["seconds_per_epoch"] > 0 and result["samples_per_s"] > 0


@pytest.mark.usefixtures("prefect_server")
def test_bench_throughput_compares_end_to_end_with_the_models(tmp_path: Path, tiny_text_model: Path) -> None:
    report = _run(["throughput", "--cases", "80", "--epochs", "1", "--batch-size", "32", "--workers", "1", "--repeats", "2",
                   "--text-model", str(tiny_text_model), "--work-dir", str(tmp_path / "work")], tmp_path / "p.json")  # fmt: skip
    cold, warm, raw = report["e2e_cold"], report["e2e_warm"], report["raw"]
    assert report["cases"] == 80 and cold["predicted"] == 80 and warm["predicted"] == 80 and cold["failed"] == 0
    assert cold["stages"]["embed_text"] > warm["stages"]["embed_text"]  # the warm run reads the text cache
    assert {"claim", "read_images", "embed_text", "model", "store"} <= set(cold["stages"])
    assert raw["cases"] == 80 and raw["text_s"] > 0 and raw["model_s"] > 0
    assert report["ratio"] == pytest.approx(cold["cases_per_s"] / raw["cases_per_s"])
    assert len(report["ratios"]) == len(report["pairs"]) == 2 and report["ratio"] in report["ratios"]
    for pair in report["pairs"]:  # every cold run embeds every text (a fresh home is a fresh cache)
        assert pair["e2e_cold_s"] > 0 and pair["raw_s"] > 0 and pair["e2e_embed_s"] > 2 * warm["stages"]["embed_text"]


@pytest.mark.usefixtures("prefect_server")
def test_bench_memory_measures_each_size_in_a_subprocess(tmp_path: Path, tiny_text_model: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import get_current_settings

    monkeypatch.setenv("PREFECT_API_URL", str(get_current_settings().api.url))  # the subprocesses use the test server
    report = _run(["memory", "--sizes", "40,120", "--train-cases", "80", "--batch-size", "32", "--device", "cpu",
                   "--text-model", str(tiny_text_model), "--work-dir", str(tmp_path / "work")], tmp_path / "m.json")  # fmt: skip
    assert [r["cases"] for r in report["runs"]] == [40, 120]
    assert all(r["predicted"] == r["cases"] and r["peak_rss_mib"] > 50 for r in report["runs"])
    assert 0.5 < report["ratio"] < 1.5


@pytest.mark.usefixtures("prefect_server")
def test_streamed_diagnosis_keeps_memory_flat(tmp_path: Path, tiny_text_model: Path) -> None:
    """Python-tracked memory (numpy arrays included) peaks at one chunk, not at the number of cases."""
    from flows.cli.bench.memory import fill_cases, pool_embeddings
    from flows.cli.bench.perf import trained_store
    from flows.diagnose import diagnose_flow

    trained = trained_store(tmp_path / "train", 80, 1, tiny_text_model, "cpu")
    with db.session_scope(trained.db_url) as session:
        pool = [c for chunk in db.iter_case_inputs(session) for c in chunk if c.image_path and c.text]
    vectors = pool_embeddings(trained, [c.text for c in pool])
    peaks = {}
    for n in (40, 300, 800):  # the first run loads the model and the text encoder; from 300 (6 chunks) on, the
        # pipeline is full (chunks being stored and predicted, up to two read ahead): what differs between them grows
        home = tmp_path / f"cases-{n}"
        version = fill_cases(home, trained.version, pool, n, vectors)
        gc.collect()
        tracemalloc.start()
        result = diagnose_flow(db.default_sqlite_url(home), str(home), model=str(version), batch_size=50, device="cpu")
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result["predicted"] == n
    per_case = 4 * (32 * 32 + 32)  # float32 image on the 32-pixel grid + tiny text embedding, per case
    assert peaks[800] - peaks[300] < 0.5 * 500 * per_case, peaks  # holding every case would add at least 500 * per_case


def test_bench_text_compares_the_runtimes_on_the_same_texts(tmp_path: Path, tiny_text_model: Path) -> None:
    """float32 PyTorch against ONNX int8: speeds of both, the ratio, and how close the int8 vectors stay."""
    data = tmp_path / "data"
    data.mkdir()
    lines = ["label,text"] + [f"Flu,I have had a cough and a fever for {n} days and my chest hurts" for n in range(12)]
    (data / "symptom2disease.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _run(["text", "--data", str(data), "--repeats", "1", "--batch-size", "4", "--text-model", str(tiny_text_model)],
                  tmp_path / "x.json")  # fmt: skip
    assert report["texts"] == 12 and set(report["runtimes"]) == {"torch", "onnx-int8"}
    assert all(r["texts_per_s"] > 0 and len(r["seconds"]) == 1 for r in report["runtimes"].values())
    assert report["speedup"] > 0 and 0.99 < report["cosine"]["mean"] <= 1.0 + 1e-6
    missing = CliRunner().invoke(app, ["bench", "text", "--data", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "symptom2disease.csv not found" in missing.output
