"""Cached reads behind the Overview trends, the Model and Augmentation pages and the case page's neighbours.

Like :mod:`dashboard.data`, every helper takes the store URL first and returns the frozen views of :mod:`db`.
"""

from __future__ import annotations

import streamlit as st

import db
from dashboard.data import QUERY_TTL_S

__all__ = [
    "cases_per_day",
    "evaluation_rows",
    "latent_sample",
    "model_versions",
    "review_counts",
    "similar_cases",
    "synthetic_counts",
    "synthetic_samples",
]

LATENT_SAMPLE = 2000  # most recent predictions projected on the Model page


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def model_versions(url: str) -> list[db.ModelVersionView]:
    """Every model version, newest first."""
    with db.session_scope(url) as session:
        return db.list_model_versions(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def evaluation_rows(url: str, model_version_id: int, split: str | None) -> list[db.EvalRow]:
    """Labelled cases with one model version's probabilities (``split=None``: every split)."""
    with db.session_scope(url) as session:
        return db.predictions_for_evaluation(session, model_version_id, split)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def latent_sample(url: str, model_version_id: int) -> list[db.LatentPoint]:
    """Latents of the most recent predictions of a model version (capped)."""
    with db.session_scope(url) as session:
        return db.latent_sample(session, model_version_id, limit=LATENT_SAMPLE)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def similar_cases(url: str, case_key: str, model_version_id: int, k: int = 5) -> list[db.SimilarCase]:
    """Confirmed cases nearest to ``case_key`` in the latent space of a model version (capped pool)."""
    with db.session_scope(url) as session:
        return db.similar_cases(session, case_key, model_version_id, k=k)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def cases_per_day(url: str) -> dict[str, int]:
    """Collected cases per UTC day."""
    with db.session_scope(url) as session:
        return db.cases_per_day(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def review_counts(url: str) -> dict[str, int]:
    """Confirmed and overridden reviews."""
    with db.session_scope(url) as session:
        return db.review_counts(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def synthetic_counts(url: str) -> dict[str, int]:
    """Generated cases per label."""
    with db.session_scope(url) as session:
        return db.synthetic_counts(session)


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def synthetic_samples(url: str, label: str | None, limit: int = 12) -> list[db.SyntheticSample]:
    """The newest generated cases of a label."""
    with db.session_scope(url) as session:
        return db.synthetic_samples(session, label, limit=limit)
