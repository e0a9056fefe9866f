"""Batch diagnosis under real operations: kill -9 and rerun, two runs at once on PostgreSQL, Dask, retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

import db
from db.models import Case, FlowRun, Prediction
from flows.cli import app

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()
CASES = 160


def run(home: Path, *args: str, url: str | None = None) -> str:
    """Run the CLI in-process and return stdout (the command must succeed)."""
    result = runner.invoke(app, ["--home", str(home), *(["--db", url] if url else []), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def cli_env() -> dict[str, str]:
    """Environment for a ``diagnosis`` subprocess: this session's Prefect server, no ephemeral one of its own."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def cli(home: Path, *args: str, url: str | None = None) -> subprocess.Popen[str]:
    """Start ``diagnosis`` as its own process group (so a kill reaches every child)."""
    command = [str(Path(sys.executable).parent / "diagnosis"), "--home", str(home), *(["--db", url] if url else []), *args]
    return subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=Path(__file__).resolve().parents[2])


def eligible_ids(url: str) -> set[int]:
    """Cases a diagnose run must predict: not rejected, not synthetic."""
    with db.session_scope(url) as session:
        return set(session.execute(select(Case.id).where(Case.status != "rejected", Case.is_synthetic.is_(False))).scalars())


def prediction_counts(url: str, model_version_id: int) -> dict[int, int]:
    """Case id -> number of prediction rows of the model version."""
    with db.session_scope(url) as session:
        rows = session.execute(select(Prediction.case_id, func.count()).where(Prediction.model_version_id == model_version_id)
                               .group_by(Prediction.case_id)).all()
    return dict(rows)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated dataset of :data:`CASES` cases."""
    data = tmp_path_factory.mktemp("data")
    run(data, "generate", str(data / "synthetic"), "--cases", str(CASES), "--seed", "11")
    return data / "synthetic" / "manifest.csv"


@pytest.fixture(scope="module")
def store(home: Path, db_url: str, manifest: Path, tiny_text_model: Path) -> tuple[Path, str, int]:
    """(home, url, model version id): the dataset ingested into SQLite and a small model trained on it."""
    run(home, "ingest", str(manifest))
    out = run(home, "train", "--epochs", "1", "--text-model", str(tiny_text_model), "--image-members", "1")
    return home, db_url, int(out.split("model version")[1].split()[0])


def new_model_version(url: str, like: int, source_url: str | None = None) -> int:
    """Register another version with the same checkpoint (so a test starts with every case pending)."""
    with db.session_scope(source_url or url) as session:
        base = db.get_model_version(session, like)
    with db.session_scope(url) as session:
        return db.register_model_version(session, name=f"copy-of-{like}", fusion=base.fusion, config={},
                                         label_names=base.label_names, metrics={}, checkpoint_path=base.checkpoint_path)


def test_kill_9_mid_run_then_rerun_predicts_every_case_exactly_once(store: tuple[Path, str, int]) -> None:
    home, url, base = store
    version = new_model_version(url, base)
    expected = eligible_ids(url)
    process = cli(home, "diagnose", "--model", str(version), "--batch-size", "4")
    deadline = time.monotonic() + 180
    stored = 0
    while time.monotonic() < deadline and process.poll() is None:
        stored = sum(prediction_counts(url, version).values())
        if stored > 0:
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {process.stderr.read()}"
    after_kill = prediction_counts(url, version)
    assert 0 < len(after_kill) < len(expected), "the kill must land mid-run"
    assert set(after_kill.values()) == {1}

    rerun = json.loads(run(home, "diagnose", "--model", str(version), "--batch-size", "4"))
    counts = prediction_counts(url, version)
    assert set(counts) == expected and set(counts.values()) == {1}
    assert rerun["predicted"] == len(expected) - len(after_kill)  # only what the killed run had not committed
    assert rerun["failed"] == 0
    with db.session_scope(url) as session:  # the killed run could not record its end: the rerun did
        runs = session.execute(select(FlowRun).where(FlowRun.flow_name == "diagnose").order_by(FlowRun.id)).scalars().all()
        killed, last = runs[-2], runs[-1]
        assert killed.status == "failed" and "killed or crashed" in killed.error and killed.pid == process.pid
        assert last.status == "completed" and last.counts["predicted"] == rerun["predicted"]


def test_a_transient_store_error_is_retried_and_cached_embeddings_are_reused(store: tuple[Path, str, int],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from diagnosis.features import TextEncoder
    from flows.diagnose import diagnose_flow

    home, url, base = store
    version = new_model_version(url, base)
    calls: list[int] = []
    save = db.save_predictions

    def flaky(session, rows):  # noqa: ANN001, ANN202 - same signature as db.save_predictions
        calls.append(len(rows))
        if len(calls) == 1:
            raise OperationalError("INSERT INTO predictions …", {}, Exception("database is locked"))
        return save(session, rows)

    def no_model(self, texts):  # noqa: ANN001, ANN202
        pytest.fail(f"{len(texts)} texts re-embedded: training embedded them all, the cache must answer")

    monkeypatch.setattr(db, "save_predictions", flaky)
    monkeypatch.setattr(TextEncoder, "_embed", no_model)
    result = diagnose_flow(url, str(home), model=str(version), batch_size=1000)
    assert len(calls) == 2 and calls[0] == calls[1]  # the same chunk, rolled back and retried
    expected = eligible_ids(url)
    assert result["predicted"] == len(expected) and set(prediction_counts(url, version)) == expected
    assert set(result["seconds"]) >= {"claim", "read_images", "embed_text", "model", "store", "total"}


def test_chunks_are_read_ahead_at_most_two_deep_and_a_case_changed_since_is_read_again(
        store: tuple[Path, str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import flows.diagnose as diagnose
    import flows.diagnose_chunk as chunks_module
    from db.models import SymptomNote

    home, url, base = store
    version = new_model_version(url, base)
    events: list[tuple[str, int]] = []  # ("read" | "chunk", chunk number), in the order they happened
    texts_read_here: list[list[str | None]] = []  # build_features calls outside the reader thread
    read, chunk, build = diagnose.read_ahead, diagnose.diagnose_chunk, chunks_module.build_features

    def reading(ids, job):  # noqa: ANN001, ANN202 - same signature as read_ahead
        ahead = read(ids, job)
        events.append(("read", sum(e == "read" for e, _ in events)))
        if sum(e == "read" for e, _ in events) == 2:  # the second chunk's first case changes after it was read, before its claim
            with db.session_scope(url) as session:
                note = session.execute(select(SymptomNote).where(SymptomNote.case_id == ahead.cases[0].id)).scalar_one()
                note.text = "changed after the read-ahead: cough and fever"
        return ahead

    def chunking(ids, job, ahead):  # noqa: ANN001, ANN202
        events.append(("chunk", sum(e == "chunk" for e, _ in events)))
        return chunk(ids, job, ahead)

    def building(cases, *args, **kwargs):  # noqa: ANN001, ANN202
        if threading.current_thread().name != "diagnose-reader":
            texts_read_here.append([c.text for c in cases])
        return build(cases, *args, **kwargs)

    monkeypatch.setattr(diagnose, "read_ahead", reading)
    monkeypatch.setattr(diagnose, "diagnose_chunk", chunking)
    monkeypatch.setattr(chunks_module, "build_features", building)
    result = diagnose.diagnose_flow(url, str(home), model=str(version), batch_size=16)
    expected = eligible_ids(url)
    assert result["predicted"] == len(expected) and set(prediction_counts(url, version).values()) == {1}
    assert set(prediction_counts(url, version)) == expected
    chunks = [n for e, n in events if e == "chunk"]
    assert chunks == list(range(len(chunks))) and len(chunks) == -(-len(expected) // 16)
    for at, (kind, n) in enumerate(events):  # reads finished before chunk n started: at most n + 2
        if kind == "chunk":
            assert sum(e == "read" for e, _ in events[:at]) <= n + 2
    assert len(texts_read_here) == 1 and "changed after the read-ahead: cough and fever" in texts_read_here[0]


def test_a_bug_is_not_retried_and_the_run_is_recorded_failed(store: tuple[Path, str, int],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.diagnose import diagnose_flow

    home, url, base = store
    version = new_model_version(url, base)
    calls: list[int] = []

    def broken(session, rows):  # noqa: ANN001, ANN202
        calls.append(len(rows))
        raise ValueError("prediction for case 1 has non-finite latent values")

    monkeypatch.setattr(db, "save_predictions", broken)
    with pytest.raises(ValueError, match="non-finite"):
        diagnose_flow(url, str(home), model=str(version), batch_size=1000)
    assert len(calls) == 1
    assert prediction_counts(url, version) == {}  # the chunk rolled back whole
    with db.session_scope(url) as session:
        last = session.execute(select(FlowRun).order_by(FlowRun.id.desc()).limit(1)).scalar_one()
        assert last.flow_name == "diagnose" and last.status == "failed" and "non-finite" in last.error


def test_dask_task_runner_on_a_local_cluster(store: tuple[Path, str, int]) -> None:
    home, url, base = store
    version = new_model_version(url, base)
    result = json.loads(run(home, "diagnose", "--model", str(version), "--batch-size", "50", "--task-runner", "dask",
                            "--dask-workers", "2"))
    expected = eligible_ids(url)
    assert result["predicted"] == len(expected) and result["failed"] == 0
    counts = prediction_counts(url, version)
    assert set(counts) == expected and set(counts.values()) == {1}


@pytest.mark.postgres
def test_two_runs_at_once_on_postgresql_neither_duplicate_nor_skip(store: tuple[Path, str, int], manifest: Path,
                                                                   pg_database: Callable[[str], str],
                                                                   tmp_path: Path) -> None:
    home, sqlite_url, base = store
    url = pg_database("orchestration")
    run(tmp_path, "ingest", str(manifest), url=url)
    version = new_model_version(url, base, source_url=sqlite_url)
    runs = [cli(home, "diagnose", "--model", str(version), "--batch-size", "4", url=url) for _ in range(2)]
    outputs = []
    for process in runs:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    expected = eligible_ids(url)
    counts = prediction_counts(url, version)
    assert set(counts) == expected and set(counts.values()) == {1}
    assert sum(o["predicted"] for o in outputs) == len(expected)  # no case predicted by both runs
    db.dispose_engines()
