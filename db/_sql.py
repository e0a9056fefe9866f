"""Small dialect helpers shared by the write paths: chunking and ``INSERT ... ON CONFLICT``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["IN_CHUNK", "chunked", "insert_ignoring_conflicts", "upsert"]

IN_CHUNK = 500
"""Most values bound in one ``IN (...)`` list or one multi-row INSERT page (stays under SQLite's limits)."""

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of ``items`` with at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _dialect(session: Session) -> str:
    """Name of the dialect the session is bound to."""
    return session.get_bind().dialect.name


def insert_ignoring_conflicts(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    index_elements: Sequence[str],
    returning: Sequence[ColumnElement[Any]] = (),
) -> list[Row[Any]]:
    """Insert ``rows``, silently skipping those that collide on ``index_elements``.

    Uses ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL; other databases get a plain INSERT.

    Args:
        session: The session to execute in.
        table: The target table.
        rows: Column-name -> value mappings, all with the same keys.
        index_elements: Columns of the unique constraint that defines a conflict.
        returning: Columns to return for the rows actually inserted.

    Returns:
        The returned rows (empty when ``returning`` is empty); skipped rows return nothing.
    """
    if not rows:
        return []
    name = _dialect(session)
    if name == "sqlite":
        stmt: Any = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    elif name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    else:
        stmt = insert(table)
    if name == "postgresql" and not returning:
        # psycopg2 only batches ON CONFLICT inserts into multi-row VALUES when they return something.
        stmt = stmt.returning(*table.primary_key.columns)
    out: list[Row[Any]] = []
    for chunk in chunked(rows):
        if returning:
            out.extend(session.execute(stmt.returning(*returning), list(chunk)).all())
        else:
            session.execute(stmt, list(chunk)).close()
    return out


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    index_elements: Sequence[str],
    update_columns: Sequence[str],
) -> None:
    """Insert ``rows``, updating ``update_columns`` of rows that collide on ``index_elements``.

    Uses ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL. Callers must not pass two rows with
    the same key in one call (PostgreSQL refuses to update a row twice in one statement).

    Raises:
        NotImplementedError: On databases other than SQLite and PostgreSQL.
    """
    if not rows:
        return
    name = _dialect(session)
    if name == "sqlite":
        base: Any = sqlite.insert(table)
    elif name == "postgresql":
        base = postgresql.insert(table)
    else:
        raise NotImplementedError(f"upsert is implemented for SQLite and PostgreSQL, not {name!r}")
    stmt = base.on_conflict_do_update(
        index_elements=list(index_elements),
        set_={column: base.excluded[column] for column in update_columns},
    )
    if name == "postgresql":
        stmt = stmt.returning(*table.primary_key.columns)  # batched into multi-row VALUES, see above
    for chunk in chunked(rows):
        session.execute(stmt, list(chunk)).close()
