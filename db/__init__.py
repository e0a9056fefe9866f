"""The diagnosis store: cases, predictions, model versions, flow runs, users and reviews in SQLite or PostgreSQL.

One module per aggregate holds its reads, writes and result types (frozen dataclasses): :mod:`db.cases` (ingestion,
the case list and detail, what the flows read), :mod:`db.predictions`, :mod:`db.model_versions`,
:mod:`db.promotions`, :mod:`db.runs`, :mod:`db.inbox`, :mod:`db.users` (with :mod:`db.signin` and
:mod:`db.web_sessions`), :mod:`db.reviews`, :mod:`db.reconstructions`. :mod:`db.claims` hands out chunks of work
to diagnosis runs; :mod:`db.screens` holds the read models of the dashboard's screens (worklist, insight), which read
across aggregates. Functions take an open session and never commit (:func:`session_scope` does); this package
re-exports every public name. :func:`migrate` brings any database URL to the current schema.

Examples:
    >>> from db import migrate, session_scope, list_cases  # doctest: +SKIP
    >>> migrate(url)  # doctest: +SKIP
    >>> with session_scope(url) as session:  # doctest: +SKIP
    ...     page = list_cases(session, status="diagnosed", limit=50)
"""

from __future__ import annotations

from db.cases import (
    NO_DATASET,
    CaseDetail,
    CaseIn,
    CaseInput,
    CaseSummary,
    ImageIn,
    UpsertOutcome,
    case_datasets,
    count_cases,
    get_case,
    in_datasets,
    iter_case_inputs,
    label_counts,
    labelled_datasets,
    list_cases,
    mark_cases_failed,
    status_counts,
    upsert_cases,
)
from db.claims import Claim, claim_chunk, is_transient_error, peek_cases, pending_case_ids
from db.engine import default_sqlite_url, dispose_engines, get_engine, migrate, session_scope
from db.inbox import InboxManifestView, ingested_manifest_hashes, list_inbox_manifests, record_inbox_manifest
from db.model_versions import (
    ModelVersionView,
    get_model_version,
    latest_model_version,
    list_model_versions,
    register_model_version,
    update_model_metrics,
)
from db.predictions import (
    EvalRow,
    PredictionIn,
    PredictionView,
    predicted_label_counts,
    predictions_for_evaluation,
    save_predictions,
)
from db.promotions import PromotionView, current_model_id, list_promotions, record_promotion
from db.reconstructions import ReconstructionView, get_reconstruction, save_reconstruction
from db.reviews import (
    AuditView,
    ReviewView,
    StaleReviewError,
    append_audit,
    audit_log,
    get_review,
    review_counts,
    submit_review,
)
from db.runs import FlowRunView, fail_dead_runs, finish_flow_run, list_flow_runs, start_flow_run
from db.screens.insight import (
    NEIGHBOUR_POOL,
    LatentPoint,
    SimilarCase,
    SyntheticSample,
    cases_per_day,
    latent_sample,
    similar_cases,
    synthetic_counts,
    synthetic_samples,
)
from db.screens.worklist import (
    COUNT_AHEAD,
    REVIEW_STATES,
    WorklistCursor,
    WorklistFilter,
    WorklistRow,
    count_worklist,
    list_worklist,
    worklist_cursor_at,
)
from db.signin import SignInPolicy, SignInResult, reset_sign_in_throttle, sign_in
from db.users import (
    MIN_PASSWORD_LENGTH,
    UserExistsError,
    UserView,
    authenticate,
    create_user,
    get_user,
    list_users,
    set_user_active,
    set_user_role,
)
from db.web_sessions import (
    OpenedWebSession,
    WebSessionUser,
    open_web_session,
    prune_web_sessions,
    redeem_ticket,
    revoke_web_session,
    session_user,
)

__all__ = [
    "COUNT_AHEAD",
    "MIN_PASSWORD_LENGTH",
    "NEIGHBOUR_POOL",
    "NO_DATASET",
    "REVIEW_STATES",
    "AuditView",
    "CaseDetail",
    "CaseIn",
    "CaseInput",
    "CaseSummary",
    "Claim",
    "EvalRow",
    "FlowRunView",
    "ImageIn",
    "InboxManifestView",
    "LatentPoint",
    "ModelVersionView",
    "OpenedWebSession",
    "PredictionIn",
    "PredictionView",
    "PromotionView",
    "ReconstructionView",
    "ReviewView",
    "SignInPolicy",
    "SignInResult",
    "SimilarCase",
    "StaleReviewError",
    "SyntheticSample",
    "UpsertOutcome",
    "UserExistsError",
    "UserView",
    "WebSessionUser",
    "WorklistCursor",
    "WorklistFilter",
    "WorklistRow",
    "append_audit",
    "audit_log",
    "authenticate",
    "case_datasets",
    "cases_per_day",
    "claim_chunk",
    "count_cases",
    "count_worklist",
    "create_user",
    "current_model_id",
    "default_sqlite_url",
    "dispose_engines",
    "fail_dead_runs",
    "finish_flow_run",
    "get_case",
    "get_engine",
    "get_model_version",
    "get_reconstruction",
    "get_review",
    "get_user",
    "in_datasets",
    "ingested_manifest_hashes",
    "is_transient_error",
    "iter_case_inputs",
    "label_counts",
    "labelled_datasets",
    "latent_sample",
    "latest_model_version",
    "list_cases",
    "list_flow_runs",
    "list_inbox_manifests",
    "list_model_versions",
    "list_promotions",
    "list_users",
    "list_worklist",
    "mark_cases_failed",
    "migrate",
    "open_web_session",
    "peek_cases",
    "pending_case_ids",
    "predicted_label_counts",
    "predictions_for_evaluation",
    "prune_web_sessions",
    "record_inbox_manifest",
    "record_promotion",
    "redeem_ticket",
    "register_model_version",
    "reset_sign_in_throttle",
    "review_counts",
    "revoke_web_session",
    "save_predictions",
    "save_reconstruction",
    "session_scope",
    "session_user",
    "set_user_active",
    "set_user_role",
    "sign_in",
    "similar_cases",
    "start_flow_run",
    "status_counts",
    "submit_review",
    "synthetic_counts",
    "synthetic_samples",
    "update_model_metrics",
    "upsert_cases",
    "worklist_cursor_at",
]
