"""Fixtures for the store tests: one migrated database per test, on SQLite and on a real PostgreSQL (``pg_url``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from db import (
    CaseIn,
    ImageIn,
    default_sqlite_url,
    get_engine,
    migrate,
    session_scope,
)
from db.models import Base


def _empty(url: str) -> None:
    """Delete every row, children first (much faster than TRUNCATE on tiny tables; the schema stays)."""
    with get_engine(url).begin() as connection:
        if connection.dialect.name == "postgresql":  # the append-only trigger refuses DELETE, not TRUNCATE
            connection.exec_driver_sql("TRUNCATE audit_log")
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "audit_log":
                continue
            connection.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database at the newest schema: a fresh SQLite file, or the emptied PostgreSQL one."""
    if request.param == "sqlite":
        url = default_sqlite_url(tmp_path / "home")
        migrate(url)
    else:
        url = request.getfixturevalue("pg_url")
        _empty(url)
    yield url
    if request.param == "sqlite":
        get_engine(url).dispose()


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on ``db_url`` that commits at the end of the test."""
    with session_scope(db_url) as s:
        yield s


def _digest(value: str) -> str:
    """sha256 hex digest of a string."""
    return hashlib.sha256(value.encode()).hexdigest()


def build_case(key: str, **overrides: Any) -> CaseIn:
    """A valid ingested case with an image and a note; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "case_key": key,
        "patient_key": f"p-{key}",
        "label": "pneumonia",
        "split": "train",
        "text": f"cough and fever ({key})",
        "image": ImageIn(path=f"/data/{key}.png", sha256=_digest(key), format="png", shape=(64, 64), spacing=None),
        "source": "/data/manifest.csv",
    }
    fields.update(overrides)
    return CaseIn(**fields)


@pytest.fixture
def make_case() -> Callable[..., CaseIn]:
    """Factory for :class:`CaseIn` test rows (see :func:`build_case`)."""
    return build_case
