"""Overview page: cases per status and diagnosis, the latest model and its metrics, recent flow runs."""

from __future__ import annotations

import streamlit as st

from dashboard import data, tables

st.title("Overview")
url = data.store_url()

statuses = data.status_counts(url)
if sum(statuses.values()) == 0:
    st.info("No cases yet — run `diagnosis demo` to generate, ingest, train and diagnose a small example set.")
    st.stop()

for column, (status, n) in zip(st.columns(len(statuses)), statuses.items(), strict=True):
    column.metric(status.capitalize(), n)

model = data.latest_model(url)
predicted = data.predicted_label_counts(url, model.id) if model is not None else None

st.subheader("Cases per diagnosis")
st.caption("True diagnosis of collected cases" + (f"; predicted by {model.name}" if model is not None else ""))
st.dataframe(tables.counts_frame(data.label_counts(url), predicted), hide_index=True, key="diagnosis_counts")

st.subheader("Latest model")
if model is None:
    st.info("No model trained yet — run `diagnosis train`, then `diagnosis diagnose`.")
else:
    st.markdown(f"**{model.name}** · fusion `{model.fusion}` · registered {model.created_at:%Y-%m-%d %H:%M} UTC")
    metrics, recall = tables.metrics_frame(model.metrics), tables.recall_frame(model.metrics)
    if metrics.empty:
        st.caption("No evaluation metrics recorded — run `diagnosis evaluate`.")
    else:
        score = st.column_config.NumberColumn(format="%.3f")
        formats = {name: score for name in metrics.columns} | {"cases": st.column_config.NumberColumn(format="%d")}
        st.dataframe(metrics, key="model_metrics", column_config=formats)
        if not recall.empty:
            st.caption("Recall per diagnosis")
            st.dataframe(recall, key="class_recall", column_config={split: score for split in recall.columns})

runs = data.flow_runs(url)
if runs:
    with st.expander("Recent flow runs"):
        st.dataframe(tables.flow_runs_frame(runs), hide_index=True, key="flow_runs")
