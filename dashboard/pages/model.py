"""Model page: metrics per version, confusion matrix, calibration, per-class recall, latent 2D projection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import auth, data, evaluation, insight_data
from dashboard.escape import chart_text, md

auth.require_user()
st.title("Model")
url = data.store_url()
versions = insight_data.model_versions(url)
if not versions:
    st.info("No model trained yet — run `diagnosis train`, then `diagnosis diagnose`.")
    st.stop()

st.subheader("Metrics per version (test split, as registered)")
st.dataframe(evaluation.version_metrics_frame(versions), hide_index=True, key="version_metrics")

names = {v.id: v.name for v in versions}
version_id = st.selectbox("Model version", list(names), format_func=lambda i: f"{names[i]} (id {i})", key="model")
split = st.selectbox("Split", ["test", "val", "train", "all"], key="split")
version = next(v for v in versions if v.id == version_id)
rows = insight_data.evaluation_rows(url, version_id, None if split == "all" else split)
if not rows:
    st.info(f"No labelled predictions of {md(version.name)} on this split — run `diagnosis diagnose`.")
else:
    confusion = evaluation.confusion_frame(rows, version.label_names)
    confusion = confusion.rename(index=chart_text, columns=chart_text)  # labels shown as text, never Plotly HTML
    matrix, calibration = st.columns(2)
    with matrix:
        st.caption(f"Confusion matrix · {len(rows)} cases")
        figure = px.imshow(confusion, text_auto=True, color_continuous_scale="Blues",
                           labels={"x": "predicted", "y": "true", "color": "cases"})  # fmt: skip
        st.plotly_chart(figure, key="confusion")
    with calibration:
        st.caption("Calibration: accuracy against confidence (diagonal = perfectly calibrated)")
        curve = evaluation.calibration_frame(rows)
        figure = px.line(curve, x="confidence", y="accuracy", markers=True, hover_data=["cases"], range_x=[0, 1],
                         range_y=[0, 1])  # fmt: skip
        figure.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
        st.plotly_chart(figure, key="calibration")
    recall = evaluation.recall_from_confusion(confusion).reset_index().rename(columns={"true": "diagnosis"})
    st.caption("Recall per diagnosis")
    st.plotly_chart(px.bar(recall, x="diagnosis", y="recall", range_y=[0, 1]), key="recall")

st.subheader("Latent space (PCA, 2D)")
points = insight_data.latent_sample(url, version_id, limit=insight_data.LATENT_SAMPLE)
if len(points) < 2:
    st.caption("Too few stored latents of this model version to project.")
else:
    projected = evaluation.pca_2d(np.asarray([p.latent for p in points], dtype=np.float64))
    frame = pd.DataFrame({"pc1": projected[:, 0], "pc2": projected[:, 1],
                          "case": [chart_text(p.case_key) for p in points],
                          "diagnosis": [chart_text(p.label or "unknown") for p in points],
                          "predicted": [chart_text(p.predicted_label) for p in points]})  # fmt: skip
    st.plotly_chart(px.scatter(frame, x="pc1", y="pc2", color="diagnosis", hover_data=["case", "predicted"]),
                    key="latent")
    st.caption(f"The {len(points):,} most recent predictions of this version, coloured by confirmed diagnosis.")
