"""``diagnosis bench dashboard|store``: the command line of the store's timing benchmarks (:mod:`db.benchmark`).

``bench dashboard`` fills a fresh store and times the dashboard reads; ``bench store`` times bulk prediction writes
on SQLite and PostgreSQL and the dashboard reads.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

__all__ = ["COMMANDS", "dashboard", "store"]


def dashboard(
    cases: Annotated[int, typer.Option(min=10, help="Cases (one prediction each) in the fresh store.")] = 100_000,
    repeat: Annotated[int, typer.Option(min=1, help="Timed runs per query.")] = 20,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the figures here.")] = None,
    store_dir: Annotated[Optional[Path], typer.Option(help="Keep the filled SQLite store in this folder.")] = None,
) -> None:
    """Fill a fresh SQLite store with CASES predicted cases, then time worklist and case-page reads (p50/p95)."""
    import db
    from db import benchmark

    folder = store_dir or Path(tempfile.mkdtemp(prefix="diagnosis-bench-"))
    url = db.default_sqlite_url(folder)
    db.migrate(url)
    with db.session_scope(url) as session:
        if db.count_cases(session) > 0:
            typer.secho(f"error: {folder} holds a store already; pass an empty --store-dir", fg="red", err=True)
            raise typer.Exit(1)
    start = time.perf_counter()
    keys = benchmark.fill_store(url, cases)
    fill_s = time.perf_counter() - start
    timings = benchmark.time_dashboard_queries(url, keys, repeat)
    typer.echo(f"store: {url} · {cases:,} cases filled in {fill_s:.1f} s · {repeat} runs per query")
    typer.echo(f"{'query':<44}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, row in timings.items():
        typer.echo(f"{name:<44}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}{row['max_ms']:>10.1f}")
    if json_path is not None:
        report = {"cases": cases, "repeat": repeat, "fill_s": fill_s, "store": url, "timings": timings}
        json_path.write_text(json.dumps(report, indent=2))
    db.dispose_engines()


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
    from db import benchmark
    from flows.cli.render import emit_report, figures_table

    folder = Path(tempfile.mkdtemp(prefix="diagnosis-bench-store-"))
    writes: dict[str, list[dict[str, float]]] = {"sqlite": []}
    for size in sorted({int(b) for b in batch.split(",") if b.strip()}):
        sqlite_url = db.default_sqlite_url(folder / f"sqlite-{size}")
        db.migrate(sqlite_url)
        writes["sqlite"].append(benchmark.time_bulk_writes(sqlite_url, rows, size))
        if postgres and (pg := benchmark.postgres_bulk_writes(folder / f"pg-{size}", rows, size)) is not None:
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
        keys = benchmark.fill_store(url, dashboard_cases)
        report["dashboard"] = {"cases": dashboard_cases, "fill_s": time.perf_counter() - start,
                               "timings": benchmark.time_dashboard_queries(url, keys, repeat)}  # fmt: skip
        tables.append(figures_table(
            f"Dashboard queries, SQLite, {dashboard_cases:,} cases ({repeat} runs each)", ["query", "p50 ms", "p95 ms", "max ms"],
            [[name, f"{t['p50_ms']:.1f}", f"{t['p95_ms']:.1f}", f"{t['max_ms']:.1f}"]
             for name, t in report["dashboard"]["timings"].items()],
        ))
    emit_report(tables, report, json_path)
    db.dispose_engines()


COMMANDS = {"dashboard": dashboard, "store": store}
"""``diagnosis bench`` commands of this module, by name (registered by :mod:`flows.cli.bench`)."""
