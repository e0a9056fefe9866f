"""Reads and writes of the diagnosis store for the dashboard pages.

Every one goes through a function of :mod:`db` and returns its frozen dataclasses or plain dicts, so results can
be cached with ``st.cache_data`` and shared between reruns and sessions. :func:`store_read` turns a ``db``
function ``f(session, *args)`` into the page's ``f(url, *args)``: the store URL comes first, so the cache key
changes with the store, and a test (or a user) pointing ``DIAGNOSIS_DATABASE_URL`` elsewhere never sees another
store's rows. Reads that guard a form or an account, and writes, are never cached.

Examples:
    >>> url = store_url()  # doctest: +SKIP
    >>> data.status_counts(url)  # doctest: +SKIP
    {'ingested': 3, 'rejected': 1, 'diagnosed': 5, 'failed': 0}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

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
    "store_read",
    "submit_review",
    "worklist_count",
    "worklist_cursor_at",
    "worklist_page",
]

QUERY_TTL_S = 30  # seconds a query result is reused; flows writing meanwhile show up after this
IMAGE_TTL_S = 600  # seconds a loaded image array stays cached
PAGE_SIZE = 50  # cases per page of the worklist
SPLITS: tuple[str, ...] = ("train", "val", "test")  # the manifest's split values

P = ParamSpec("P")
T = TypeVar("T")


def store_read(query: Callable[Concatenate[Any, P], T], *, cached: bool = True) -> Callable[Concatenate[str, P], T]:
    """The page-side form of a ``db`` function: ``read(url, *args, **kwargs)`` runs ``query(session, *args,
    **kwargs)`` in one store session (committed on success), cached for :data:`QUERY_TTL_S` unless ``cached`` is
    False.

    Args:
        query: A function of :mod:`db` taking the session first.
        cached: Share results between reruns and sessions (False for fresh reads and for writes).

    Returns:
        The wrapper, named and documented as ``query``.
    """

    def read(url: str, *args: P.args, **kwargs: P.kwargs) -> T:
        with db.session_scope(url) as session:
            return query(session, *args, **kwargs)

    read.__name__ = read.__qualname__ = query.__name__  # Streamlit keys each cache by module, name and source
    read.__doc__ = query.__doc__
    return st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)(read) if cached else read



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


status_counts = store_read(db.status_counts)
label_counts = store_read(db.label_counts)
predicted_label_counts = store_read(db.predicted_label_counts)
latest_model = store_read(db.latest_model_version)
flow_runs = store_read(db.list_flow_runs)
datasets = store_read(db.case_datasets)
case_detail = store_read(db.get_case)
worklist_count = store_read(db.count_worklist)
worklist_page = store_read(db.list_worklist)  # keyset pages: a deep page costs what the first does
worklist_cursor_at = store_read(db.worklist_cursor_at)
account = store_read(db.get_user, cached=False)  # every rerun re-checks the signed-in account
review = store_read(db.get_review, cached=False)  # its version guards the review form
case_audit = store_read(db.audit_log, cached=False)
reconstruction = store_read(db.get_reconstruction, cached=False)  # a job may just have written it
open_cookie_session = store_read(db.open_web_session, cached=False)
cookie_session = store_read(db.session_user, cached=False)
revoke_cookie_session = store_read(db.revoke_web_session, cached=False)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def model_names(url: str) -> dict[int, str]:
    """Model version id -> name, for labelling prediction histories."""
    with db.session_scope(url) as session:
        return {version.id: version.name for version in db.list_model_versions(session)}


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


def sign_in(url: str, username: str, password: str, client: str) -> db.SignInResult:
    """Check a throttled sign-in (:func:`db.sign_in`, policy from the environment; never cached)."""
    with db.session_scope(url) as session:
        return db.sign_in(session, username, password, client=client, policy=db.SignInPolicy.from_env())


def submit_review(url: str, **fields: object) -> db.ReviewView:
    """Store a review through :func:`db.submit_review` and drop cached reads that show reviews.

    Raises:
        db.StaleReviewError: If someone changed the review since the form was shown.
    """
    with db.session_scope(url) as session:
        stored = db.submit_review(session, **fields)  # type: ignore[arg-type]
    st.cache_data.clear()
    return stored


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