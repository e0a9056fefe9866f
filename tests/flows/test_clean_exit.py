"""SIGTERM to a flow command stops everything it started: Prefect's temporary server is not left behind (#18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from diagnosis.synthetic import SyntheticConfig, generate_dataset

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "diagnosis"
SERVER_WAIT_S = 120  # Prefect's temporary server starting on a busy machine


def _run(home: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([str(CLI), "--home", str(home), *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _own_server_env() -> dict[str, str]:
    """The environment without a Prefect API URL: the command starts its own temporary server."""
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding 60 ingested synthetic cases."""
    home = tmp_path_factory.mktemp("clean-exit")
    manifest = generate_dataset(home / "data", SyntheticConfig(cases=60, seed=3))
    done = _run(home, "ingest", str(manifest), env=_own_server_env())
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    return home


@pytest.mark.parametrize("command", [("train", "--epochs", "50"), ("diagnose",)])
def test_sigterm_leaves_no_process_behind(ingested: Path, command: tuple[str, ...]) -> None:
    process = _run(ingested, *command, env=_own_server_env())
    parent = psutil.Process(process.pid)
    deadline, children = time.monotonic() + SERVER_WAIT_S, []
    while time.monotonic() < deadline and process.poll() is None:
        children = parent.children(recursive=True)
        if any("uvicorn" in " ".join(child.cmdline()) for child in children if child.is_running()):
            break
        time.sleep(0.2)
    assert process.poll() is None, f"{command[0]} ended before its Prefect server started: {process.communicate()}"
    assert children, "no child process appeared"
    time.sleep(1.0)  # into the run
    children = parent.children(recursive=True)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in alive]
