"""Diagnose flow: predict every eligible case with a model version and store the results, chunk by chunk."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.classify import DiagnosisModel, Predictions, predict
from diagnosis.device import resolve_device
from diagnosis.training import FeatureTable, load_model
from flows.common import features_task, text_encoder
from flows.tracking import recorded_run

__all__ = ["diagnose_flow"]

logger = logging.getLogger("flows")


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def resolve_model(db_url: str, ref: str) -> db.ModelVersionView:
    """Look up ``latest`` or a model version id."""
    with db.session_scope(db_url) as session:
        return db.get_model_version(session, ref)


@task(cache_policy=NO_CACHE)
def predict_task(model: DiagnosisModel, table: FeatureTable, device: str) -> Predictions:
    """Run the model over one chunk."""
    return predict(model, table, resolve_device(device))


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def store_task(cases: list[db.CaseInput], preds: Predictions, table: FeatureTable, model: db.ModelVersionView, db_url: str) -> tuple[int, int]:
    """Write one chunk's predictions and failures in one transaction; returns (predicted, failed)."""
    names = tuple(model.label_names)
    rows, failures = [], []
    for i, case in enumerate(cases):
        if not preds.ok[i]:
            has = [m for m, present in (("image", case.image_path), ("text", case.text)) if present]
            reason = table.errors.get(i) or (
                f"no input this model can use: it reads {', '.join(table.masks) or 'nothing'}, the case has {', '.join(has) or 'nothing'}"
            )
            failures.append((case.id, reason))
            continue
        probs = preds.probabilities[i]
        rows.append(db.PredictionIn(case_id=case.id, model_version_id=model.id, label=names[int(probs.argmax())],
                                    probabilities={n: float(p) for n, p in zip(names, probs, strict=True)},
                                    latent=[float(v) for v in preds.latents[i]], modalities=preds.modalities[i],
                                    uncertainty=float(preds.uncertainty[i]), prediction_set=preds.set_labels(i, names)))
    with db.session_scope(db_url) as session:
        db.save_predictions(session, rows)
        db.mark_cases_failed(session, failures)
    return len(rows), len(failures)


@flow(name="diagnose")
def diagnose_flow(db_url: str, home: str, model: str = "latest", pending: bool = True, batch_size: int = 512,
                  device: str = "auto") -> dict[str, int]:
    """Diagnose cases with a model version.

    Args:
        db_url: Store URL.
        home: Diagnosis home (caches).
        model: ``latest`` or a model version id.
        pending: Only cases without a prediction from this model (else every eligible case, re-predicted).
        batch_size: Cases per chunk; each chunk is committed on its own.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        Counts ``predicted`` and ``failed``.
    """
    with recorded_run(db_url, "diagnose") as run:
        version = resolve_model(db_url, model)
        run.model_version_id = version.id
        net = load_model(version.checkpoint_path, resolve_device(device))
        encoder = text_encoder(net.spec.text, Path(home) / "cache")
        run.add(predicted=0, failed=0)
        with db.session_scope(db_url) as session:
            chunks = db.iter_case_inputs(session, pending_for_model=version.id if pending else None, batch_size=batch_size)
            for chunk in chunks:
                table = features_task(chunk, net.spec, encoder)
                preds = predict_task(net, table, device)
                predicted, failed = store_task(chunk, preds, table, version, db_url)
                run.add(predicted=predicted, failed=failed)
                logger.info("diagnose: %d predicted, %d failed so far", run.counts["predicted"], run.counts["failed"])
        return dict(run.counts)
