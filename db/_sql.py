"""Small dialect helpers shared by the write paths: chunking and ``INSERT ... ON CONFLICT``.

:func:`upsert` and :func:`insert_ignoring_conflicts` go through SQLAlchemy's compiled statements (values are
converted by the column types). :func:`upsert_encoded` is the bulk fast path: rows arrive as tuples already in
the driver's form (JSON as text, timestamps as the dialect stores them) and go to the driver in one
``executemany`` on SQLite; on PostgreSQL they are streamed with ``COPY`` into a temporary table, then merged by one
``INSERT ... SELECT ... ON CONFLICT``, without per-row work in SQLAlchemy.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Row, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["COPY_MIN_ROWS", "IN_CHUNK", "VALUES_PAGE", "bind_value", "chunked", "insert_ignoring_conflicts", "update_by_ids", "upsert", "upsert_encoded"]

IN_CHUNK = 500
"""Most values bound in one ``IN (...)`` list or one multi-row INSERT page (stays under SQLite's limits)."""

VALUES_PAGE = 1000
"""Rows per multi-row ``VALUES`` statement of :func:`upsert_encoded` on PostgreSQL (batches below COPY_MIN_ROWS)."""

COPY_MIN_ROWS = 64
"""Fewest rows :func:`upsert_encoded` streams with ``COPY`` on PostgreSQL (below it, the staging table's statements
cost more than they save)."""

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{}", "named": ":p{}"}
"""DB-API paramstyle -> positional placeholder (``{}`` takes the 1-based column position)."""

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


def bind_value(session: Session, column: Column[Any], value: Any) -> Any:  # noqa: ANN401 - any column type
    """``value`` as the driver receives it for ``column`` (the type's bind processing for the session's dialect)."""
    process = column.type.bind_processor(session.get_bind().dialect)
    return process(value) if process is not None else value


def upsert_encoded(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    index_elements: Sequence[str],
    update_columns: Sequence[str],
) -> None:
    """Bulk ``INSERT ... ON CONFLICT DO UPDATE`` of positional rows whose values are already in the driver's form.

    Same result as :func:`upsert`, at a fraction of its cost per row: JSON columns must hold JSON text and other
    values must be what the column type would hand the driver (see :func:`bind_value`). Callers must not pass two
    rows with the same key (PostgreSQL refuses to update a row twice in one statement).

    Args:
        session: The session to execute in (its transaction is used; nothing is committed).
        table: The target table.
        columns: Column names, in the order of each row's values.
        rows: One tuple per row.
        index_elements: Columns of the unique constraint that defines a conflict.
        update_columns: Columns overwritten when a row exists already.

    Raises:
        NotImplementedError: On databases other than SQLite and PostgreSQL.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"upsert is implemented for SQLite and PostgreSQL, not {dialect.name!r}")
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    tail = (f" ON CONFLICT ({', '.join(index_elements)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in update_columns))  # fmt: skip
    if dialect.driver == "psycopg2":
        with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
            if len(rows) < COPY_MIN_ROWS:
                from psycopg2.extras import execute_values

                execute_values(cursor, head + "%s" + tail, rows, page_size=VALUES_PAGE)
            else:
                _copy_upsert(cursor, table.name, columns, rows, tail)
        return
    mark = _PLACEHOLDERS[dialect.paramstyle]
    values = "(" + ", ".join(mark.format(i) for i in range(1, len(columns) + 1)) + ")"
    if dialect.paramstyle == "named":
        rows = [{f"p{i}": v for i, v in enumerate(row, start=1)} for row in rows]  # type: ignore[misc]
    connection.exec_driver_sql(head + values + tail, list(rows))  # one executemany


def _csv_field(value: Any) -> str:  # noqa: ANN401 - any driver value
    """One CSV field for PostgreSQL's ``COPY``: see :func:`_copy_upsert`."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return '"' + text.replace('"', '""') + '"'


def _copy_upsert(cursor: Any, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], conflict: str) -> None:  # noqa: ANN401
    """PostgreSQL: ``COPY`` the rows (CSV) into a session-temporary table shaped like ``table``'s columns, then one
    ``INSERT ... SELECT ... ON CONFLICT`` into ``table``; the staging table is emptied afterwards.

    CSV: every value but ``None`` and numbers is quoted (so an empty string stays a string), ``None`` is an unquoted
    empty field (``NULL``), numbers are written as Python prints them (``repr`` round-trips floats).
    """
    names = ", ".join(columns)
    stage = f"_copy_{table}"
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} AS SELECT {names} FROM {table} WITH NO DATA")
    buffer = io.StringIO("".join(",".join(map(_csv_field, row)) + "\n" for row in rows))
    cursor.copy_expert(f"COPY {stage} ({names}) FROM STDIN WITH (FORMAT csv)", buffer)
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}{conflict}")
    cursor.execute(f"TRUNCATE {stage}")


def update_by_ids(session: Session, table: Table, ids: Sequence[int], values: Mapping[str, Any]) -> None:
    """``UPDATE table SET ... WHERE id IN ids`` with values already in the driver's form (see :func:`bind_value`).

    One statement per :data:`IN_CHUNK` ids (one ``= ANY(array)`` statement on PostgreSQL), written by hand: compiling
    SQLAlchemy's expanding ``IN`` costs more than the update itself on SQLite.
    """
    if not ids:
        return
    connection = session.connection()
    dialect = connection.dialect
    sets = ", ".join(f"{column} = {'NULL' if value is None else '{}'}" for column, value in values.items())
    params = [value for value in values.values() if value is not None]
    if dialect.driver == "psycopg2":
        sql = f"UPDATE {table.name} SET {sets.format(*['%s'] * len(params))} WHERE id = ANY(%s)"
        connection.exec_driver_sql(sql, (*params, list(ids)))
        return
    mark = _PLACEHOLDERS[dialect.paramstyle]
    for chunk in chunked(ids):
        count = len(params) + len(chunk)
        marks = [mark.format(i) for i in range(1, count + 1)]
        sql = f"UPDATE {table.name} SET {sets.format(*marks[: len(params)])} WHERE id IN ({', '.join(marks[len(params) :])})"
        arguments: Any = (*params, *chunk)
        if dialect.paramstyle == "named":
            arguments = {f"p{i}": v for i, v in enumerate(arguments, start=1)}
        connection.exec_driver_sql(sql, arguments)
