"""``diagnosis users add|list|disable|set-role|unlock`` and ``diagnosis bench dashboard`` at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import db
from flows.cli import app


def test_users_add_list_disable(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    password = {"DIAGNOSIS_NEW_PASSWORD": "long-password"}
    blind = runner.invoke(app, [*home, "users", "add", "ada"], env={"DIAGNOSIS_NEW_PASSWORD": None})  # no terminal
    assert blind.exit_code == 2 and "DIAGNOSIS_NEW_PASSWORD" in blind.output and "Aborted" not in blind.output
    added = runner.invoke(app, [*home, "users", "add", "ada", "--role", "admin"], env=password)
    assert added.exit_code == 0, added.output
    assert "added user ada (role admin)" in added.output
    again = runner.invoke(app, [*home, "users", "add", "ada"], env=password)
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


def test_users_set_role_and_unlock_after_a_lockout(tmp_path: Path) -> None:
    from datetime import timedelta

    from db.models import utcnow

    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    assert runner.invoke(app, [*home, "users", "add", "bea"], env={"DIAGNOSIS_NEW_PASSWORD": "long-password"}).exit_code == 0
    promoted = runner.invoke(app, [*home, "users", "set-role", "bea", "admin"])
    assert promoted.exit_code == 0 and "bea is now admin" in promoted.output
    assert runner.invoke(app, [*home, "users", "set-role", "bea", "emperor"]).exit_code == 1
    url = db.default_sqlite_url(tmp_path / "home")
    policy, start = db.SignInPolicy(), utcnow()
    for attempt in range(policy.max_failures):  # each attempt after its delay, until the lockout
        with db.session_scope(url) as session:
            db.sign_in(session, "bea", "wrong", client="ip:10.0.0.7", now=start + timedelta(seconds=120 * attempt))
    later = start + timedelta(seconds=120 * policy.max_failures)
    with db.session_scope(url) as session:
        assert db.sign_in(session, "bea", "long-password", client="ip:10.0.0.8", now=later).outcome == "locked"
    unlocked = runner.invoke(app, [*home, "users", "unlock", "bea"])
    assert unlocked.exit_code == 0 and "unlocked" in unlocked.output
    with db.session_scope(url) as session:
        assert db.sign_in(session, "bea", "long-password", client="ip:10.0.0.8", now=later).outcome == "ok"
    assert runner.invoke(app, [*home, "users", "unlock"]).exit_code == 2
    db.dispose_engines()


def test_bench_dashboard_fills_a_store_and_times_the_reads(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "dashboard", "--cases", "300", "--repeat", "3", "--json", str(out),
                                      "--store-dir", str(tmp_path / "store")])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["cases"] == 300
    assert set(report["timings"]) == {"worklist first page", "worklist middle page", "worklist filtered",
                                      "worklist filtered, exact count", "case page",
                                      "middle page, jump to the last page listed", "middle page by jump from the top",
                                      "middle page by OFFSET"}  # fmt: skip
    assert all(row["p50_ms"] > 0 and row["p95_ms"] >= row["p50_ms"] for row in report["timings"].values())
    assert "case page" in result.output
