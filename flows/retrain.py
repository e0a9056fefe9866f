"""Retrain flow: train a candidate, score it and the current model on the same val cases, promote only a better one."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.classify import load_model, predict
from diagnosis.device import resolve_device
from diagnosis.evaluation import classification_metrics
from flows.common import features_task, text_encoder
from flows.tracking import recorded_run
from flows.train import load_labelled_cases, stage_epochs, train_flow

__all__ = ["METRIC", "ValScores", "decide", "promote_if_better", "retrain_flow"]

logger = logging.getLogger("flows")

METRIC = "val_macro_auc"  # the compared metric: macro one-vs-rest AUC on the current val split


@dataclass(frozen=True)
class ValScores:
    """One model's view of the val cases.

    Attributes:
        labels: ``(N,)`` true diagnoses as names (``None`` when the model does not know the case's label).
        probabilities: ``(N, C)`` probabilities over ``label_names``.
        usable: ``(N,)`` the model could score the case (known label, a modality it reads).
        label_names: The model's class names in output order.
    """

    labels: list[str | None]
    probabilities: np.ndarray
    usable: np.ndarray
    label_names: tuple[str, ...]

    def macro_auc(self, keep: np.ndarray) -> float:
        """Macro AUC on the rows in ``keep`` (NaN when it cannot be computed, e.g. one class only)."""
        index = {name: i for i, name in enumerate(self.label_names)}
        y = np.array([index[label] for label, k in zip(self.labels, keep, strict=True) if k], dtype=np.int64)
        return float(classification_metrics(y, self.probabilities[keep], self.label_names)["macro_auc"])


def decide(candidate: float, incumbent: float | None, n: int) -> tuple[bool, str]:
    """Whether the candidate replaces the current model, and why; ``incumbent`` is ``None`` without a current model.

    Strictly greater wins; a score that cannot be computed (NaN) never wins; with no current model the candidate is
    promoted; with no val case both models can score, nothing changes.
    """
    if incumbent is None:
        return True, "no current model to compare with"
    if n == 0:
        return False, "no val case both models can score: keeping the current model"
    if math.isnan(candidate):
        return False, f"candidate {METRIC} not computable on {n} val cases: keeping the current model"
    if math.isnan(incumbent):
        return True, f"candidate {METRIC} {candidate:.4f} on {n} val cases; the current model's is not computable"
    if candidate > incumbent:
        return True, f"candidate {METRIC} {candidate:.4f} > current {incumbent:.4f} on {n} val cases"
    return False, (f"candidate {METRIC} {candidate:.4f} <= current {incumbent:.4f} on {n} val cases: "
                   "keeping the current model")


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def current_model(db_url: str) -> db.ModelVersionView | None:
    """The current (``latest``) model version, if any."""
    with db.session_scope(db_url) as session:
        return db.latest_model_version(session)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def model_version(db_url: str, version_id: int) -> db.ModelVersionView:
    """A model version by id."""
    with db.session_scope(db_url) as session:
        return db.get_model_version(session, version_id)


def val_scores(version: db.ModelVersionView, cases: list[db.CaseInput], home: str, device: str) -> ValScores:
    """Predictions of a registered model on the val cases."""
    net = load_model(version.checkpoint_path, resolve_device(device))
    table = features_task(cases, net.spec, text_encoder(net.spec.text, home), net.lexical)
    preds = predict(net, table, resolve_device(device))
    names = tuple(net.spec.label_names)
    labels = [c.label if c.label in names else None for c in cases]
    usable = np.array([label is not None for label in labels], dtype=bool) & preds.ok
    return ValScores(labels=labels, probabilities=preds.probabilities, usable=usable, label_names=names)


def promote_if_better(db_url: str, candidate_id: int, incumbent_id: int | None, candidate_score: float,
                      incumbent_score: float | None, n: int) -> tuple[bool, str]:
    """Decide with :func:`decide` and store the comparison; a promoted candidate becomes ``latest``.

    Args:
        db_url: Store URL.
        candidate_id: The candidate model version.
        incumbent_id: The current model version it was compared with, ``None`` without one.
        candidate_score: The candidate's :data:`METRIC` on the compared val cases.
        incumbent_score: The current model's on the same cases (``None``: not computable; ignored without
            ``incumbent_id``).
        n: Number of compared val cases.

    Returns:
        Whether the candidate was promoted, and why.
    """
    incumbent = None if incumbent_id is None else math.nan if incumbent_score is None else float(incumbent_score)
    promoted, reason = decide(candidate_score, incumbent, n)
    with db.session_scope(db_url) as session:
        db.record_promotion(session, candidate_id=candidate_id, incumbent_id=incumbent_id, metric=METRIC,
                            candidate_score=candidate_score, incumbent_score=incumbent, promoted=promoted,
                            reason=reason)
    return promoted, reason


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def promote_task(db_url: str, candidate_id: int, incumbent_id: int | None, candidate_score: float,
                 incumbent_score: float | None, n: int) -> tuple[bool, str]:
    """Decide on the candidate and store the comparison (see :func:`promote_if_better`)."""
    return promote_if_better(db_url, candidate_id, incumbent_id, candidate_score, incumbent_score, n)


@flow(name="retrain")
def retrain_flow(db_url: str, home: str, fusion: str = "poe", epochs: int = 30, device: str = "auto",
                 text_model: str | None = None, seed: int = 0) -> dict:
    """Train a candidate on the store's labelled cases and promote it only if it beats the current model on val.

    Both models are scored on the current val split, on the cases both can score (label known to both, an input
    both read); the comparison is stored in ``model_promotions`` either way.

    Args:
        db_url: Store URL.
        home: Diagnosis home (models, caches).
        fusion: Fusion variant of the candidate.
        epochs: Maximum epochs of each of the candidate's training stages (fusion model, image and text stages; the
            stages' own defaults when lower).
        device: ``auto``, ``cpu`` or ``cuda``.
        text_model: Local Hugging Face model folder for the candidate's texts (default: packaged MiniLM).
        seed: Random seed.

    Returns:
        ``candidate_id``, ``incumbent_id``, ``metric``, ``candidate_score``, ``incumbent_score`` (``None`` when not
        computable), ``val_cases`` (compared), ``promoted`` and ``reason``.
    """
    with recorded_run(db_url, "retrain") as run:
        incumbent = current_model(db_url)  # decided before training: the candidate is never its own rival
        candidate_id = train_flow(db_url, home, fusion=fusion, epochs=epochs, device=device, text_model=text_model,
                                  seed=seed, promote=False, **stage_epochs(epochs))
        run.model_version_id = candidate_id
        cases = load_labelled_cases(db_url)["val"]
        rivals = [v for v in (model_version(db_url, candidate_id), incumbent) if v is not None]
        scored = [val_scores(version, cases, home, device) for version in rivals]
        keep = np.logical_and.reduce([s.usable for s in scored])  # the same cases for both
        n = int(keep.sum())
        values = [s.macro_auc(keep) if n else math.nan for s in scored]
        candidate_score, incumbent_score = values[0], (values[1] if incumbent is not None else None)
        promoted, reason = promote_task(db_url, candidate_id, incumbent.id if incumbent else None, candidate_score,
                                        incumbent_score, n)
        run.add(val_cases=n, promoted=int(promoted))
        logger.info("retrain: model version %d %s (%s)", candidate_id, "promoted" if promoted else "not promoted",
                    reason)
        return {"candidate_id": candidate_id, "incumbent_id": incumbent.id if incumbent else None, "metric": METRIC,
                "candidate_score": _json_score(candidate_score), "incumbent_score": _json_score(incumbent_score),
                "val_cases": n, "promoted": promoted, "reason": reason}


def _json_score(value: float | None) -> float | None:
    """A score for JSON, which has no NaN."""
    return None if value is None or math.isnan(value) else round(value, 6)
