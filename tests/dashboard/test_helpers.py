"""The dashboard's helpers: image scaling / orientation, the tables built from store views, the store reads."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

import db
from dashboard import imaging, tables


def test_to_uint8_spans_0_to_255_and_handles_constant_planes() -> None:
    plane = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    assert imaging.to_uint8(plane).tolist() == [[0, 64], [128, 255]]
    assert imaging.to_uint8(plane, low=0.0, high=1.0).tolist() == [[0, 0], [255, 255]]  # clipped to the range
    assert imaging.to_uint8(np.full((3, 3), 7.0)).max() == 0


def test_display_plane_orients_png_rows_first_and_slices_volumes() -> None:
    loaded_png = np.zeros((48, 40), dtype=np.float32)  # MONAI reads PNG as (W, H)
    assert imaging.display_plane(loaded_png, "png").shape == (40, 48)
    assert imaging.display_plane(loaded_png, "npy").shape == (48, 40)
    volume = np.arange(16 * 12 * 10, dtype=np.float32).reshape(16, 12, 10)
    plane = imaging.display_plane(volume, "nifti", 3)
    assert plane.shape == (12, 16) and np.array_equal(plane, np.rot90(volume[..., 3]))
    with pytest.raises(ValueError, match="out of range"):
        imaging.display_plane(volume, "nifti", 10)
    with pytest.raises(ValueError, match="2D or 3D"):
        imaging.display_plane(np.zeros(5), "npy")


def test_metric_tables_turn_missing_values_into_nan() -> None:
    metrics = {"test": {"n": 4, "accuracy": float("nan"), "per_class_recall": {"a": 0.5, "b": float("nan")}},
               "val": {"n": 2, "accuracy": 1.0}, "best_epoch": 3}  # fmt: skip
    frame = tables.metrics_frame(metrics)
    assert frame.index.tolist() == ["val", "test"]
    assert frame.loc["val", "accuracy"] == 1.0 and np.isnan(frame.loc["test", "accuracy"])
    assert np.isnan(frame.loc["val", "macro AUC"])
    recall = tables.recall_frame(metrics)
    assert recall.columns.tolist() == ["test"] and recall.loc["a", "test"] == 0.5
    assert tables.metrics_frame({}).empty and tables.recall_frame({}).empty


def test_history_frame_lists_model_and_modalities() -> None:
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    predictions = [db.PredictionView(2, "a", {"a": 0.9, "b": 0.1}, ("image", "text"), when),
                   db.PredictionView(1, "b", {"a": 0.4, "b": 0.6}, ("text",), when)]  # fmt: skip
    frame = tables.history_frame(predictions, {2: "new", 1: "old"})
    assert frame["model"].tolist() == ["new", "old"]
    assert frame["probability"].tolist() == [0.9, 0.6]
    assert frame["modalities"].tolist() == ["image + text", "text"]
    assert tables.probabilities_frame(predictions[1])["diagnosis"].tolist() == ["b", "a"]


def test_the_reliability_curve_has_the_bins_of_the_reported_ece() -> None:
    from dashboard.evaluation import calibration_frame
    from diagnosis.evaluation import ECE_BINS, classification_metrics, reliability_bins

    rng = np.random.default_rng(0)
    names = ("normal", "pneumonia")
    p = rng.uniform(0.0, 1.0, 300)
    rows = [db.EvalRow(f"c{i}", names[int(rng.random() < q)], {"normal": 1 - q, "pneumonia": q}) for i, q in enumerate(p)]
    rows.append(db.EvalRow("edge", "normal", {"normal": 1.0, "pneumonia": 0.0}))  # confidence 1.0: the last bin
    curve = calibration_frame(rows)
    assert list(curve.columns) == ["confidence", "accuracy", "cases"] and int(curve["cases"].sum()) == len(rows)
    assert 1 < len(curve) <= ECE_BINS and curve["confidence"].is_monotonic_increasing
    ece_from_curve = float((curve["cases"] * (curve["accuracy"] - curve["confidence"]).abs()).sum() / len(rows))
    probabilities = np.array([[r.probabilities[n] for n in names] for r in rows])
    labels = np.array([names.index(r.label) for r in rows])
    assert ece_from_curve == pytest.approx(classification_metrics(labels, probabilities, names)["ece"])  # one binning
    assert reliability_bins(np.array([0.1, 0.9, 0.95]), np.array([0, 1, 0]), bins=2) == [(0.1, 0.0, 1), (0.925, 0.5, 2)]
    assert calibration_frame([]).empty


def test_store_reads_keep_their_own_cache_and_fresh_reads_see_new_rows(store: Any) -> None:  # conftest Store
    import streamlit as st

    from dashboard import data, insight_data

    st.cache_data.clear()
    counts, labels = data.status_counts(store.url), data.label_counts(store.url)  # same arguments, two caches
    assert counts == {"ingested": 1, "rejected": 1, "diagnosed": 3, "failed": 0} and "unlabelled" not in counts
    assert set(labels) >= {"normal"} and set(labels) != set(counts)
    assert data.status_counts.__name__ == "status_counts" and "Cases per status" in (data.status_counts.__doc__ or "")
    assert insight_data.review_counts(store.url) == data.store_read(db.review_counts, cached=False)(store.url)
    assert data.reconstruction(store.url, store.image_2d, 2) is None
    with db.session_scope(store.url) as session:
        db.save_reconstruction(session, store.image_2d, 2, reconstruction_path=None, image_from_text_path=None,
                               nearest_texts=[])  # fmt: skip
        session.execute(db.models.Case.__table__.update().values(status="failed"))  # every case, behind the cache
    assert data.reconstruction(store.url, store.image_2d, 2) is not None  # never cached
    assert data.status_counts(store.url) == counts  # cached for QUERY_TTL_S
    st.cache_data.clear()
    assert data.status_counts(store.url)["failed"] == 5
