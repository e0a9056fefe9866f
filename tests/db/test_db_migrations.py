"""Schema migrations and engine set-up."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC
from importlib import resources
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

import db

from db import default_sqlite_url, get_engine, migrate, session_scope
from db.engine import _alembic_config
from db.models import Base, Patient


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(resources.files("db") / "migrations")).get_current_head()


EXPECTED_TABLES = {"patients", "cases", "images", "symptom_notes", "model_versions", "predictions", "flow_runs",
                   "users", "reviews", "audit_log", "model_promotions", "inbox_manifests", "sign_in_throttle",
                   "web_sessions", "reconstructions"}


def test_migration_creates_every_table(db_url: str) -> None:
    inspector = inspect(get_engine(db_url))
    assert set(inspector.get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    index_names = {ix["name"] for ix in inspector.get_indexes("cases")}
    assert {"ix_cases_status", "ix_cases_split", "ix_cases_label"} <= index_names
    assert {ix["name"] for ix in inspector.get_indexes("predictions")} >= {"ix_predictions_model_version_id"}
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("predictions")}
    assert ("case_id", "model_version_id") in uniques


def test_audit_log_takes_sign_in_actions_and_stays_append_only(db_url: str) -> None:
    """Revision 0005 widened the action check (rebuilding the table on SQLite) and kept the triggers and index."""
    with session_scope(db_url) as session:
        entry = db.append_audit(session, username="ann", action="sign_in_failed", after={"client": "ip:1"})
    with pytest.raises(IntegrityError), session_scope(db_url) as session:
        db.append_audit(session, username="ann", action="sign_in_guessed")
    for statement in ("UPDATE audit_log SET username = 'eve'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), get_engine(db_url).begin() as connection:
            connection.execute(text(statement))
    with session_scope(db_url) as session:
        assert [e.id for e in db.audit_log(session)] == [entry]
    assert "ix_audit_log_case_key" in {ix["name"] for ix in inspect(get_engine(db_url)).get_indexes("audit_log")}


def test_models_and_migration_agree(db_url: str) -> None:
    with get_engine(db_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_is_idempotent_and_at_head(db_url: str) -> None:
    migrate(db_url)
    with get_engine(db_url).connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()


def test_migrate_from_any_cwd_creates_parent_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    home = tmp_path / "deep" / "home"
    url = default_sqlite_url(home)
    assert url == f"sqlite:///{(home / 'diagnosis.db').as_posix()}"
    migrate(url)
    assert (home / "diagnosis.db").is_file()
    assert set(inspect(get_engine(url)).get_table_names()) >= EXPECTED_TABLES
    get_engine(url).dispose()


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    migrate(url)
    with get_engine(url).begin() as connection:
        command.downgrade(_alembic_config(connection), "base")
    assert set(inspect(get_engine(url)).get_table_names()) == {"alembic_version"}
    migrate(url)
    assert set(inspect(get_engine(url)).get_table_names()) >= EXPECTED_TABLES
    get_engine(url).dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    migrate(url)
    engine = get_engine(url)
    assert get_engine(url) is engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    engine.dispose()


def test_session_scope_commits_and_rolls_back(db_url: str) -> None:
    with session_scope(db_url) as session:
        session.add(Patient(patient_key="p1"))
    with pytest.raises(IntegrityError), session_scope(db_url) as session:
        session.add(Patient(patient_key="p2"))
        session.flush()
        session.add(Patient(patient_key="p1"))  # duplicate key: the whole scope rolls back
        session.flush()
    with session_scope(db_url) as session:
        patients = session.scalars(select(Patient)).all()
        assert [p.patient_key for p in patients] == ["p1"]
        assert patients[0].created_at.tzinfo is not None
        assert patients[0].created_at.utcoffset() == UTC.utcoffset(None)


def test_invalid_url_is_explained() -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        get_engine("not a url")


def test_db_package_imports_no_heavy_or_sibling_packages() -> None:
    code = (
        "import sys, db, db.cases, db.predictions, db.screens.worklist, db.engine\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'monai', 'prefect', 'streamlit', 'diagnosis', 'flows', 'dashboard'} "
        "and m not in ('diagnosis', 'diagnosis.sqlite')]\n"  # the shared SQLite journaling rule, stdlib only
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_concurrent_migrations(tmp_path: Path) -> None:
    """Racing first-time migrations of one SQLite file (distinct URLs = distinct engines) all succeed."""
    path = (tmp_path / "race.db").as_posix()
    urls = [f"sqlite:///{path}", f"sqlite:///{path}?timeout=30", f"sqlite:///{path}?timeout=31"]
    barrier = threading.Barrier(len(urls))
    errors: list[BaseException] = []

    def run(url: str) -> None:
        barrier.wait()
        try:
            migrate(url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with get_engine(urls[0]).connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    for url in urls:
        get_engine(url).dispose()


def test_store_opens_while_another_connection_holds_the_new_file(tmp_path: Path, sqlite_write_held) -> None:  # noqa: ANN001
    """The WAL switch of a new connection waits out a writer instead of failing at once with 'database is locked'."""
    path = tmp_path / "held.db"
    url = f"sqlite:///{path.as_posix()}"
    with sqlite_write_held(path):
        migrate(url)
    with get_engine(url).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    get_engine(url).dispose()


def test_command_line_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``alembic -c db/alembic.ini upgrade head`` with the URL from DIAGNOSIS_DB_URL commits the schema."""
    url = default_sqlite_url(tmp_path)
    monkeypatch.setenv("DIAGNOSIS_DB_URL", url)
    config = Config(str(resources.files("db") / "alembic.ini"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    command.check(config)  # raises if the models differ from the migrated schema
    with get_engine(url).connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
    get_engine(url).dispose()
    monkeypatch.delenv("DIAGNOSIS_DB_URL")
    with pytest.raises(RuntimeError, match="DIAGNOSIS_DB_URL"):
        command.upgrade(config, "head")
