"""Writes of model versions and flow runs (re-exported by :mod:`db.repository`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import FlowRun, ModelVersion, utcnow

__all__ = ["fail_dead_runs", "finish_flow_run", "register_model_version", "start_flow_run", "update_model_metrics"]

_FINAL_STATUSES = ("completed", "failed")
"""Statuses a flow run may finish with."""


def register_model_version(
    session: Session,
    *,
    name: str,
    fusion: str,
    config: dict[str, Any],
    label_names: Sequence[str],
    metrics: dict[str, Any],
    checkpoint_path: str,
) -> int:
    """Record a trained model and return its version id.

    Args:
        session: An open session.
        name: Human-readable model name.
        fusion: Fusion strategy, e.g. ``poe`` / ``moe`` / ``mopoe``.
        config: The training config (JSON-serialisable).
        label_names: Class names in output order.
        metrics: Metrics per split, e.g. ``{"val": {"accuracy": 0.9}}``.
        checkpoint_path: Where the weights were saved.

    Returns:
        The new model version id.

    Raises:
        ValueError: If ``label_names`` is empty.
    """
    if not label_names:
        raise ValueError(f"model {name!r} has no label names: pass the class names in output order")
    version = ModelVersion(
        name=name,
        fusion=fusion,
        config=dict(config),
        label_names=[str(label) for label in label_names],
        metrics=dict(metrics),
        checkpoint_path=str(checkpoint_path),
    )
    session.add(version)
    session.flush()
    return version.id


def update_model_metrics(session: Session, model_version_id: int, metrics: dict[str, Any]) -> None:
    """Merge ``metrics`` into a model version's stored metrics (top-level keys are replaced).

    ``update_model_metrics(s, 3, {"test": {...}})`` adds test metrics and keeps the stored ``val`` ones.

    Raises:
        LookupError: If the model version does not exist.
    """
    version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise LookupError(f"model version {model_version_id} not found; list versions with `diagnosis models`")
    version.metrics = {**version.metrics, **metrics}
    session.flush()


def start_flow_run(session: Session, *, flow_name: str, prefect_run_id: str | None, hostname: str | None = None,
                   pid: int | None = None) -> int:
    """Record that a flow started (status ``running``) on ``hostname`` in process ``pid``; return the run's id."""
    run = FlowRun(flow_name=flow_name, prefect_run_id=prefect_run_id, status="running", counts={}, hostname=hostname,
                  pid=pid)
    session.add(run)
    session.flush()
    return run.id


def fail_dead_runs(session: Session, hostname: str, alive: Callable[[int], bool]) -> list[int]:
    """Mark ``running`` flow runs of this host whose process is gone as ``failed`` (killed or crashed).

    A process killed with ``kill -9`` cannot record its own end; the next run on the same machine does it.
    Runs of other hosts are left alone (their processes cannot be checked from here).

    Args:
        session: An open session.
        hostname: This machine's name, as recorded by :func:`start_flow_run`.
        alive: Whether a process id is still running here.

    Returns:
        Ids of the runs marked failed.
    """
    rows = session.execute(
        select(FlowRun).where(FlowRun.status == "running", FlowRun.hostname == hostname, FlowRun.pid.is_not(None))
    ).scalars()
    dead = [run for run in rows if not alive(int(run.pid))]  # type: ignore[arg-type]
    for run in dead:
        run.status = "failed"
        run.ended_at = utcnow()
        run.error = f"process {run.pid} on {hostname} ended without finishing (killed or crashed); its committed work is kept"
    session.flush()
    return [run.id for run in dead]


def finish_flow_run(
    session: Session,
    run_id: int,
    *,
    status: str,
    counts: Mapping[str, int],
    model_version_id: int | None = None,
    error: str | None = None,
) -> None:
    """Record how a flow run ended.

    Args:
        session: An open session.
        run_id: Id from :func:`start_flow_run`.
        status: ``completed`` or ``failed``.
        counts: Outcome counts, e.g. ``{"created": 10, "conflicts": 1}``.
        model_version_id: The model version the run trained or used, if any.
        error: What went wrong, for failed runs.

    Raises:
        ValueError: If ``status`` is not a flow-run status.
        LookupError: If the run does not exist.
    """
    if status not in _FINAL_STATUSES:
        raise ValueError(f"a finished flow run has status 'completed' or 'failed', got {status!r}")
    run = session.get(FlowRun, run_id)
    if run is None:
        raise LookupError(f"flow run {run_id} not found; start it with start_flow_run() first")
    run.status = status
    run.ended_at = utcnow()
    run.counts = {str(k): int(v) for k, v in counts.items()}
    run.model_version_id = model_version_id
    run.error = error
    session.flush()
