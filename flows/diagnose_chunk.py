"""The ``diagnose-chunk`` task of the diagnose flow (:mod:`flows.diagnose`): claim a page of cases, read their
images and texts (or take what the reader thread read ahead), run the model and store the chunk's predictions and
failures in the claim's transaction.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.classify import DiagnosisModel, Predictions, load_model, predict
from diagnosis.device import resolve_device
from diagnosis.features import FeatureTable, TextEncoder, build_features
from flows.common import text_encoder

__all__ = [
    "STAGES",
    "ChunkJob",
    "ChunkResult",
    "ReadAhead",
    "diagnose_chunk",
    "read_ahead",
]


STAGES = ("claim", "read_images", "embed_text", "model", "store")
"""Stages of a chunk, in order; :class:`ChunkResult` times each."""


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to diagnose chunks (small and picklable: it travels to Dask workers).

    Attributes:
        db_url: Store URL.
        home: Diagnosis home (the text-embedding cache lives under it).
        model_version_id: Model version to predict with.
        checkpoint_path: Its checkpoint folder.
        label_names: Its class names.
        pending: Skip cases the model version already predicted.
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: Image-reading ``DataLoader`` workers per chunk.
        amp: Mixed precision for the text transformer and the diagnosis model (None: on for CUDA with bfloat16, off
            on the CPU).
        compile: Run the diagnosis model through ``torch.compile``.
    """

    db_url: str
    home: str
    model_version_id: int
    checkpoint_path: str
    label_names: tuple[str, ...]
    pending: bool = True
    device: str = "auto"
    workers: int = 0
    amp: bool | None = None
    compile: bool = False


@dataclass
class ChunkResult:
    """What one chunk did.

    Attributes:
        predicted: Predictions stored.
        failed: Cases marked failed (with their reason).
        skipped: Handed-over cases that another run held or had already predicted.
        seconds: Stage -> seconds (see :data:`STAGES`).
    """

    predicted: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

_loaded: dict[tuple[str, str, str, bool | None], tuple[DiagnosisModel, TextEncoder | None]] = {}  # per process
_loaded_lock = threading.Lock()


def _model_and_encoder(job: ChunkJob) -> tuple[DiagnosisModel, TextEncoder | None]:
    """The job's model and text encoder, loaded once per process and shared by its threads (the reader thread
    embeds, this one predicts; the embedding cache opens a connection per call)."""
    key = (job.checkpoint_path, job.device, job.home, job.amp)  # the home holds the text cache
    with _loaded_lock:
        if key not in _loaded:
            device = resolve_device(job.device)
            net = load_model(job.checkpoint_path, device)
            _loaded[key] = (net, text_encoder(net.spec.text, job.home, device=str(device), amp=job.amp))
        return _loaded[key]


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a chunk only after an I/O error (lost connection, lock timeout), never after a bug or bad data."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable state is not worth a retry
        return False
    return db.is_transient_error(error if isinstance(error, BaseException) else None)


def _outputs(cases: list[db.CaseInput], preds: Predictions, table: FeatureTable,
             job: ChunkJob) -> tuple[list[db.PredictionIn], list[tuple[int, str]]]:
    """Split a chunk's model output into predictions to store and ``(case_id, reason)`` failures."""
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
        rows.append(db.PredictionIn(case_id=case.id, model_version_id=job.model_version_id,
                                    label=job.label_names[int(probs.argmax())],
                                    probabilities={n: float(p) for n, p in zip(job.label_names, probs, strict=True)},
                                    latent=[float(v) for v in preds.latents[i]], modalities=preds.modalities[i],
                                    uncertainty=float(preds.uncertainty[i]),
                                    prediction_set=preds.set_labels(i, job.label_names),
                                    neighbours=preds.neighbours[i] if preds.neighbours is not None else None))
    return rows, failures


@dataclass
class ReadAhead:
    """A chunk's inputs read before its claim (by the reader thread of a local run).

    Attributes:
        cases: The eligible cases of the chunk when they were read, ordered by id.
        table: Their features, row ``i`` for ``cases[i]``.
        seconds: ``read_images`` and ``embed_text`` seconds spent on them.
    """

    cases: list[db.CaseInput]
    table: FeatureTable
    seconds: dict[str, float]


def read_ahead(case_ids: list[int], job: ChunkJob) -> ReadAhead:
    """Read a chunk's cases, images and texts without claiming them (see :class:`ReadAhead`)."""
    seconds: dict[str, float] = {}
    cases = db.peek_cases(job.db_url, job.model_version_id, case_ids, pending=job.pending)
    net, encoder = _model_and_encoder(job)
    table = build_features(cases, net.spec.modalities.image, encoder, workers=job.workers, timings=seconds,
                           lexical=net.lexical)
    return ReadAhead(cases, table, seconds)


def _rows(table: FeatureTable, index: list[int]) -> FeatureTable:
    """The rows ``index`` of ``table``, in that order (errors renumbered)."""
    position = {old: new for new, old in enumerate(index)}
    return FeatureTable(inputs={m: a[index] for m, a in table.inputs.items()},
                        masks={m: a[index] for m, a in table.masks.items()}, labels=table.labels[index],
                        errors={position[i]: e for i, e in table.errors.items() if i in position})


def _claimed_features(claimed: list[db.CaseInput], ahead: ReadAhead | None, job: ChunkJob,
                      seconds: dict[str, float]) -> FeatureTable:
    """Features of the claimed cases: from the read-ahead where a case is unchanged since, else read now."""
    net, encoder = _model_and_encoder(job)
    if ahead is None:
        return build_features(claimed, net.spec.modalities.image, encoder, workers=job.workers, timings=seconds,
                              lexical=net.lexical)
    for stage, value in ahead.seconds.items():
        seconds[stage] = seconds.get(stage, 0.0) + value
    where = {case: i for i, case in enumerate(ahead.cases)}  # frozen dataclasses: equal when every input is
    if all(case in where for case in claimed):
        return _rows(ahead.table, [where[case] for case in claimed])
    return build_features(claimed, net.spec.modalities.image, encoder, workers=job.workers, timings=seconds,
                              lexical=net.lexical)


@task(name="diagnose-chunk", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15],
      retry_condition_fn=_retry_transient)
def diagnose_chunk(case_ids: list[int], job: ChunkJob, ahead: ReadAhead | None = None) -> ChunkResult:
    """Claim, read, embed, predict and store one chunk in one transaction.

    Cases whose inputs cannot be used are marked failed with the reason; they never fail the chunk. A
    transient store error rolls the chunk back and the task is retried with backoff. With ``ahead`` (this chunk
    read before its claim) the claimed cases reuse those features when they are unchanged.
    """
    seconds = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    with db.claim_chunk(job.db_url, job.model_version_id, case_ids, pending=job.pending) as claim:
        seconds["claim"] = time.perf_counter() - start
        if not claim.cases:
            return ChunkResult(skipped=len(case_ids), seconds=seconds)
        net, _ = _model_and_encoder(job)
        table = _claimed_features(claim.cases, ahead, job, seconds)
        preds = predict(net, table, resolve_device(job.device), amp=job.amp, compile=job.compile, timings=seconds,
                        patients=[c.patient_key for c in claim.cases])
        start = time.perf_counter()
        rows, failures = _outputs(claim.cases, preds, table, job)
        db.save_predictions(claim.session, rows)
        db.mark_cases_failed(claim.session, failures)
    seconds["store"] = time.perf_counter() - start  # the commit included
    return ChunkResult(predicted=len(rows), failed=len(failures), skipped=len(case_ids) - len(claim.cases),
                       seconds=seconds)
