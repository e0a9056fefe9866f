"""Random secret keys kept in files under the diagnosis home: created once, atomically, readable by the owner only.

Used for the pseudonymisation key (:mod:`diagnosis.ingest.privacy`) and the dashboard's session-cookie signing
key (:mod:`dashboard.session_cookie`). Light on purpose: no MONAI or torch behind this import.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["MIN_KEY_BYTES", "create_key_file", "read_key_file"]

logger = logging.getLogger(__name__)

MIN_KEY_BYTES = 16  # shorter keys are refused


def create_key_file(path: Path) -> None:
    """Create the key file atomically: a complete temporary file (0600) is hard-linked into place, so concurrent
    first users agree on one key and no reader ever sees a partly written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if another process linked its key first: that key wins
        except FileExistsError:
            return
        logger.info("generated a secret key under the diagnosis home (%s)", path.name)
    finally:
        os.unlink(temporary)


def read_key_file(path: str | Path) -> bytes | None:
    """The key in ``path``, created on first use; None when the file exists but holds under :data:`MIN_KEY_BYTES`."""
    path = Path(path)
    if not path.is_file():
        create_key_file(path)
    key = path.read_text().strip().encode("utf-8")
    return key if len(key) >= MIN_KEY_BYTES else None
