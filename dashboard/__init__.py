"""Streamlit dashboard for clinicians: case lists, case details and model metrics, read from the store.

``app.py`` builds the navigation, ``pages/`` holds one page per file, :mod:`dashboard.data` wraps the read
queries of :mod:`db` in Streamlit caches. The dashboard never runs a model and never writes to the store
(apart from creating the schema of an empty one).
"""
