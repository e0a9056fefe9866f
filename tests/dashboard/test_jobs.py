"""The dashboard's job launchers start the real CLI commands (here a stand-in executable that records its call)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

import db
from dashboard import jobs


@pytest.fixture()
def fake_diagnosis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``diagnosis`` stand-in that writes its arguments and the store URL it was given to a file."""
    record = tmp_path / "calls.txt"
    script = tmp_path / "diagnosis"
    script.write_text(f'#!/bin/sh\necho "$@ | $DIAGNOSIS_DATABASE_URL" >> {record}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(jobs, "_diagnosis_executable", lambda: str(script))
    jobs.augment_command.clear()
    yield record
    jobs.augment_command.clear()


def _wait_for(path: Path, lines: int) -> list[str]:
    deadline = time.time() + 20
    while time.time() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= lines:
            return path.read_text().splitlines()
        time.sleep(0.1)
    raise AssertionError(f"the job did not run: {path} has fewer than {lines} lines")


def test_generate_more_starts_diagnosis_augment_and_audits_it(store, fake_diagnosis: Path, tmp_path: Path) -> None:  # noqa: ANN001
    log = jobs.launch_augment(store.url, store.admin, "pneumothorax", 12, tmp_path / "logs")
    calls = _wait_for(fake_diagnosis, 2)  # the probe (`augment --help`), then the job
    assert calls[0].startswith("augment --help") and calls[1] == f"augment --label pneumothorax --n 12 --generator vae | {store.url}"
    assert log.parent == tmp_path / "logs"
    with db.session_scope(store.url) as session:
        [row] = [a for a in db.audit_log(session) if a.action == "augment"]
    assert row.username == store.admin and row.after == {"label": "pneumothorax", "n": 12, "generator": "vae"}


def test_compute_views_starts_diagnosis_reconstruct(store, fake_diagnosis: Path, tmp_path: Path) -> None:  # noqa: ANN001
    jobs.launch_reconstruct(store.url, store.image_2d, 2, tmp_path / "logs")
    assert _wait_for(fake_diagnosis, 1) == [f"reconstruct {store.image_2d} --model 2 | {store.url}"]
    assert os.path.isfile(tmp_path / "logs" / "reconstruct.log")
