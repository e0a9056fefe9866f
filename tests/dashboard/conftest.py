"""Fixtures for the dashboard tests: a seeded SQLite store with real image files, and clean Streamlit caches.

Test modules are imported with ``--import-mode=importlib`` and cannot import this file; everything they need
about the seeded data is an attribute of the :class:`Store` the ``store`` fixture returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import streamlit as st
from PIL import Image

import db

LABELS = ("normal", "pneumonia", "covid")
VOLUME_SHAPE = (16, 12, 10)  # (X, Y, Z): 10 slices along the last axis
REJECT_REASON = "image too small (4, 4); each side needs at least 8 pixels"
METRICS = {
    "val": {"n": 12, "accuracy": 0.75, "macro_f1": 0.7, "macro_auc": 0.8, "ece": 0.1,
            "per_class_recall": {"normal": 1.0, "pneumonia": 0.5, "covid": 0.75}},
    "test": {"n": 10, "accuracy": 0.875, "macro_f1": 0.81, "macro_auc": 0.9125, "ece": 0.05,
             "per_class_recall": {"normal": 1.0, "pneumonia": 0.8, "covid": float("nan")}},
}  # fmt: skip


@dataclass(frozen=True)
class Store:
    """A seeded store: its URL, home folder, the case keys written and facts about the seeded data."""

    url: str
    home: Path
    labels: tuple[str, ...] = LABELS
    reject_reason: str = REJECT_REASON
    volume_shape: tuple[int, int, int] = VOLUME_SHAPE
    image_2d: str = "case-2d"  # PNG + text, diagnosed by two model versions, split test
    image_3d: str = "case-3d"  # NIfTI volume + text, diagnosed, split val
    text_only: str = "case-text"  # text only, diagnosed, split train
    pending: str = "case-pending"  # PNG + text, ingested, no prediction yet
    rejected: str = "case-rejected"  # rejected with REJECT_REASON
    clinician: str = "clinician1"  # an active clinician, password PASSWORD
    admin: str = "admin1"  # an active admin, password PASSWORD
    password: str = "correct horse battery"


def _image_in(path: Path, fmt: str, shape: tuple[int, ...], spacing: tuple[float, ...] | None) -> db.ImageIn:
    """Describe a written image file for ingestion."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return db.ImageIn(path=str(path), sha256=sha, format=fmt, shape=shape, spacing=spacing)


def _write_images(folder: Path) -> tuple[db.ImageIn, db.ImageIn]:
    """Write a 2D PNG (grey top band, square, white corner) and a 3D NIfTI volume (brighter with each slice)."""
    folder.mkdir(parents=True)
    pixels = np.zeros((40, 48), dtype=np.uint8)  # (H, W)
    pixels[:10] = 200
    pixels[35:, 40:] = 255
    pixels[20:30, 10:20] = 128
    Image.fromarray(pixels).save(folder / "chest.png")
    volume = np.random.default_rng(0).random(VOLUME_SHAPE, dtype=np.float32)
    volume += np.arange(VOLUME_SHAPE[-1], dtype=np.float32)  # slices differ from each other
    nib.save(nib.Nifti1Image(volume, np.diag([1.5, 1.5, 2.0, 1.0])), folder / "head.nii.gz")
    png = _image_in(folder / "chest.png", "png", (48, 40), (1.0, 1.0))
    nifti = _image_in(folder / "head.nii.gz", "nifti", VOLUME_SHAPE, (1.5, 1.5, 2.0))
    return png, nifti


def seed_store(url: str, home: Path) -> Store:
    """Write five cases, two model versions, their predictions, a flow run, a clinician and an admin."""
    store = Store(url=url, home=home)
    png, nifti = _write_images(home / "images")
    cases = [
        db.CaseIn(store.image_2d, "p1", "pneumonia", "test", "Productive cough and fever for three days.", png),
        db.CaseIn(store.image_3d, "p2", "normal", "val", "Headache after a fall, no vomiting.", nifti),
        db.CaseIn(store.text_only, "p3", "covid", "train", "Loss of smell, dry cough.", None),
        db.CaseIn(store.pending, "p4", "normal", "train", "Routine check-up.", png),
        db.CaseIn(store.rejected, "p5", "pneumonia", "test", "Chest pain.", None, status="rejected",
                  error=REJECT_REASON),
    ]  # fmt: skip
    with db.session_scope(url) as session:
        run = db.start_flow_run(session, flow_name="ingest", prefect_run_id=None)
        db.upsert_cases(session, cases)
        db.finish_flow_run(session, run, status="completed", counts={"created": 5, "rejected": 1})
        common = {"fusion": "poe", "config": {"latent_dim": 8}, "label_names": LABELS, "checkpoint_path": "/m"}
        old = db.register_model_version(session, name="poe-v1", metrics={}, **common)
        new = db.register_model_version(session, name="poe-v2", metrics=METRICS, **common)
        ids = {c.case_key: c.id for batch in db.iter_case_inputs(session) for c in batch}
        probs = {
            store.image_2d: {"normal": 0.1, "pneumonia": 0.8, "covid": 0.1},
            store.image_3d: {"normal": 0.7, "pneumonia": 0.2, "covid": 0.1},
            store.text_only: {"normal": 0.2, "pneumonia": 0.2, "covid": 0.6},
        }
        used = {store.image_2d: ("image", "text"), store.image_3d: ("image", "text"), store.text_only: ("text",)}
        uncertainty = {store.image_2d: (0.9, ("pneumonia", "normal")), store.image_3d: (0.3, ("normal",)),
                       store.text_only: (None, None)}  # text_only: an older prediction without uncertainty
        latent = {store.image_2d: [1.0] * 8, store.image_3d: [0.0] * 8, store.text_only: [1.5] * 8}
        predictions = [
            db.PredictionIn(ids[key], new, max(p, key=p.__getitem__), p, latent[key], used[key], *uncertainty[key])
            for key, p in probs.items()
        ]
        predictions.append(
            db.PredictionIn(ids[store.image_2d], old, "normal", {"normal": 0.6, "pneumonia": 0.3, "covid": 0.1},
                            [0.0] * 8, ("image",))
        )  # fmt: skip
        db.save_predictions(session, predictions)
        db.create_user(session, store.clinician, store.password, role="clinician")
        db.create_user(session, store.admin, store.password, role="admin")
    return store


@pytest.fixture(autouse=True)
def _clean_caches() -> Iterator[None]:
    """Start and end every test with empty Streamlit caches and no open engines."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    db.dispose_engines()


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A diagnosis home without a database; the dashboard must create the schema itself."""
    home = tmp_path / "empty-home"
    monkeypatch.setenv("DIAGNOSIS_HOME", str(home))
    monkeypatch.delenv("DIAGNOSIS_DATABASE_URL", raising=False)
    return home


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A migrated, seeded SQLite store that ``DIAGNOSIS_DATABASE_URL`` points at."""
    home = tmp_path / "home"
    url = db.default_sqlite_url(home)
    db.migrate(url)
    monkeypatch.setenv("DIAGNOSIS_HOME", str(home))
    monkeypatch.setenv("DIAGNOSIS_DATABASE_URL", url)
    return seed_store(url, home)
