"""Evaluation from stored predictions against labels (synthetic cases never count)."""

from __future__ import annotations

from prefect import flow

from flows.scoring import evaluate_model
from flows.tracking import recorded_run

__all__ = ["evaluate_flow", "evaluate_model"]


@flow(name="evaluate")
def evaluate_flow(db_url: str, model: str = "latest", split: str | None = "test") -> dict:
    """Evaluate stored predictions and record the run (see :func:`evaluate_model`)."""
    with recorded_run(db_url, "evaluate") as run:
        report = evaluate_model(db_url, model, split)
        run.model_version_id = report["model_version_id"]
        run.add(evaluated=report["n"], excluded=report["excluded"])
        return report
