"""Fixtures for flow and CLI tests: a store home per test module and the shared Prefect server."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh diagnosis home (SQLite store, models, caches)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def db_url(home: Path) -> str:
    """The SQLite store URL under ``home``."""
    return f"sqlite:///{home / 'diagnosis.db'}"
