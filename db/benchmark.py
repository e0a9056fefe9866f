"""Timing benchmarks of the store (``diagnosis bench store|dashboard``): bulk prediction writes on SQLite and
PostgreSQL, and what the dashboard's worklist and case page read, on a store filled here.

Everything goes through the store's own bulk functions, so the figures are what the flows and the dashboard get.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from db.cases import CaseIn, get_case, iter_case_inputs, upsert_cases
from db.engine import dispose_engines, get_engine, migrate, session_scope
from db.model_versions import latest_model_version, register_model_version
from db.predictions import PredictionIn, save_predictions
from db.reviews import audit_log, get_review, submit_review
from db.screens.insight import similar_cases
from db.screens.worklist import (
    COUNT_AHEAD,
    WorklistCursor,
    WorklistFilter,
    count_worklist,
    list_worklist,
    worklist_cursor_at,
)
from db.users import create_user

__all__ = ["LABELS", "fill_store", "postgres_bulk_writes", "time_bulk_writes", "time_dashboard_queries"]

LABELS = ("normal", "pneumonia", "covid", "effusion", "fracture", "pneumothorax")  # bench diagnoses
LATENT_DIM = 32  # stored latent size, as the default model
BATCH = 5000  # cases per bulk write
REVIEWS = 200  # reviews written (so worklist review filters and neighbours have work)


def fill_store(url: str, cases: int, seed: int = 0) -> list[str]:
    """Write ``cases`` cases with one prediction each (uncertainty, conformal set, latent) and a few reviews.

    Everything goes through the bulk functions of :mod:`db`. Returns the case keys.
    """
    rng = random.Random(seed)
    keys = [f"bench-{i:07d}" for i in range(cases)]
    with session_scope(url) as session:
        model = register_model_version(session, name="bench", fusion="poe", config={}, label_names=LABELS,
                                          metrics={}, checkpoint_path="/dev/null")  # fmt: skip
        create_user(session, "bench", "bench-password", role="clinician")
    for start in range(0, cases, BATCH):
        rows = [CaseIn(key, f"p-{key}", rng.choice(LABELS), "test", f"symptoms of {key}", None)
                for key in keys[start : start + BATCH]]  # fmt: skip
        with session_scope(url) as session:
            upsert_cases(session, rows)
    with session_scope(url) as session:
        for batch in iter_case_inputs(session, batch_size=BATCH):
            predictions = []
            for case in batch:
                weights = [rng.random() for _ in LABELS]
                probs = {label: w / sum(weights) for label, w in zip(LABELS, weights, strict=True)}
                best = max(probs, key=probs.__getitem__)
                predictions.append(PredictionIn(
                    case.id, model, best, probs, [rng.gauss(0, 1) for _ in range(LATENT_DIM)], ("text",),
                    uncertainty=rng.random() * 1.8 if rng.random() > 0.05 else None, prediction_set=(best,),
                ))  # fmt: skip
            save_predictions(session, predictions)
    with session_scope(url) as session:
        for key in rng.sample(keys, min(REVIEWS, cases)):
            submit_review(session, case_key=key, username="bench", final_label=rng.choice(LABELS),
                             expected_version=0, predicted_label=None, model_version_id=model)  # fmt: skip
    return keys


def _time(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    """p50 / p95 / max wall time of ``call`` in milliseconds over ``repeat`` runs (after one warm-up)."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {"p50_ms": statistics.median(samples), "p95_ms": p95, "max_ms": samples[-1]}


def time_dashboard_queries(url: str, keys: list[str], repeat: int = 20, seed: int = 1) -> dict[str, dict[str, float]]:
    """Time what the worklist and the case page read (the dashboard's caches are bypassed)."""
    rng = random.Random(seed)
    with session_scope(url) as session:
        model = latest_model_version(session)
    assert model is not None
    everything = WorklistFilter(model_version_id=model.id)
    filtered = WorklistFilter(model_version_id=model.id, review="unreviewed", predicted_label=LABELS[-1],
                                 min_uncertainty=0.5)  # fmt: skip
    deep = max(0, len(keys) // 2 // 50 * 50)
    with session_scope(url) as session:
        deep_start = worklist_cursor_at(session, everything, deep)  # where the middle page starts

    def worklist(where: WorklistFilter, exact: bool = False,
                 after: WorklistCursor | None = None) -> Callable[[], Any]:
        """A page's rows and its pager's count: as the dashboard counts (from the page on, up to COUNT_AHEAD + 1
        rows), or every matching row with ``exact``."""

        def run() -> Any:
            with session_scope(url) as session:
                count = (count_worklist(session, where) if exact else
                         count_worklist(session, where, after=after, limit=COUNT_AHEAD + 1))  # fmt: skip
                return count, list_worklist(session, where, limit=50, after=after)

        return run

    def offset_page() -> Any:  # before keyset pages: an exact count and OFFSET
        with session_scope(url) as session:
            return count_worklist(session, everything), list_worklist(session, everything, limit=50, offset=deep)

    def jump(rows: int, after: WorklistCursor | None = None) -> Callable[[], Any]:
        """A page ``rows`` rows after ``after`` without the pages between: one index walk, then the keyset page."""

        def run() -> Any:
            with session_scope(url) as session:
                start = worklist_cursor_at(session, everything, rows, after)
                return list_worklist(session, everything, limit=50, after=start)

        return run

    def case_page() -> Any:
        key = rng.choice(keys)
        with session_scope(url) as session:
            detail = get_case(session, key)
            return (detail, get_review(session, key), audit_log(session, case_key=key),
                    similar_cases(session, key, model.id))  # fmt: skip

    return {
        "worklist first page": _time(worklist(everything), repeat),
        "worklist middle page": _time(worklist(everything, after=deep_start), repeat),
        "worklist filtered": _time(worklist(filtered), repeat),
        "worklist filtered, exact count": _time(worklist(filtered, exact=True), repeat),
        "middle page, jump to the last page listed": _time(jump(COUNT_AHEAD - 50, deep_start), repeat),
        "middle page by jump from the top": _time(jump(deep), repeat),
        "middle page by OFFSET": _time(offset_page, max(1, repeat // 4)),
        "case page": _time(case_page, repeat),
    }


def time_bulk_writes(url: str, rows: int, batch: int, seed: int = 0) -> dict[str, float]:
    """Rows/s of :func:`save_predictions` into a migrated, empty store: a first write, then the same keys again.

    ``rows`` cases are stored first (not timed); the predictions (32-d latents, six classes) are built before the
    clock starts; each ``batch`` is one transaction, as a diagnose chunk is.
    """
    rng = random.Random(seed)
    with session_scope(url) as session:
        model = register_model_version(session, name="bench", fusion="poe", config={}, label_names=LABELS,
                                          metrics={}, checkpoint_path="/dev/null")  # fmt: skip
    for start in range(0, rows, BATCH):
        with session_scope(url) as session:
            upsert_cases(session, [CaseIn(f"w-{i:08d}", None, None, "test", "bulk", None)
                                      for i in range(start, min(rows, start + BATCH))])  # fmt: skip
    with session_scope(url) as session:
        ids = [case.id for chunk in iter_case_inputs(session, batch_size=BATCH) for case in chunk]
    predictions = []
    for case_id in ids:
        weights = [rng.random() for _ in LABELS]
        probs = {label: w / sum(weights) for label, w in zip(LABELS, weights, strict=True)}
        best = max(probs, key=probs.__getitem__)
        predictions.append(PredictionIn(case_id, model, best, probs, [rng.gauss(0, 1) for _ in range(LATENT_DIM)],
                                           ("image", "text"), uncertainty=rng.random(), prediction_set=(best,)))  # fmt: skip
    out: dict[str, float] = {"rows": len(predictions), "batch": batch}
    for name in ("insert", "update"):  # the second pass rewrites every row (idempotent upsert, last one wins)
        start = time.perf_counter()
        for first in range(0, len(predictions), batch):
            with session_scope(url) as session:
                save_predictions(session, predictions[first : first + batch])
        seconds = time.perf_counter() - start
        out[f"{name}_s"], out[f"{name}_rows_per_s"] = seconds, len(predictions) / seconds
    with get_engine(url).connect() as connection:
        out["stored"] = connection.exec_driver_sql("SELECT count(*) FROM predictions").scalar_one()
    return out


def postgres_bulk_writes(folder: Path, rows: int, batch: int) -> dict[str, float] | None:
    """:func:`time_bulk_writes` on a throw-away PostgreSQL server (pgserver) in ``folder``; None when pgserver is
    missing."""
    import importlib.util

    if importlib.util.find_spec("pgserver") is None:
        return None
    import pgserver

    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE bench;")
        url = server.get_uri("bench").replace("postgresql://", "postgresql+psycopg2://", 1)
        migrate(url)
        return time_bulk_writes(url, rows, batch)
    finally:
        dispose_engines()
        server.cleanup()
