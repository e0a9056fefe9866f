"""``diagnosis users add|list|disable`` and ``diagnosis bench dashboard`` at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import db
from flows.cli import app


def test_users_add_list_disable(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    added = runner.invoke(app, [*home, "users", "add", "ada", "--role", "admin"], input="long-password\nlong-password\n")
    assert added.exit_code == 0, added.output
    assert "added admin ada" in added.output
    again = runner.invoke(app, [*home, "users", "add", "ada"], input="long-password\nlong-password\n")
    assert again.exit_code == 1 and "exists already" in again.output
    listed = runner.invoke(app, [*home, "users", "list"])
    assert "ada\tadmin\tactive" in listed.output
    assert runner.invoke(app, [*home, "users", "disable", "ada"]).exit_code == 0
    assert "ada\tadmin\tdisabled" in runner.invoke(app, [*home, "users", "list"]).output
    assert runner.invoke(app, [*home, "users", "disable", "nobody"]).exit_code == 1
    url = db.default_sqlite_url(tmp_path / "home")
    with db.session_scope(url) as session:
        assert db.authenticate(session, "ada", "long-password") is None  # disabled
    db.dispose_engines()


def test_bench_dashboard_fills_a_store_and_times_the_reads(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "dashboard", "--cases", "300", "--repeat", "3", "--json", str(out),
                                      "--store-dir", str(tmp_path / "store")])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["cases"] == 300
    assert set(report["timings"]) == {"worklist first page", "worklist middle page", "worklist filtered", "case page"}
    assert all(row["p50_ms"] > 0 and row["p95_ms"] >= row["p50_ms"] for row in report["timings"].values())
    assert "case page" in result.output
