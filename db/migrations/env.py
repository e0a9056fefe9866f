"""Alembic environment of the diagnosis store.

Used two ways:

* programmatically by :func:`db.engine.migrate`, which passes an open connection in
  ``config.attributes["connection"]`` and turns logging configuration off;
* from the command line, where the URL comes from ``-x url=...`` or the ``DIAGNOSIS_DB_URL`` variable.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from db.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    """Return the database URL for command-line use, or explain how to give one."""
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DIAGNOSIS_DB_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database URL: pass `-x url=sqlite:///path/to/diagnosis.db` to alembic or set DIAGNOSIS_DB_URL"
        )
    return url


def _configure(connection: Connection) -> None:
    """Configure the migration context on an open connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables for later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database connection (``alembic upgrade --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a fresh engine from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()  # leave no transaction open, so that Alembic commits its own
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
