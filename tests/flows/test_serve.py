"""``diagnosis serve`` as operations run it: its own Prefect server on loopback, cron deployments, --once, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

import db
from flows.cli import app

DIAGNOSIS = str(Path(sys.executable).parent / "diagnosis")
DEPLOYMENTS = {"ingest-inbox": "*/15 * * * *", "retrain": "0 3 * * 0", "diagnose-pending": "0 2 * * *"}  # defaults
CASES = 60


def serve_env() -> dict[str, str]:
    """A ``serve`` subprocess's environment: no Prefect server given (it starts its own), Prefect state under
    ``<home>/prefect``, a retrain of one epoch per stage (packaged MiniLM texts), a runner that polls every 2 s."""
    env = {k: v for k, v in os.environ.items() if k not in {"PREFECT_API_URL", "PREFECT_HOME", "DIAGNOSIS_DATABASE_URL"}}
    env.update(DIAGNOSIS_RETRAIN_EPOCHS="1", PREFECT_RUNNER_POLL_FREQUENCY="2")
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose inbox holds a generated manifest and a broken one (both older than the settle time)."""
    home = tmp_path_factory.mktemp("serve-home")
    inbox = home / "inbox"
    result = CliRunner().invoke(app, ["generate", str(inbox / "batch-1"), "--cases", str(CASES), "--seed", "11"])
    assert result.exit_code == 0, result.output
    (inbox / "broken").mkdir()
    (inbox / "broken" / "manifest.csv").write_text("id,text\n1,cough\n")  # no case_id column: unreadable
    past = time.time() - 60
    for manifest in inbox.rglob("*.csv"):
        os.utime(manifest, (past, past))
    return home


@pytest.fixture(scope="module")
def once(home: Path) -> dict[str, Any]:
    """The JSON summary of ``diagnosis serve --once`` on a fresh store."""
    done = subprocess.run([DIAGNOSIS, "--home", str(home), "serve", "--once"], env=serve_env(),
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(r"running 3 deployments on http://127\.0\.0\.1:\d+/api", done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_once_registers_the_cron_deployments_and_runs_each(once: dict[str, Any]) -> None:
    deployments = once["deployments"]
    assert list(deployments) == list(DEPLOYMENTS)  # pipeline order: ingest, retrain, diagnose
    for name, cron in DEPLOYMENTS.items():
        entry = deployments[name]
        assert entry["schedules"] == [{"cron": cron, "timezone": None, "active": True}], name  # as the server has it
        assert entry["state"] == "COMPLETED", entry
    ingest = deployments["ingest-inbox"]["result"]
    assert (ingest["manifests_new"], ingest["manifests_ingested"], ingest["manifests_failed"]) == (2, 1, 1)
    assert ingest["created"] == CASES
    retrain = deployments["retrain"]["result"]
    assert retrain["promoted"] and retrain["incumbent_id"] is None and retrain["val_cases"] > 0
    assert deployments["diagnose-pending"]["result"]["predicted"] >= CASES * 0.9


def test_once_fills_the_store(once: dict[str, Any], home: Path) -> None:
    url = f"sqlite:///{home / 'diagnosis.db'}"
    with db.session_scope(url) as session:
        assert db.count_cases(session) == CASES
        latest = db.get_model_version(session, "latest")
        decision = db.list_promotions(session)[0]
        inbox = {Path(m.path).parent.name: m for m in db.list_inbox_manifests(session)}
        diagnosed = db.list_cases(session, status="diagnosed", limit=None)
    assert latest.id == decision.candidate_id == once["deployments"]["retrain"]["result"]["candidate_id"]
    train = latest.config["train"]  # DIAGNOSIS_RETRAIN_EPOCHS=1 caps every stage
    assert (train["epochs"], train["image_stage"]["epochs"], train["text_stage"]["epochs"]) == (1, 1, 1)
    assert decision.metric == "val_macro_auc" and decision.candidate_score is not None and decision.promoted
    assert inbox["batch-1"].error is None and inbox["batch-1"].counts["created"] == CASES
    assert "case_id" in inbox["broken"].error  # recorded with its error; the other manifest went on
    assert len(diagnosed) >= CASES * 0.9 and all(c.predicted_by == latest.id for c in diagnosed)


def test_invalid_settings_are_refused_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAGNOSIS_RETRAIN_CRON", "every sunday")
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", "--once"])
    assert result.exit_code == 1 and "DIAGNOSIS_RETRAIN_CRON='every sunday' is not a cron expression" in result.output
    assert not (tmp_path / "prefect" / "server.log").exists()  # no server was started
    unknown = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", "--only", "nightly"])
    assert unknown.exit_code == 1 and "unknown deployment nightly" in unknown.output
    monkeypatch.setenv("DIAGNOSIS_RETRAIN_EPOCHS", "ten")
    epochs = CliRunner().invoke(app, ["--home", str(tmp_path), "serve"])
    assert epochs.exit_code == 1 and "DIAGNOSIS_RETRAIN_EPOCHS='ten'" in epochs.output


async def _served_deployments(api_url: str) -> dict[str, list[str]]:
    """Deployment name -> cron schedules, read from the live server with Prefect's client."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.sorting import DeploymentSort

    async with PrefectClient(api_url) as client:
        deployments = await client.read_deployments(limit=50, sort=DeploymentSort.NAME_ASC)
    return {d.name: [s.schedule.cron for s in d.schedules] for d in deployments}


async def _run_now(api_url: str, deployment: str, timeout: float = 120) -> tuple[str, Any]:
    """Create a run of ``flow/deployment`` now and wait until the serving runner has finished it."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        target = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(target.id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                return run.state.type.value, await run.state.aresult(raise_on_failure=False)
            await asyncio.sleep(1)
    raise AssertionError(f"{deployment} did not finish within {timeout} s")


@pytest.fixture
def serving(home: Path, once: dict[str, Any]) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """``diagnosis serve`` (no --once) on the store filled above, once it reports ready: process, API URL, server pid."""
    log = home / "serve.stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen([DIAGNOSIS, "--home", str(home), "serve"], env=serve_env(),
                                   stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not re.search(r"server pid \d+", log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.5)
        text = log.read_text()
        api_url = re.search(r"serving 3 deployments on (http://127\.0\.0\.1:\d+/api)", text).group(1)
        yield process, api_url, int(re.search(r"server pid (\d+)", text).group(1))
    finally:
        if process.poll() is None:  # the test failed before its SIGTERM
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_served_deployment_runs_and_sigterm_stops_runner_and_server(
    serving: tuple[subprocess.Popen[str], str, int], home: Path
) -> None:
    process, api_url, server_pid = serving
    assert asyncio.run(_served_deployments(api_url)) == {name: [cron] for name, cron in DEPLOYMENTS.items()}
    state, result = asyncio.run(_run_now(api_url, "inbox/ingest-inbox"))
    assert state == "COMPLETED"
    assert (result["manifests_skipped"], result["manifests_ingested"], result["manifests_failed"]) == (1, 0, 1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    assert "stopped: runner and server shut down" in (home / "serve.stderr").read_text()


def test_a_dask_address_in_the_settings_sends_scheduled_diagnosis_to_dask(tmp_path: Path) -> None:
    from diagnosis.settings import Settings
    from flows.serve import scheduled_flows

    local = {f.name: f.parameters for f in scheduled_flows(Settings(home=tmp_path))}
    assert "task_runner" not in local["diagnose-pending"]
    remote = {f.name: f.parameters for f in scheduled_flows(Settings(home=tmp_path, dask_address="tcp://10.0.0.5:8786"))}
    assert remote["diagnose-pending"]["task_runner"] == "dask"
    assert remote["diagnose-pending"]["dask_address"] == "tcp://10.0.0.5:8786"
