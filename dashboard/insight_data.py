"""Cached reads behind the Overview trends, the Model and Augmentation pages and the case page's neighbours.

Each is a ``db`` function in the page-side form of :func:`dashboard.data.store_read`: the store URL first, cached.
"""

from __future__ import annotations

import db
from dashboard.data import store_read

__all__ = [
    "LATENT_SAMPLE",
    "cases_per_day",
    "evaluation_rows",
    "graph_neighbours",
    "latent_sample",
    "model_versions",
    "review_counts",
    "similar_cases",
    "synthetic_counts",
    "synthetic_samples",
]

LATENT_SAMPLE = 2000  # most recent predictions projected on the Model page


model_versions = store_read(db.list_model_versions)
evaluation_rows = store_read(db.predictions_for_evaluation)
latent_sample = store_read(db.latent_sample)  # pages pass limit=LATENT_SAMPLE
similar_cases = store_read(db.similar_cases)
graph_neighbours = store_read(db.graph_neighbours)
cases_per_day = store_read(db.cases_per_day)
review_counts = store_read(db.review_counts)
synthetic_counts = store_read(db.synthetic_counts)
synthetic_samples = store_read(db.synthetic_samples)
