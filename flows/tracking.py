"""Recording every flow run in the store (name, Prefect run id, times, counts, status)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil
from prefect.runtime import flow_run

import db

__all__ = ["RunRecord", "recorded_run"]

logger = logging.getLogger("flows")


@dataclass
class RunRecord:
    """Mutable counts and model version that the flow fills in while it runs."""

    id: int
    counts: dict[str, int] = field(default_factory=dict)
    model_version_id: int | None = None

    def add(self, **counts: int) -> None:
        """Add to the named counters."""
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)


@contextmanager
def recorded_run(db_url: str, flow_name: str) -> Iterator[RunRecord]:
    """Store a ``flow_runs`` row for the enclosed work; marks it failed (and re-raises) on error."""
    db.migrate(db_url)
    host = socket.gethostname()
    with db.session_scope(db_url) as session:
        for dead in db.fail_dead_runs(session, host, psutil.pid_exists):
            logger.warning("flow run %d had been killed or had crashed: marked failed (its committed work is kept)", dead)
        run_id = db.start_flow_run(session, flow_name=flow_name, prefect_run_id=flow_run.get_id(), hostname=host,
                                   pid=os.getpid())
    record = RunRecord(id=run_id)
    try:
        yield record
    except BaseException as error:
        with db.session_scope(db_url) as session:
            db.finish_flow_run(
                session, run_id, status="failed", counts=record.counts, model_version_id=record.model_version_id,
                error=f"{type(error).__name__}: {str(error)[:500]}",
            )
        raise
    with db.session_scope(db_url) as session:
        db.finish_flow_run(session, run_id, status="completed", counts=record.counts, model_version_id=record.model_version_id)
    logger.info("%s finished: %s", flow_name, ", ".join(f"{k}={v}" for k, v in record.counts.items()) or "nothing to do")
