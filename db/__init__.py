"""The diagnosis store: cases, predictions, model versions and flow runs in SQLite or PostgreSQL.

Flows write through :mod:`db.repository`; the CLI and the dashboard read through :mod:`db.queries`,
which returns frozen dataclasses. :func:`migrate` brings any database URL to the current schema.

Examples:
    >>> from db import migrate, session_scope, list_cases  # doctest: +SKIP
    >>> migrate(url)  # doctest: +SKIP
    >>> with session_scope(url) as session:  # doctest: +SKIP
    ...     page = list_cases(session, status="diagnosed", limit=50)
"""

from __future__ import annotations

from db.engine import default_sqlite_url, dispose_engines, get_engine, migrate, session_scope
from db.queries import (
    CaseDetail,
    CaseSummary,
    EvalRow,
    FlowRunView,
    ModelVersionView,
    PredictionView,
    count_cases,
    get_case,
    get_model_version,
    label_counts,
    latest_model_version,
    list_cases,
    list_flow_runs,
    list_model_versions,
    predicted_label_counts,
    predictions_for_evaluation,
    status_counts,
)
from db.repository import (
    CaseIn,
    CaseInput,
    ImageIn,
    PredictionIn,
    UpsertOutcome,
    finish_flow_run,
    iter_case_inputs,
    mark_cases_failed,
    register_model_version,
    save_predictions,
    start_flow_run,
    update_model_metrics,
    upsert_cases,
)

__all__ = [
    "CaseDetail",
    "CaseIn",
    "CaseInput",
    "CaseSummary",
    "EvalRow",
    "FlowRunView",
    "ImageIn",
    "ModelVersionView",
    "PredictionIn",
    "PredictionView",
    "UpsertOutcome",
    "count_cases",
    "default_sqlite_url",
    "dispose_engines",
    "finish_flow_run",
    "get_case",
    "get_engine",
    "get_model_version",
    "iter_case_inputs",
    "label_counts",
    "latest_model_version",
    "list_cases",
    "list_flow_runs",
    "list_model_versions",
    "mark_cases_failed",
    "migrate",
    "predicted_label_counts",
    "predictions_for_evaluation",
    "register_model_version",
    "save_predictions",
    "session_scope",
    "start_flow_run",
    "status_counts",
    "update_model_metrics",
    "upsert_cases",
]
