"""The dashboard's pure helpers: image scaling / orientation and the tables built from store views."""

from __future__ import annotations

from datetime import datetime, timezone

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
