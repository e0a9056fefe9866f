"""Runs page: the most recent flow runs with their outcome counts and status."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data, tables

RUNS_SHOWN = 50  # flow runs listed

auth.require_user()
st.title("Runs")
url = data.store_url()
runs = data.flow_runs(url, RUNS_SHOWN)
if not runs:
    st.info("No flow runs recorded yet — run `diagnosis demo` or `diagnosis ingest MANIFEST.csv`.")
    st.stop()
failed = sum(run.status == "failed" for run in runs)
total, bad = st.columns(2)
total.metric("Runs shown", len(runs))
bad.metric("Failed", failed)
st.dataframe(tables.flow_runs_frame(runs), hide_index=True, key="flow_runs")
