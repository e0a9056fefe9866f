"""``diagnosis bench dashboard|store``: timing benchmarks of the store.

``bench dashboard`` fills a fresh store and times the dashboard reads; ``bench store`` times bulk prediction writes
on SQLite and PostgreSQL and the dashboard reads.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

__all__ = ["COMMANDS", "dashboard", "fill_store", "store", "time_bulk_writes", "time_dashboard_queries"]

LABELS = ("normal", "pneumonia", "covid", "effusion", "fracture", "pneumothorax")  # bench diagnoses
LATENT_DIM = 32  # stored latent size, as the default model
BATCH = 5000  # cases per bulk write
REVIEWS = 200  # reviews written (so worklist review filters and neighbours have work)


def fill_store(url: str, cases: int, seed: int = 0) -> list[str]:
    """Write ``cases`` cases with one prediction each (uncertainty, conformal set, latent) and a few reviews.

    Everything goes through the bulk functions of :mod:`db`. Returns the case keys.
    """
    import db

    rng = random.Random(seed)
    keys = [f"bench-{i:07d}" for i in range(cases)]
    with db.session_scope(url) as session:
        model = db.register_model_version(session, name="bench", fusion="poe", config={}, label_names=LABELS,
                                          metrics={}, checkpoint_path="/dev/null")  # fmt: skip
        db.create_user(session, "bench", "bench-password", role="clinician")
    for start in range(0, cases, BATCH):
        rows = [db.CaseIn(key, f"p-{key}", rng.choice(LABELS), "test", f"symptoms of {key}", None)
                for key in keys[start : start + BATCH]]  # fmt: skip
        with db.session_scope(url) as session:
            db.upsert_cases(session, rows)
    with db.session_scope(url) as session:
        for batch in db.iter_case_inputs(session, batch_size=BATCH):
            predictions = []
            for case in batch:
                weights = [rng.random() for _ in LABELS]
                probs = {label: w / sum(weights) for label, w in zip(LABELS, weights, strict=True)}
                best = max(probs, key=probs.__getitem__)
                predictions.append(db.PredictionIn(
                    case.id, model, best, probs, [rng.gauss(0, 1) for _ in range(LATENT_DIM)], ("text",),
                    uncertainty=rng.random() * 1.8 if rng.random() > 0.05 else None, prediction_set=(best,),
                ))  # fmt: skip
            db.save_predictions(session, predictions)
    with db.session_scope(url) as session:
        for key in rng.sample(keys, min(REVIEWS, cases)):
            db.submit_review(session, case_key=key, username="bench", final_label=rng.choice(LABELS),
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
    import db

    rng = random.Random(seed)
    with db.session_scope(url) as session:
        model = db.latest_model_version(session)
    assert model is not None
    everything = db.WorklistFilter(model_version_id=model.id)
    filtered = db.WorklistFilter(model_version_id=model.id, review="unreviewed", predicted_label=LABELS[-1],
                                 min_uncertainty=0.5)  # fmt: skip
    deep = max(0, len(keys) // 2 // 50 * 50)
    with db.session_scope(url) as session:
        deep_start = db.worklist_cursor_at(session, everything, deep)  # where the middle page starts

    def worklist(where: db.WorklistFilter, exact: bool = False,
                 after: db.WorklistCursor | None = None) -> Callable[[], Any]:
        """A page's rows and its pager's count: as the dashboard counts (from the page on, up to COUNT_AHEAD + 1
        rows), or every matching row with ``exact``."""

        def run() -> Any:
            with db.session_scope(url) as session:
                count = (db.count_worklist(session, where) if exact else
                         db.count_worklist(session, where, after=after, limit=db.COUNT_AHEAD + 1))  # fmt: skip
                return count, db.list_worklist(session, where, limit=50, after=after)

        return run

    def offset_page() -> Any:  # before keyset pages: an exact count and OFFSET
        with db.session_scope(url) as session:
            return db.count_worklist(session, everything), db.list_worklist(session, everything, limit=50, offset=deep)

    def jump(rows: int, after: db.WorklistCursor | None = None) -> Callable[[], Any]:
        """A page ``rows`` rows after ``after`` without the pages between: one index walk, then the keyset page."""

        def run() -> Any:
            with db.session_scope(url) as session:
                start = db.worklist_cursor_at(session, everything, rows, after)
                return db.list_worklist(session, everything, limit=50, after=start)

        return run

    def case_page() -> Any:
        key = rng.choice(keys)
        with db.session_scope(url) as session:
            detail = db.get_case(session, key)
            return (detail, db.get_review(session, key), db.audit_log(session, case_key=key),
                    db.similar_cases(session, key, model.id))  # fmt: skip

    return {
        "worklist first page": _time(worklist(everything), repeat),
        "worklist middle page": _time(worklist(everything, after=deep_start), repeat),
        "worklist filtered": _time(worklist(filtered), repeat),
        "worklist filtered, exact count": _time(worklist(filtered, exact=True), repeat),
        "middle page, jump to the last page listed": _time(jump(db.COUNT_AHEAD - 50, deep_start), repeat),
        "middle page by jump from the top": _time(jump(deep), repeat),
        "middle page by OFFSET": _time(offset_page, max(1, repeat // 4)),
        "case page": _time(case_page, repeat),
    }


def dashboard(
    cases: Annotated[int, typer.Option(min=10, help="Cases (one prediction each) in the fresh store.")] = 100_000,
    repeat: Annotated[int, typer.Option(min=1, help="Timed runs per query.")] = 20,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the figures here.")] = None,
    store_dir: Annotated[Optional[Path], typer.Option(help="Keep the filled SQLite store in this folder.")] = None,
) -> None:
    """Fill a fresh SQLite store with CASES predicted cases, then time worklist and case-page reads (p50/p95)."""
    import db

    folder = store_dir or Path(tempfile.mkdtemp(prefix="diagnosis-bench-"))
    url = db.default_sqlite_url(folder)
    db.migrate(url)
    with db.session_scope(url) as session:
        if db.count_cases(session) > 0:
            typer.secho(f"error: {folder} holds a store already; pass an empty --store-dir", fg="red", err=True)
            raise typer.Exit(1)
    start = time.perf_counter()
    keys = fill_store(url, cases)
    fill_s = time.perf_counter() - start
    timings = time_dashboard_queries(url, keys, repeat)
    typer.echo(f"store: {url} · {cases:,} cases filled in {fill_s:.1f} s · {repeat} runs per query")
    typer.echo(f"{'query':<44}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, row in timings.items():
        typer.echo(f"{name:<44}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}{row['max_ms']:>10.1f}")
    if json_path is not None:
        report = {"cases": cases, "repeat": repeat, "fill_s": fill_s, "store": url, "timings": timings}
        json_path.write_text(json.dumps(report, indent=2))
    db.dispose_engines()


def time_bulk_writes(url: str, rows: int, batch: int, seed: int = 0) -> dict[str, float]:
    """Rows/s of :func:`db.save_predictions` into a migrated, empty store: a first write, then the same keys again.

    ``rows`` cases are stored first (not timed); the predictions (32-d latents, six classes) are built before the
    clock starts; each ``batch`` is one transaction, as a diagnose chunk is.
    """
    import db

    rng = random.Random(seed)
    with db.session_scope(url) as session:
        model = db.register_model_version(session, name="bench", fusion="poe", config={}, label_names=LABELS,
                                          metrics={}, checkpoint_path="/dev/null")  # fmt: skip
    for start in range(0, rows, BATCH):
        with db.session_scope(url) as session:
            db.upsert_cases(session, [db.CaseIn(f"w-{i:08d}", None, None, "test", "bulk", None)
                                      for i in range(start, min(rows, start + BATCH))])  # fmt: skip
    with db.session_scope(url) as session:
        ids = [case.id for chunk in db.iter_case_inputs(session, batch_size=BATCH) for case in chunk]
    predictions = []
    for case_id in ids:
        weights = [rng.random() for _ in LABELS]
        probs = {label: w / sum(weights) for label, w in zip(LABELS, weights, strict=True)}
        best = max(probs, key=probs.__getitem__)
        predictions.append(db.PredictionIn(case_id, model, best, probs, [rng.gauss(0, 1) for _ in range(LATENT_DIM)],
                                           ("image", "text"), uncertainty=rng.random(), prediction_set=(best,)))  # fmt: skip
    out: dict[str, float] = {"rows": len(predictions), "batch": batch}
    for name in ("insert", "update"):  # the second pass rewrites every row (idempotent upsert, last one wins)
        start = time.perf_counter()
        for first in range(0, len(predictions), batch):
            with db.session_scope(url) as session:
                db.save_predictions(session, predictions[first : first + batch])
        seconds = time.perf_counter() - start
        out[f"{name}_s"], out[f"{name}_rows_per_s"] = seconds, len(predictions) / seconds
    with db.get_engine(url).connect() as connection:
        out["stored"] = connection.exec_driver_sql("SELECT count(*) FROM predictions").scalar_one()
    return out


def _postgres_writes(folder: Path, rows: int, batch: int) -> dict[str, float] | None:
    """:func:`time_bulk_writes` on a throw-away PostgreSQL server (pgserver); None when pgserver is missing."""
    import importlib.util

    import db

    if importlib.util.find_spec("pgserver") is None:
        return None
    import pgserver

    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE bench;")
        url = server.get_uri("bench").replace("postgresql://", "postgresql+psycopg2://", 1)
        db.migrate(url)
        return time_bulk_writes(url, rows, batch)
    finally:
        db.dispose_engines()
        server.cleanup()


def store(
    rows: Annotated[int, typer.Option(min=10, help="Predictions written in bulk.")] = 100_000,
    batch: Annotated[str, typer.Option(help="Comma-separated predictions per transaction (512: a diagnose chunk).")] = "512,5000",
    dashboard_cases: Annotated[int, typer.Option(min=0, help="Cases for the dashboard queries (0: skip them).")] = 100_000,
    repeat: Annotated[int, typer.Option(min=1, help="Timed runs per dashboard query.")] = 10,
    postgres: Annotated[bool, typer.Option("--postgres/--no-postgres", help="Also on PostgreSQL (pgserver).")] = True,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write every figure here.")] = None,
) -> None:
    """Bulk prediction writes (rows/s) on SQLite and PostgreSQL, and the dashboard's main queries on a full store."""
    import db
    from flows.cli.render import emit_report, figures_table

    folder = Path(tempfile.mkdtemp(prefix="diagnosis-bench-store-"))
    writes: dict[str, list[dict[str, float]]] = {"sqlite": []}
    for size in sorted({int(b) for b in batch.split(",") if b.strip()}):
        sqlite_url = db.default_sqlite_url(folder / f"sqlite-{size}")
        db.migrate(sqlite_url)
        writes["sqlite"].append(time_bulk_writes(sqlite_url, rows, size))
        if postgres and (pg := _postgres_writes(folder / f"pg-{size}", rows, size)) is not None:
            writes.setdefault("postgresql", []).append(pg)
    report: dict[str, Any] = {"rows": rows, "writes": writes}
    table = figures_table(
        f"Bulk prediction writes — {rows:,} rows (6 classes, 32-d latents)",
        ["store", "rows per transaction", "insert rows/s", "re-write rows/s", "rows stored"],
        [[name, f"{w['batch']:,}", f"{w['insert_rows_per_s']:,.0f}", f"{w['update_rows_per_s']:,.0f}", f"{w['stored']:,}"]
         for name, runs in writes.items() for w in runs],
    )
    tables = [table]
    if dashboard_cases:
        url = db.default_sqlite_url(folder / "dashboard")
        db.migrate(url)
        start = time.perf_counter()
        keys = fill_store(url, dashboard_cases)
        report["dashboard"] = {"cases": dashboard_cases, "fill_s": time.perf_counter() - start,
                               "timings": time_dashboard_queries(url, keys, repeat)}  # fmt: skip
        tables.append(figures_table(
            f"Dashboard queries, SQLite, {dashboard_cases:,} cases ({repeat} runs each)", ["query", "p50 ms", "p95 ms", "max ms"],
            [[name, f"{t['p50_ms']:.1f}", f"{t['p95_ms']:.1f}", f"{t['max_ms']:.1f}"]
             for name, t in report["dashboard"]["timings"].items()],
        ))
    emit_report(tables, report, json_path)
    db.dispose_engines()


COMMANDS = {"dashboard": dashboard, "store": store}
"""``diagnosis bench`` commands of this module, by name (registered by :mod:`flows.cli.bench`)."""
