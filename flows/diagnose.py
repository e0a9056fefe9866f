"""Diagnose flow: predict every eligible case with a model version and store the results, chunk by chunk.

The flow pages through the ids of pending cases and hands each page to one ``diagnose-chunk`` task, which claims
its cases (row locks on PostgreSQL, see :mod:`db.claims`), reads images, embeds texts, runs the model and writes
the chunk's predictions and per-case failures in the claim's transaction. A run killed at any point leaves each
chunk either fully stored or untouched, so a rerun finishes the job with exactly one prediction per case; two
runs at once on PostgreSQL split the work between them.

In the flow's process the chunks form a two-stage pipeline: a reader thread reads the next chunk's cases, images
and text embeddings (read-only, unclaimed) while this thread claims, predicts and stores the current one, with at
most one chunk waiting between them (a bounded queue: memory stays flat). The claim then decides which of the
read cases are still this run's; a case that changed or was taken meanwhile is read again, or skipped.

Chunks run in the flow's process (``task_runner="local"``) or on a Dask cluster (``"dask"``, through
``prefect-dask``): a local cluster by default, or the scheduler at ``dask_address``. Dask workers need the
same view of the store, the image files and the model folder (a PostgreSQL URL and shared storage).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from flows.common import resolve_model
from flows.diagnose_chunk import STAGES, ChunkJob, ChunkResult, ReadAhead, diagnose_chunk, read_ahead
from flows.tracking import recorded_run

__all__ = ["STAGES", "TASK_RUNNERS", "ChunkJob", "ChunkResult", "ReadAhead", "diagnose_chunk", "diagnose_flow", "read_ahead"]

logger = logging.getLogger("flows")


TASK_RUNNERS = ("local", "dask")
"""Where chunks run: in the flow's process, or on Dask."""


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def _pages(db_url: str, model_version_id: int, pending: bool, size: int,
           datasets: list[str | None] | None = None) -> Iterator[list[int]]:
    """Keyset pages of the ids to diagnose (ids only; each page is one short query)."""
    after = 0
    while True:
        with db.session_scope(db_url) as session:
            ids = db.pending_case_ids(session, model_version_id, after_id=after, limit=size, pending=pending,
                                      datasets=datasets)
        if not ids:
            return
        yield ids
        after = ids[-1]


_DONE = object()  # end of the reader thread's pages


def _run_local(pages: Iterator[list[int]], job: ChunkJob) -> Iterator[ChunkResult]:
    """Chunks in this process, the next one read (thread) while the current one is predicted and stored.

    The queue holds at most one read chunk, so at most three chunks' inputs exist at once. An error in the reader
    thread is raised here; closing the generator stops the reader.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for ids in pages:
                if not put((ids, read_ahead(ids, job))):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consuming thread, which raises it
            put(error)

    thread = threading.Thread(target=reader, name="diagnose-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            ids, ahead = item
            yield diagnose_chunk(ids, job, ahead)
    finally:
        stop.set()
        thread.join()


def _dask_runner(address: str | None, n_workers: int) -> Any:
    """A Prefect task runner on the Dask scheduler at ``address``, or on a local cluster of ``n_workers`` processes."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                                         "dashboard_address": None})


def _run_dask(pages: Iterator[list[int]], job: ChunkJob, address: str | None, n_workers: int) -> Iterator[ChunkResult]:
    """Chunks on Dask, at most two per worker in flight (the coordinator's memory stays flat)."""
    job = replace(job, workers=0)  # Dask workers are daemonic processes: they cannot start image-reader processes
    with _dask_runner(address, n_workers) as runner:
        in_flight: deque[Any] = deque()
        window = 2 * max(1, n_workers)
        for ids in pages:
            in_flight.append(runner.submit(diagnose_chunk, parameters={"case_ids": ids, "job": job}))
            if len(in_flight) >= window:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


@flow(name="diagnose")
def diagnose_flow(db_url: str, home: str, model: str = "latest", pending: bool = True, batch_size: int = 512,
                  device: str = "auto", workers: int = 0, task_runner: str = "local", dask_address: str | None = None,
                  dask_workers: int = 2, amp: bool | None = None, compile: bool = False,  # noqa: A002
                  datasets: list[str] | None = None) -> dict[str, Any]:
    """Diagnose cases with a model version.

    Args:
        db_url: Store URL.
        home: Diagnosis home (caches).
        model: ``latest`` or a model version id.
        pending: Only cases without a prediction from this model (else every eligible case, re-predicted).
        datasets: Only cases of these data sets (``None``: every data set; new cases to diagnose usually arrive
            in manifests of their own, hence data sets other than the training one).
        batch_size: Cases per chunk; each chunk is claimed and committed on its own.
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: Image-reading ``DataLoader`` workers per chunk.
        task_runner: ``local`` (chunks in this process) or ``dask``.
        dask_address: Scheduler of an existing Dask cluster (``tcp://host:8786``); default a local cluster.
        dask_workers: Worker processes of the local Dask cluster.
        amp: Mixed precision for the text transformer and the diagnosis model (None: on for CUDA with bfloat16, off
            on the CPU).
        compile: Run the diagnosis model through ``torch.compile`` (needs a C++ compiler on the CPU, Triton on CUDA).

    Returns:
        Counts ``predicted``, ``failed`` and ``skipped`` (held or done by another run), and ``seconds`` per stage
        summed over chunks (with ``total``, the wall time of the chunk loop).

    Raises:
        ValueError: On an unknown ``task_runner`` or a non-positive ``batch_size``.
    """
    if task_runner not in TASK_RUNNERS:
        raise ValueError(f"task runner must be one of {', '.join(TASK_RUNNERS)}, got {task_runner!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    with recorded_run(db_url, "diagnose") as run:
        version = resolve_model(db_url, model)
        run.model_version_id = version.id
        job = ChunkJob(db_url=db_url, home=home, model_version_id=version.id, checkpoint_path=version.checkpoint_path,
                       label_names=tuple(version.label_names), pending=pending, device=device, workers=workers,
                       amp=amp, compile=compile)
        chosen = None if datasets is None else [None if d == db.NO_DATASET else d for d in datasets]
        pages = _pages(db_url, version.id, pending, batch_size, chosen)
        chunks: Iterator[ChunkResult] = (
            _run_local(pages, job) if task_runner == "local" else _run_dask(pages, job, dask_address, dask_workers)
        )
        seconds = dict.fromkeys(STAGES, 0.0)
        run.add(predicted=0, failed=0, skipped=0)
        start = time.perf_counter()
        for result in chunks:
            run.add(predicted=result.predicted, failed=result.failed, skipped=result.skipped)
            for stage, value in result.seconds.items():
                seconds[stage] = seconds.get(stage, 0.0) + value
            logger.info("diagnose: %d predicted, %d failed so far", run.counts["predicted"], run.counts["failed"])
        seconds["total"] = time.perf_counter() - start
        return {**run.counts, "seconds": {k: round(v, 4) for k, v in seconds.items()}}
