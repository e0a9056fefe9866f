"""Cached reads of the diagnosis store for the dashboard pages.

Every read goes through the query functions of :mod:`db` and returns its frozen dataclasses or plain
dicts, so results can be cached with ``st.cache_data`` and shared between reruns and sessions. Each
helper takes the store URL as its first argument: the cache key then changes with the store, and a test
(or a user) pointing ``DIAGNOSIS_DATABASE_URL`` elsewhere never sees another store's rows.

Examples:
    >>> url = store_url()  # doctest: +SKIP
    >>> data.status_counts(url)  # doctest: +SKIP
    {'ingested': 3, 'rejected': 1, 'diagnosed': 5, 'failed': 0}
"""

from __future__ import annotations

import re

import numpy as np
import streamlit as st

import db
from dashboard.escape import code, md
from diagnosis.settings import Settings

__all__ = [
    "PAGE_SIZE",
    "QUERY_TTL_S",
    "SPLITS",
    "account",
    "case_audit",
    "case_detail",
    "cookie_session",
    "datasets",
    "filter_options",
    "flow_runs",
    "image_array",
    "label_counts",
    "latest_model",
    "model_names",
    "open_cookie_session",
    "predicted_label_counts",
    "reconstruction",
    "review",
    "revoke_cookie_session",
    "sign_in",
    "status_counts",
    "store_url",
    "submit_review",
    "worklist_count",
    "worklist_cursor_at",
    "worklist_page",
]

QUERY_TTL_S = 30  # seconds a query result is reused; flows writing meanwhile show up after this
IMAGE_TTL_S = 600  # seconds a loaded image array stays cached
PAGE_SIZE = 50  # cases per page of the worklist
SPLITS: tuple[str, ...] = ("train", "val", "test")  # the manifest's split values


@st.cache_resource(show_spinner="Opening the diagnosis store…")
def _migrated(url: str) -> str:
    """Bring the store at ``url`` to the current schema once per process, so an empty home just works."""
    db.migrate(url)
    return url


def _safe(url: str) -> str:
    """The URL with any password masked, for messages."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def store_url() -> str:
    """Return the migrated store URL from the environment, or show an error and stop the page.

    The URL is ``DIAGNOSIS_DATABASE_URL`` if set, else the SQLite file under ``DIAGNOSIS_HOME``.
    """
    url = Settings.from_env().db_url
    try:
        return _migrated(url)
    except Exception as error:  # noqa: BLE001 - UI boundary: any driver error becomes a message, not a traceback
        st.error(
            f"Cannot open the diagnosis store at {code(_safe(url))}: {md(error)}\n\n"
            "Check `DIAGNOSIS_DATABASE_URL` / `DIAGNOSIS_HOME`, or create a store with `diagnosis demo`."
        )
        st.stop()


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def status_counts(url: str) -> dict[str, int]:
    """Cases per status (every status present, 0 when none)."""
    with db.session_scope(url) as session:
        return db.status_counts(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def label_counts(url: str) -> dict[str, int]:
    """Non-synthetic cases per true diagnosis (``unlabelled`` for cases without one)."""
    with db.session_scope(url) as session:
        return db.label_counts(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def predicted_label_counts(url: str, model_version_id: int) -> dict[str, int]:
    """Predictions per predicted diagnosis for one model version."""
    with db.session_scope(url) as session:
        return db.predicted_label_counts(session, model_version_id)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def latest_model(url: str) -> db.ModelVersionView | None:
    """The most recently registered model version, or ``None`` before the first training."""
    with db.session_scope(url) as session:
        return db.latest_model_version(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def model_names(url: str) -> dict[int, str]:
    """Model version id -> name, for labelling prediction histories."""
    with db.session_scope(url) as session:
        return {version.id: version.name for version in db.list_model_versions(session)}


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def flow_runs(url: str, limit: int = 10) -> list[db.FlowRunView]:
    """The ``limit`` most recent flow runs, newest first."""
    with db.session_scope(url) as session:
        return db.list_flow_runs(session, limit)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def filter_options(url: str) -> dict[str, list[str]]:
    """Choices for the case-list filters.

    Returns:
        ``status``, ``split``, ``label`` (true diagnoses stored or known to the latest model) and
        ``predicted_label`` (the latest model's label names plus any label it predicted).
    """
    with db.session_scope(url) as session:
        statuses = list(db.status_counts(session))
        labels = {label for label in db.label_counts(session) if label != "unlabelled"}
        latest = db.latest_model_version(session)
        predicted: set[str] = set()
        if latest is not None:
            predicted = set(latest.label_names) | set(db.predicted_label_counts(session, latest.id))
            labels |= set(latest.label_names)
    return {"status": statuses, "split": list(SPLITS), "label": sorted(labels), "predicted_label": sorted(predicted)}


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def datasets(url: str) -> list[str]:
    """The data sets of the stored cases (``db.NO_DATASET`` for cases stored without one)."""
    with db.session_scope(url) as session:
        return db.case_datasets(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def worklist_count(url: str, where: db.WorklistFilter, after: db.WorklistCursor | None = None,
                   limit: int | None = None) -> int:
    """Number of worklist rows matching ``where`` after ``after``, at most ``limit`` (see :func:`db.count_worklist`)."""
    with db.session_scope(url) as session:
        return db.count_worklist(session, where, after=after, limit=limit)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def worklist_page(url: str, where: db.WorklistFilter, after: db.WorklistCursor | None = None,
                  page_size: int = PAGE_SIZE) -> list[db.WorklistRow]:
    """The page of the worklist that starts after ``after`` (None: the first page), most uncertain first; a keyset
    page, so a deep page costs what the first does."""
    with db.session_scope(url) as session:
        return db.list_worklist(session, where, limit=page_size, after=after)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def worklist_cursor_at(url: str, where: db.WorklistFilter, rows: int,
                       after: db.WorklistCursor | None = None) -> db.WorklistCursor | None:
    """Where the page ``rows`` rows after ``after`` (None: the first row) starts, for a jump to it (see
    :func:`db.worklist_cursor_at`)."""
    with db.session_scope(url) as session:
        return db.worklist_cursor_at(session, where, rows, after)


def sign_in(url: str, username: str, password: str, client: str) -> db.SignInResult:
    """Check a throttled sign-in (:func:`db.sign_in`, policy from the environment; never cached)."""
    with db.session_scope(url) as session:
        return db.sign_in(session, username, password, client=client, policy=db.SignInPolicy.from_env())


def account(url: str, username: str) -> db.UserView | None:
    """The signed-in user's account as stored now (never cached: every rerun re-checks it)."""
    with db.session_scope(url) as session:
        return db.get_user(session, username)


def open_cookie_session(url: str, user_id: int, lifetime_s: float) -> db.OpenedWebSession:
    """Open a store session for a user who has just signed in; its ticket buys the browser its cookie."""
    with db.session_scope(url) as session:
        return db.open_web_session(session, user_id, lifetime_s=lifetime_s)


def cookie_session(url: str, secret: str, idle_s: float) -> db.WebSessionUser | None:
    """The active account behind a session cookie's secret, read fresh on every rerun (never cached)."""
    with db.session_scope(url) as session:
        return db.session_user(session, secret, idle_s=idle_s)


def revoke_cookie_session(url: str, session_id: int) -> None:
    """Sign a store session out (its cookie is refused from now on)."""
    with db.session_scope(url) as session:
        db.revoke_web_session(session, session_id=session_id)


def review(url: str, case_key: str) -> db.ReviewView | None:
    """The current review of a case, read fresh: its version guards the review form."""
    with db.session_scope(url) as session:
        return db.get_review(session, case_key)


def case_audit(url: str, case_key: str) -> list[db.AuditView]:
    """The audit rows of a case, newest first (read fresh)."""
    with db.session_scope(url) as session:
        return db.audit_log(session, case_key=case_key)


def submit_review(url: str, **fields: object) -> db.ReviewView:
    """Store a review through :func:`db.submit_review` and drop cached reads that show reviews.

    Raises:
        db.StaleReviewError: If someone changed the review since the form was shown.
    """
    with db.session_scope(url) as session:
        stored = db.submit_review(session, **fields)  # type: ignore[arg-type]
    st.cache_data.clear()
    return stored


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def case_detail(url: str, case_key: str) -> db.CaseDetail | None:
    """Everything stored about one case, or ``None`` if there is no case ``case_key``."""
    with db.session_scope(url) as session:
        return db.get_case(session, case_key)


@st.cache_data(ttl=IMAGE_TTL_S, max_entries=16, show_spinner="Loading image…")
def image_array(path: str) -> np.ndarray:
    """Load an image file for display.

    Args:
        path: The stored image path.

    Returns:
        The spatial array, ``(H, W)``-like for 2D or ``(X, Y, Z)`` for 3D images, float32, as the image's format
        reader decodes it (:func:`diagnosis.ingest.formats.read_image`: one channel, no ingest checks).

    Raises:
        ValueError: If the file is missing or unreadable (``ImageError`` is a ``ValueError``).
    """
    from diagnosis.ingest.formats import read_image  # NIfTI / NumPy import MONAI: only pay for it when one is shown

    return read_image(path).array[0]


def reconstruction(url: str, model_version_id: int, case_key: str) -> db.ReconstructionView | None:
    """The decoded views ``diagnosis reconstruct`` stored for a case, or ``None`` (read fresh: a job may just have run)."""
    with db.session_scope(url) as session:
        return db.get_reconstruction(session, case_key, model_version_id)