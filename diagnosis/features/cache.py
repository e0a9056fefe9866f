"""A persistent embedding cache keyed by content hash (one SQLite file, stdlib ``sqlite3``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from diagnosis.sqlite import enable_wal

__all__ = ["EmbeddingCache"]

TIMEOUT_S = 60.0
"""How long a cache connection waits for a competing writer (and for the switch to WAL journaling)."""


class EmbeddingCache:
    """Maps a hex key (hash of model id + content) to a float32 vector.

    Args:
        path: SQLite file; created with its folder when missing.

    Examples:
        >>> cache = EmbeddingCache(tmp_path / "text.sqlite")  # doctest: +SKIP
        >>> cache.put_many({"ab12": np.ones(3, np.float32)}); cache.get_many(["ab12"])  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            enable_wal(connection, TIMEOUT_S)
            connection.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=TIMEOUT_S)

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors among ``keys`` (missing keys are absent from the result)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self._connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk)
                found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Store vectors (existing keys are left as they are: same key, same content)."""
        rows = [(key, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for key, v in vectors.items()]
        with self._connect() as connection:
            connection.executemany("INSERT OR IGNORE INTO embeddings (key, vector) VALUES (?, ?)", rows)
