"""Case page: image, symptoms, probabilities, uncertainty, the graph classifier's neighbours, similar cases,
prediction history and the review."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import auth, case_panels, data, review, tables
from dashboard.escape import chart_text, code, md

user = auth.require_user()
st.title("Case")
url = data.store_url()
case_key = st.text_input("Case id", key="case", bind="query-params", placeholder="e.g. case-0001").strip()
if not case_key:
    st.info("Enter a case id, or open one from the Worklist.")
    st.page_link("pages/worklist.py", label="Open the worklist", icon=":material/list:")
    st.stop()
detail = data.case_detail(url, case_key)
if detail is None:
    st.warning(f"No case with id {code(case_key)} — check the id on the Worklist.")
    st.page_link("pages/worklist.py", label="Open the worklist", icon=":material/list:")
    st.stop()

summary = detail.summary
latest = detail.predictions[0] if detail.predictions else None
status, truth, split, predicted = st.columns(4)
status.metric("Status", md(summary.status))
truth.metric("True diagnosis", md(summary.label or "unknown"))
split.metric("Split", md(summary.split or "none"))
confidence = f"{latest.probabilities.get(latest.label, 0.0):.0%} probability" if latest else None
predicted.metric("Predicted diagnosis", md(latest.label) if latest else "not yet", confidence, "off", delta_arrow="off")
if summary.error:
    st.warning(f"Reason: {md(summary.error)}")

left, right = st.columns(2)
with right:
    st.subheader("Symptoms")
    if detail.text:
        st.container(border=True).text(detail.text, width="stretch")  # plain text: no Markdown from the manifest
    else:
        st.caption("No symptom text for this case.")
    if latest is not None:
        st.subheader("Diagnosis probabilities")
        names = data.model_names(url)
        st.caption(f"Model {md(names.get(latest.model_version_id, latest.model_version_id))} · "
                   f"modalities used: {md(', '.join(latest.modalities))}")
        bars = tables.probabilities_frame(latest).assign(diagnosis=lambda f: f["diagnosis"].map(chart_text))
        figure = px.bar(bars, x="probability", y="diagnosis", orientation="h", range_x=[0, 1], text_auto=".0%")
        figure.update_layout(height=80 + 40 * len(latest.probabilities), margin={"l": 0, "r": 24, "t": 10, "b": 0},
                             yaxis={"categoryorder": "total ascending", "title": None}, xaxis_tickformat=".0%")
        st.plotly_chart(figure, key="probabilities")
        spread, conformal = st.columns(2)
        spread.metric("Uncertainty", f"{latest.uncertainty:.2f} nats" if latest.uncertainty is not None
                      else "not estimated", help="Predictive entropy of the latent posterior samples.")
        conformal.metric("Conformal set", md(", ".join(latest.prediction_set)) if latest.prediction_set is not None
                         else "not calibrated", help="Diagnoses the split-conformal predictor cannot rule out.")

with left:
    st.subheader("Image")
    case_panels.show_image(detail)

if latest is not None:
    graph_keys: frozenset[str] = frozenset()
    if latest.neighbours is not None:  # a graph-classifier model: the cases it diagnosed this one with
        st.subheader("Neighbours in the case graph")
        graph_keys = case_panels.show_graph_neighbours(url, latest)
    st.subheader("Similar past cases")
    case_panels.show_similar(url, case_key, latest.model_version_id, graph_keys)
    st.subheader("Reconstruction and cross-modal view")
    case_panels.show_reconstruction(url, detail, latest.model_version_id, can_launch=True)

st.subheader("Prediction history")
if detail.predictions:
    st.dataframe(tables.history_frame(detail.predictions, data.model_names(url)), hide_index=True, key="history",
                 column_config={"probability": st.column_config.NumberColumn(format="percent")})
else:
    st.caption("No predictions yet — run `diagnosis diagnose`.")

st.subheader("Review")
labels = sorted(latest.probabilities) if latest is not None else data.filter_options(url)["label"]
review.show_review(url, detail, user, labels)
with st.expander("Audit log of this case"):
    review.show_audit(url, case_key)
