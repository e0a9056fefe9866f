"""Augment flow: class-conditional synthetic cases (latent -> decoded image + nearest real symptom text)."""

from __future__ import annotations

import logging
import secrets
import uuid
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.device import resolve_device
from diagnosis.generation import GeneratedSamples, cross_modal_coherence, nearest_rows, sample_class
from diagnosis.classify import load_model
from flows.common import real_texts, resolve_model, save_decoded_image, text_encoder
from flows.tracking import recorded_run

__all__ = ["SYNTHETIC_PREFIX", "augment_flow"]

SYNTHETIC_PREFIX = "AUG-"  # case ids of generated cases start with this

logger = logging.getLogger("flows")


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def store_samples(samples: GeneratedSamples, texts: list[str | None], label: str, version: int, out_dir: Path, db_url: str) -> int:
    """Write images and store the samples as synthetic training cases."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(len(samples.latents)):
        key = f"{SYNTHETIC_PREFIX}v{version}-{label}-{uuid.uuid4().hex[:10]}"
        image = save_decoded_image(samples.outputs["image"][i], out_dir / key) if "image" in samples.outputs else None
        cases.append(db.CaseIn(case_key=key, patient_key=None, label=label, split="train", text=texts[i], image=image,
                               source=f"augment: model version {version}", is_synthetic=True))
    with db.session_scope(db_url) as session:
        return db.upsert_cases(session, cases).created


@flow(name="augment")
def augment_flow(db_url: str, home: str, label: str, n: int, model: str = "latest", seed: int | None = None,
                 device: str = "auto") -> dict:
    """Generate ``n`` synthetic cases of ``label`` and store them flagged synthetic (never evaluated).

    Each call draws fresh samples unless ``seed`` is given, so "generate more" adds new cases.

    Returns:
        ``created``, the share of samples the model itself diagnoses as ``label`` (``in_class``) and the
        cross-modal coherence (share whose nearest real text carries ``label``; NaN without texts).
    """
    with recorded_run(db_url, "augment") as run:
        version = resolve_model(db_url, model)
        run.model_version_id = version.id
        net = load_model(version.checkpoint_path, resolve_device(device))
        samples = sample_class(net, label, n, seed=secrets.randbits(31) if seed is None else seed)
        texts: list[str | None] = [None] * n
        coherence = float("nan")
        encoder = text_encoder(net.spec.text, home)
        if "text" in samples.outputs and encoder is not None:
            bank, bank_labels = real_texts(db_url)
            if bank:
                neighbours = nearest_rows(samples.outputs["text"], encoder.encode(bank), k=3)
                texts = [bank[row[0]] for row in neighbours]
                coherence = cross_modal_coherence([label] * n, np.array(bank_labels), neighbours)
        created = store_samples(samples, texts, label, version.id, Path(home) / "augment" / f"v{version.id}" / label, db_url)
        in_class = float((samples.probabilities.argmax(1) == version.label_names.index(label)).mean())
        run.add(created=created)
        logger.info("augment: %d synthetic %s cases (%.0f%% diagnosed in class)", created, label, 100 * in_class)
        return {"created": created, "label": label, "in_class": in_class, "text_coherence": coherence}
