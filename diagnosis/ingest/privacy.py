"""Pseudonymisation: a secret key and the keyed hash that replaces patient identifiers before they are stored.

The key comes from the environment variable ``DIAGNOSIS_PSEUDONYM_KEY`` when set; otherwise a random 256-bit key is
generated once and kept in ``<home>/secrets/pseudonym.key`` (permissions 0600, created atomically so that
concurrent first ingests agree on one key). The same key must be used for every
ingest into one store: a new key gives the same patient a new pseudonym (and a stored case a different content).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from diagnosis.keys import MIN_KEY_BYTES, read_key_file

__all__ = ["PSEUDONYM_KEY_ENV", "PSEUDONYM_PREFIX", "PrivacyError", "keyed_digest", "load_pseudonym_key", "pseudonymise"]

logger = logging.getLogger(__name__)

PSEUDONYM_KEY_ENV = "DIAGNOSIS_PSEUDONYM_KEY"
PSEUDONYM_PREFIX = "PSN-"  # marks a stored patient key as a pseudonym
PSEUDONYM_HEX = 20  # hex digits kept from the HMAC (80 bits: no collisions at hospital scale)


class PrivacyError(RuntimeError):
    """The pseudonymisation key is unusable; the message says how to provide one."""


def load_pseudonym_key(home: str | Path | None) -> bytes:
    """Return the pseudonymisation key: ``$DIAGNOSIS_PSEUDONYM_KEY``, else ``<home>/secrets/pseudonym.key``.

    Args:
        home: Diagnosis home; the key file is created there (0600) on first use. ``None`` requires the env variable.

    Returns:
        The key bytes.

    Raises:
        PrivacyError: The environment key is too short, or there is neither an env key nor a home.
    """
    value = os.environ.get(PSEUDONYM_KEY_ENV)
    if value:
        key = value.encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise PrivacyError(f"{PSEUDONYM_KEY_ENV} is shorter than {MIN_KEY_BYTES} bytes; use a long random secret")
        return key
    if home is None:
        raise PrivacyError(f"no pseudonymisation key: set {PSEUDONYM_KEY_ENV} or give a diagnosis home")
    path = Path(home) / "secrets" / "pseudonym.key"
    key = read_key_file(path)
    if key is None:
        raise PrivacyError(f"{path} holds no usable key (under {MIN_KEY_BYTES} bytes); restore it from a backup, or "
                           f"set {PSEUDONYM_KEY_ENV}. A new key would give every patient a new pseudonym")
    return key


def keyed_digest(key: bytes, value: str, purpose: str) -> bytes:
    """HMAC-SHA256 of ``value``, domain-separated by ``purpose`` (so pseudonyms, UIDs and date shifts differ)."""
    return hmac.new(key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()


def pseudonymise(patient_id: str, key: bytes) -> str:
    """Replace a patient identifier by ``PSN-`` + the first hex digits of ``HMAC-SHA256(key, patient_id)``.

    Examples:
        >>> pseudonymise("12345", b"k" * 32) == pseudonymise("12345", b"k" * 32)
        True
        >>> pseudonymise("12345", b"k" * 32).startswith("PSN-")
        True
    """
    return PSEUDONYM_PREFIX + keyed_digest(key, patient_id, "patient").hex()[:PSEUDONYM_HEX]
