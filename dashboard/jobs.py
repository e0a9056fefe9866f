"""Admin jobs the dashboard may start: ``diagnosis augment`` as a separate process (the dashboard runs no model)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import streamlit as st

import db

__all__ = ["augment_command", "launch_augment", "launch_reconstruct"]

PROBE_TIMEOUT_S = 120  # `diagnosis augment --help` imports the CLI; a busy machine is slow


def _diagnosis_executable() -> str | None:
    """The ``diagnosis`` console script of this environment, else the one on the PATH."""
    beside = Path(sys.executable).with_name("diagnosis")
    return str(beside) if beside.is_file() else shutil.which("diagnosis")


@st.cache_data(ttl=600, show_spinner="Checking for `diagnosis augment`…")
def augment_command() -> tuple[str, ...] | None:
    """``(diagnosis, augment)`` if this installation has that command, else ``None``."""
    executable = _diagnosis_executable()
    if executable is None:
        return None
    try:
        probe = subprocess.run([executable, "augment", "--help"], capture_output=True, timeout=PROBE_TIMEOUT_S,
                               check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (executable, "augment") if probe.returncode == 0 else None


def launch_augment(url: str, username: str, label: str, n: int, log_dir: Path, generator: str = "vae") -> Path:
    """Start ``diagnosis augment --label LABEL --n N --generator G`` in the background and audit who started it.

    Args:
        url: The store URL (passed to the job and used for the audit row).
        username: The admin who asked for it.
        label: Diagnosis to generate samples of.
        n: Number of samples.
        log_dir: Folder for the job's log file.
        generator: ``vae`` or ``gan`` (see ``diagnosis augment --help``).

    Returns:
        The log file of the started job.

    Raises:
        FileNotFoundError: If the installation has no ``diagnosis augment`` command.
    """
    command = augment_command()
    if command is None:
        raise FileNotFoundError("`diagnosis augment` is not available in this installation")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"augment-{label}.log"
    env = {**os.environ, "DIAGNOSIS_DATABASE_URL": url}
    with log.open("ab") as out:
        subprocess.Popen([*command, "--label", label, "--n", str(n), "--generator", generator], stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                         env=env, start_new_session=True)  # fmt: skip
    with db.session_scope(url) as session:
        db.append_audit(session, username=username, action="augment", after={"label": label, "n": n, "generator": generator})
    return log


def launch_reconstruct(url: str, case_key: str, model_version_id: int, log_dir: Path) -> Path:
    """Start ``diagnosis reconstruct CASE --model ID`` in the background; returns its log file.

    Raises:
        FileNotFoundError: If the installation has no ``diagnosis`` command.
    """
    executable = _diagnosis_executable()
    if executable is None:
        raise FileNotFoundError("the `diagnosis` command is not available in this installation")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "reconstruct.log"
    env = {**os.environ, "DIAGNOSIS_DATABASE_URL": url}
    with log.open("ab") as out:
        subprocess.Popen([executable, "reconstruct", case_key, "--model", str(model_version_id)], stdout=out,  # noqa: S603
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    return log
