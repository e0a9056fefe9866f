"""Cases: ingestion (:mod:`db.cases.upsert`, its input types in :mod:`db.cases.incoming`), the reads of the case list and detail (:mod:`db.cases.queries`), and
what the flows read of them (:mod:`db.cases.inputs`)."""

from __future__ import annotations

from db.cases.incoming import INGEST_STATUSES, CaseIn, ImageIn, UpsertOutcome, case_fingerprint
from db.cases.inputs import CaseInput, case_inputs_query, iter_case_inputs, mark_cases_failed, not_predicted_by
from db.cases.queries import (
    NO_DATASET,
    UNLABELLED,
    CaseDetail,
    CaseSummary,
    case_datasets,
    count_cases,
    get_case,
    in_datasets,
    label_counts,
    labelled_datasets,
    list_cases,
    status_counts,
)
from db.cases.upsert import upsert_cases

__all__ = [
    "INGEST_STATUSES",
    "NO_DATASET",
    "UNLABELLED",
    "CaseDetail",
    "CaseIn",
    "CaseInput",
    "CaseSummary",
    "ImageIn",
    "UpsertOutcome",
    "case_datasets",
    "case_fingerprint",
    "case_inputs_query",
    "count_cases",
    "get_case",
    "in_datasets",
    "iter_case_inputs",
    "label_counts",
    "labelled_datasets",
    "list_cases",
    "mark_cases_failed",
    "not_predicted_by",
    "status_counts",
    "upsert_cases",
]
