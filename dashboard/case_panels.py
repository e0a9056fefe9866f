"""Case-page sections: the image with window/level and orthogonal views, the graph classifier's neighbours and the
similar cases table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import db
from dashboard import data, imaging, insight_data, jobs
from dashboard.escape import md
from diagnosis.settings import Settings

__all__ = ["show_graph_neighbours", "show_image", "show_reconstruction", "show_similar"]


def _caption(detail: db.CaseDetail, array_shape: tuple[int, ...], where: str | None) -> str:
    """Format, size (width × height px, or the slice shown of the volume) and spacing of an image."""
    spacing = " × ".join(f"{s:g}" for s in detail.image_spacing) + " mm" if detail.image_spacing else "unknown"
    size = " × ".join(map(str, array_shape))
    shown = f"{where} ({size} volume)" if where is not None else f"{size} px"
    return f"{md(detail.image_format)} · {shown} · spacing {spacing}"


def _window(array: np.ndarray, key: str) -> tuple[float, float]:
    """A range slider for the display window (low/high intensity = level ± width / 2)."""
    low, high = imaging.intensity_range(array)
    if high <= low:
        return low, high
    step = (high - low) / 200.0
    chosen = st.slider("Window (intensity range shown)", low, high, (low, high), step=step, key=f"window_{key}",
                       help="Narrow the range to raise contrast; move it to change the level.")  # fmt: skip
    return float(chosen[0]), float(chosen[1])


def show_image(detail: db.CaseDetail) -> None:
    """Display the case image with a window/level control; 3D volumes as three orthogonal planes with sliders."""
    if detail.image_path is None:
        st.caption("No image for this case.")
        return
    try:
        array = data.image_array(detail.image_path)
    except (ValueError, OSError) as error:
        st.warning(f"Cannot display the image: {md(error)}")
        return
    key = detail.summary.case_key
    low, high = _window(array, key)
    if array.ndim == 2:
        plane = imaging.display_plane(array, detail.image_format)
        st.image(imaging.to_uint8(plane, low, high), width="stretch", output_format="PNG",  # lossless
                 caption=_caption(detail, plane.shape[::-1], None))  # fmt: skip
        return
    for axis, column in zip((2, 1, 0), st.columns(3), strict=True):  # axial first: the slice a reader expects
        name = imaging.AXIS_NAMES[axis]
        depth = array.shape[axis]
        with column:
            index = st.slider(f"{name.capitalize()} slice", 0, depth - 1, depth // 2, key=f"slice_{axis}_{key}")
            plane = imaging.orthogonal_plane(array, axis, index, detail.image_format)
            where = f"{name} slice {index + 1} of {depth}"
            st.image(imaging.to_uint8(plane, low, high), width="stretch", output_format="PNG",
                     caption=_caption(detail, array.shape, where))  # fmt: skip


def show_similar(url: str, case_key: str, model_version_id: int, graph_keys: frozenset[str] = frozenset()) -> None:
    """The most similar confirmed past cases in the latent space of the prediction's model version (those the graph
    classifier also used are marked)."""
    neighbours = insight_data.similar_cases(url, case_key, model_version_id)
    if not neighbours:
        st.caption("No confirmed past cases with a latent from this model version yet.")
        return
    columns = {
        "case": [n.case_key for n in neighbours],
        "confirmed diagnosis": [n.confirmed_label for n in neighbours],
        "predicted": [n.predicted_label for n in neighbours],
        "distance": [n.distance for n in neighbours],
    }
    if graph_keys:
        columns["graph neighbour"] = [n.case_key in graph_keys for n in neighbours]
    st.dataframe(pd.DataFrame(columns), hide_index=True, key="similar_cases",
                 column_config={"distance": st.column_config.NumberColumn(format="%.3f")})  # fmt: skip
    st.caption(f"Nearest among the {db.NEIGHBOUR_POOL:,} most recent confirmed cases of this model version.")


def _open_case(case_key: str) -> None:
    """Show another case on this page (the case id box is bound to the URL's ``case``)."""
    st.session_state["case"] = case_key


def show_graph_neighbours(url: str, prediction: db.PredictionView) -> frozenset[str]:
    """The training cases the graph classifier diagnosed this case with, largest share first, each one openable;
    returns their keys (the similar-cases table marks them)."""
    neighbours = insight_data.graph_neighbours(url, prediction.neighbours or ())
    if not neighbours:
        st.caption("The graph classifier stored no neighbours for this prediction.")
        return frozenset()
    frame = pd.DataFrame({"case": [n.case_key for n in neighbours],
                          "confirmed diagnosis": [n.confirmed_label or "(not in the store)" for n in neighbours],
                          "share of the logit": [n.weight for n in neighbours]})  # fmt: skip
    st.dataframe(frame, hide_index=True, key="graph_neighbours",
                 column_config={"share of the logit": st.column_config.NumberColumn(format="%+.3f")})  # fmt: skip
    st.caption(f"Training cases this case was joined to in the case graph, by their share of the logit of "
               f"{md(prediction.label)} (positive: they pushed towards it).")
    chosen = st.selectbox("Open a neighbour", [n.case_key for n in neighbours], key="graph_neighbour_choice")
    st.button("Open", key="graph_neighbour_open", on_click=_open_case, args=(chosen,))
    return frozenset(n.case_key for n in neighbours)


def show_reconstruction(url: str, detail: db.CaseDetail, model_version_id: int, can_launch: bool) -> None:
    """The model's reconstruction and text -> image view beside the nearest real texts for the image, if computed."""
    record = data.reconstruction(url, detail.summary.case_key, model_version_id)
    if record is None:
        st.caption("Not computed yet for this model version (`diagnosis reconstruct CASE`); the dashboard never "
                   "runs a model itself.")  # fmt: skip
        if can_launch and st.button("Compute the views", key="reconstruct"):
            log = jobs.launch_reconstruct(url, detail.summary.case_key, model_version_id, Settings.from_env().home / "logs")
            st.info(f"Started; reload the page in a few seconds (log: {md(log.name)}).")
        return
    columns = st.columns(2)
    views = ((record.reconstruction_path, "Reconstruction"), (record.image_from_text_path, "Image from the text"))
    for column, (path, title) in zip(columns, views, strict=True):
        with column:
            if path:
                array = data.image_array(path)
                plane = imaging.display_plane(array, detail.image_format, array.shape[-1] // 2 if array.ndim == 3 else None)
                st.image(imaging.to_uint8(plane), width="stretch", output_format="PNG", caption=title)
            else:
                st.caption(f"{title}: the case lacks the modality it starts from.")
    if record.nearest_texts:
        st.markdown("**Real symptom texts nearest to the image's decoded text**")
        for item in record.nearest_texts:
            st.text(f"[{item['label']}] {item['text']}")
