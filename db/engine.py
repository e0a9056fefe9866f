"""Engines, sessions and schema migrations of the diagnosis store.

One engine is created per database URL and cached for the life of the process. SQLite connections get
foreign keys, WAL journaling and a busy timeout so that a flow writing and the dashboard reading can share
one file.

Examples:
    >>> from pathlib import Path
    >>> url = default_sqlite_url(Path("/tmp/diagnosis-home"))
    >>> migrate(url)  # doctest: +SKIP
    >>> with session_scope(url) as session:  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from diagnosis.sqlite import enable_wal

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "default_sqlite_url",
    "dispose_engines",
    "get_engine",
    "migrate",
    "session_scope",
]

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for a competing writer before failing with 'database is locked'."""

_MIGRATION_LOCK_KEY = 727_001
"""PostgreSQL advisory lock id that serialises concurrent ``migrate`` calls."""

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_migration_locks: dict[str, threading.Lock] = {}


def default_sqlite_url(home: Path) -> str:
    """Return the URL of the default SQLite store inside a diagnosis home directory.

    Args:
        home: The diagnosis home directory (created by :func:`migrate` if missing).

    Returns:
        ``sqlite:///<home>/diagnosis.db`` with ``home`` made absolute.
    """
    return f"sqlite:///{(Path(home).expanduser().absolute() / 'diagnosis.db').as_posix()}"


def _parse(url: str) -> URL:
    """Parse a database URL, raising a ``ValueError`` that says what a valid one looks like."""
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ValueError(
            f"invalid database URL {url!r}: use e.g. 'sqlite:///path/to/diagnosis.db' or "
            "'postgresql+psycopg2://user:password@host/dbname'"
        ) from exc


def _is_sqlite_file(parsed: URL) -> bool:
    """Whether the URL names an on-disk SQLite database (not ``:memory:`` or a ``file:`` URI)."""
    db = parsed.database
    return parsed.get_backend_name() == "sqlite" and bool(db) and db != ":memory:" and not db.startswith("file:")


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Enable foreign keys, WAL journaling and a busy timeout on every new SQLite connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        enable_wal(cursor, SQLITE_BUSY_TIMEOUT_MS / 1000)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def get_engine(url: str) -> Engine:
    """Return the process-wide engine for ``url``, creating it on first use.

    Args:
        url: A SQLAlchemy database URL (``sqlite:///...`` or ``postgresql+psycopg2://...``).

    Returns:
        The cached :class:`~sqlalchemy.engine.Engine`. SQLite engines enforce foreign keys and use WAL
        journaling with a busy timeout of :data:`SQLITE_BUSY_TIMEOUT_MS`.

    Raises:
        ValueError: If ``url`` is not a valid database URL.
    """
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        parsed = _parse(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _set_sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine's connections and forget the engines (tests, server shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _sessionmakers.clear()


def _sessionmaker(url: str) -> sessionmaker[Session]:
    """Return the cached session factory bound to :func:`get_engine` ``(url)``."""
    engine = get_engine(url)
    with _lock:
        factory = _sessionmakers.get(url)
        if factory is None:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _sessionmakers[url] = factory
        return factory


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """Open a session that commits on success and rolls back on any error.

    Args:
        url: The database URL.

    Yields:
        A :class:`~sqlalchemy.orm.Session`; objects stay readable after the commit.

    Examples:
        >>> with session_scope(url) as session:  # doctest: +SKIP
        ...     upsert_cases(session, cases)
    """
    session = _sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(connection: Any) -> Any:
    """Build an Alembic config from the packaged ``alembic.ini`` and ``migrations`` folder."""
    from alembic.config import Config

    package = resources.files("db")
    ini = Path(str(package / "alembic.ini"))
    scripts = Path(str(package / "migrations"))
    if not ini.is_file() or not (scripts / "env.py").is_file():
        raise FileNotFoundError(
            f"Alembic files missing from the installed 'db' package ({ini}, {scripts}); reinstall the "
            "project so that package-data (db/alembic.ini, db/migrations/**) is included"
        )
    config = Config(str(ini))
    config.set_main_option("script_location", str(scripts).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["configure_logging"] = False
    return config


def _lock_for(url: str) -> threading.Lock:
    """A per-URL lock that serialises :func:`migrate` calls from threads of this process."""
    with _lock:
        return _migration_locks.setdefault(url, threading.Lock())


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema (``alembic upgrade head``).

    Works from an installed package and any working directory. For SQLite the database file's parent
    directory is created first and the upgrade runs in one ``BEGIN IMMEDIATE`` transaction; on PostgreSQL
    concurrent callers are serialised with an advisory lock. Calling it on an up-to-date database is a
    cheap no-op, so every entry point may call it.

    Args:
        url: The database URL.

    Raises:
        ValueError: If ``url`` is not a valid database URL.
        FileNotFoundError: If the packaged migration scripts are missing.
    """
    from alembic import command

    parsed = _parse(url)
    if _is_sqlite_file(parsed):
        assert parsed.database is not None
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = get_engine(url)
    with _lock_for(url), engine.begin() as connection:
        if parsed.get_backend_name() == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        elif parsed.get_backend_name() == "sqlite":
            # Take the write lock up front: the whole upgrade is one transaction and other processes wait.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        command.upgrade(_alembic_config(connection), "head")
    logger.info("database schema is at head (%s)", parsed.render_as_string(hide_password=True))
