"""Flow runs: started, finished or failed (also when their process died), and listed newest first."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import FlowRun, utcnow

__all__ = [
    "FlowRunView",
    "fail_dead_runs",
    "finish_flow_run",
    "list_flow_runs",
    "start_flow_run",
]


@dataclass(frozen=True)
class FlowRunView:
    """One recorded flow run."""

    id: int
    flow_name: str
    prefect_run_id: str | None
    started_at: datetime
    ended_at: datetime | None
    status: str
    counts: dict[str, int]
    model_version_id: int | None
    error: str | None


_FINAL_STATUSES = ("completed", "failed")
"""Statuses a flow run may finish with."""


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


def list_flow_runs(session: Session, limit: int = 50) -> list[FlowRunView]:
    """The most recent flow runs, newest first."""
    rows = session.execute(select(FlowRun).order_by(FlowRun.id.desc()).limit(limit)).scalars()
    return [
        FlowRunView(
            id=r.id,
            flow_name=r.flow_name,
            prefect_run_id=r.prefect_run_id,
            started_at=r.started_at,
            ended_at=r.ended_at,
            status=r.status,
            counts=dict(r.counts),
            model_version_id=r.model_version_id,
            error=r.error,
        )
        for r in rows
    ]
