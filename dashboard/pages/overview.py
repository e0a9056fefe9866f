"""Overview page: cases per status and diagnosis, cases over time, reviews, the model in use and its metrics."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import auth, data, insight_data, tables
from dashboard.escape import code, md

auth.require_user()
st.title("Overview")
url = data.store_url()

statuses = data.status_counts(url)
if sum(statuses.values()) == 0:
    st.info("No cases yet — run `diagnosis demo` to generate, ingest, train and diagnose a small example set.")
    st.stop()

for column, (status, n) in zip(st.columns(len(statuses)), statuses.items(), strict=True):
    column.metric(status.capitalize(), n)
reviews = insight_data.review_counts(url)
confirmed, overridden = st.columns(2)
confirmed.metric("Reviews confirming the model", reviews["confirmed"])
overridden.metric("Reviews overriding the model", reviews["overridden"])

model = data.latest_model(url)
predicted = data.predicted_label_counts(url, model.id) if model is not None else None

st.subheader("Cases per diagnosis")
st.caption("True diagnosis of collected cases" + (f"; predicted by {md(model.name)}" if model is not None else ""))
st.dataframe(tables.counts_frame(data.label_counts(url), predicted), hide_index=True, key="diagnosis_counts")

per_day = insight_data.cases_per_day(url)
if per_day:
    st.subheader("Cases over time")
    trend = pd.DataFrame({"day": pd.to_datetime(list(per_day)), "cases": list(per_day.values())})
    if len(trend) < 3:  # a bar per day, labelled by its date (a time axis would tick in fractions of a second)
        trend["day"] = trend["day"].dt.strftime("%Y-%m-%d")
        figure = px.bar(trend, x="day", y="cases")
        figure.update_xaxes(type="category")
    else:
        figure = px.line(trend, x="day", y="cases", markers=True)
        span_days = (trend["day"].max() - trend["day"].min()).days
        figure.update_xaxes(tickformat="%Y-%m-%d", **({"dtick": 86_400_000} if span_days <= 31 else {}))  # whole days
    figure.update_layout(height=260, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    st.plotly_chart(figure, key="cases_per_day")

st.subheader("Model in use")
if model is None:
    st.info("No model trained yet — run `diagnosis train`, then `diagnosis diagnose`.")
else:
    st.markdown(f"**{md(model.name)}** · fusion {code(model.fusion)} · "
                f"registered {model.created_at:%Y-%m-%d %H:%M} UTC")
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
