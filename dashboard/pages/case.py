"""Case page: one case's status, image, symptom text, diagnosis probabilities and prediction history."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

import db
from dashboard import data, imaging, tables


def _caption(detail: db.CaseDetail, array_shape: tuple[int, ...], index: int | None) -> str:
    """Format, size (width × height px, or slice position in the volume) and spacing of the displayed image."""
    spacing = " × ".join(f"{s:g}" for s in detail.image_spacing) + " mm" if detail.image_spacing else "unknown"
    size = " × ".join(map(str, array_shape))
    where = f"slice {index + 1} of {array_shape[-1]} ({size} volume)" if index is not None else f"{size} px"
    return f"{detail.image_format} · {where} · spacing {spacing}"


def show_image(detail: db.CaseDetail) -> None:
    """Display the case image: 2D directly, 3D one slice at a time along the last axis."""
    if detail.image_path is None:
        st.caption("No image for this case.")
        return
    try:
        array = data.image_array(detail.image_path)
    except (ValueError, OSError) as error:
        st.warning(f"Cannot display the image: {error}")
        return
    index = None
    if array.ndim == 3:
        depth = array.shape[-1]
        index = st.slider("Slice", 0, depth - 1, depth // 2, key=f"slice_{detail.summary.case_key}")
    low, high = imaging.intensity_range(array)
    plane = imaging.display_plane(array, detail.image_format, index)
    shown = array.shape if index is not None else plane.shape[::-1]  # volume (X, Y, Z) or picture (W, H)
    st.image(imaging.to_uint8(plane, low, high), width="stretch", output_format="PNG",  # lossless, no JPEG artefacts
             caption=_caption(detail, shown, index))


st.title("Case")
url = data.store_url()
case_key = st.text_input("Case id", key="case", bind="query-params", placeholder="e.g. case-0001").strip()
if not case_key:
    st.info("Enter a case id, or open one from the Cases page.")
    st.page_link("pages/cases.py", label="Browse cases", icon=":material/list:")
    st.stop()
detail = data.case_detail(url, case_key)
if detail is None:
    st.warning(f"No case with id `{case_key}` — check the id on the Cases page.")
    st.page_link("pages/cases.py", label="Browse cases", icon=":material/list:")
    st.stop()

summary = detail.summary
latest = detail.predictions[0] if detail.predictions else None
status, truth, split, predicted = st.columns(4)
status.metric("Status", summary.status)
truth.metric("True diagnosis", summary.label or "unknown")
split.metric("Split", summary.split or "none")
confidence = f"{latest.probabilities.get(latest.label, 0.0):.0%} probability" if latest else None
predicted.metric("Predicted diagnosis", latest.label if latest else "not yet", confidence, "off", delta_arrow="off")
if summary.error:
    st.warning(f"Reason: {summary.error}")

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
        st.caption(f"Model {names.get(latest.model_version_id, latest.model_version_id)} · "
                   f"modalities used: {', '.join(latest.modalities)}")
        figure = px.bar(tables.probabilities_frame(latest), x="probability", y="diagnosis", orientation="h",
                        range_x=[0, 1], text_auto=".0%")
        figure.update_layout(height=80 + 40 * len(latest.probabilities), margin={"l": 0, "r": 24, "t": 10, "b": 0},
                             yaxis={"categoryorder": "total ascending", "title": None}, xaxis_tickformat=".0%")
        st.plotly_chart(figure, key="probabilities")

st.subheader("Prediction history")
if detail.predictions:
    st.dataframe(tables.history_frame(detail.predictions, data.model_names(url)), hide_index=True, key="history",
                 column_config={"probability": st.column_config.NumberColumn(format="percent")})
else:
    st.caption("No predictions yet — run `diagnosis diagnose`.")

with left:  # filled last: loading the image must not hold back the diagnosis and history
    st.subheader("Image")
    show_image(detail)
