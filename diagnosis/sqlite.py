"""SQLite journaling shared by the store (``db.engine``) and the embedding cache (``diagnosis.features.cache``).

Standard library only, so that the store layer may import it without the library's numerical stack.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["enable_wal"]


def enable_wal(executor: Any, timeout_s: float) -> None:
    """Switch a SQLite database to WAL journaling, waiting out competing connections.

    Changing the journal mode needs an exclusive lock, and SQLite answers ``database is locked`` at once (without
    calling its busy handler) while another connection holds any lock during the switch: processes opening one new
    database together (flows and the dashboard on a fresh home, Dask workers on a new cache) hit this. The switch is
    retried with a growing pause until ``timeout_s``.

    Args:
        executor: A ``sqlite3`` connection or cursor (anything with ``execute``).
        timeout_s: How long to keep retrying.

    Raises:
        sqlite3.OperationalError: The database stayed locked for ``timeout_s``, or another error.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            if str(executor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                executor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
