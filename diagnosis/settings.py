"""Runtime settings shared by the CLI, flows and dashboard: where data lives, which database, when jobs run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["DATABASE_URL_ENV", "HOME_ENV", "SCHEDULE_ENV", "Settings"]

HOME_ENV = "DIAGNOSIS_HOME"
DATABASE_URL_ENV = "DIAGNOSIS_DATABASE_URL"
INBOX_ENV = "DIAGNOSIS_INBOX"
RETRAIN_FUSION_ENV = "DIAGNOSIS_RETRAIN_FUSION"
RETRAIN_EPOCHS_ENV = "DIAGNOSIS_RETRAIN_EPOCHS"
RETRAIN_TEXT_MODEL_ENV = "DIAGNOSIS_RETRAIN_TEXT_MODEL"
DASK_ADDRESS_ENV = "DIAGNOSIS_DASK_ADDRESS"

SCHEDULE_ENV: Mapping[str, str] = {
    "diagnose_cron": "DIAGNOSIS_DIAGNOSE_CRON",
    "ingest_cron": "DIAGNOSIS_INGEST_CRON",
    "retrain_cron": "DIAGNOSIS_RETRAIN_CRON",
}
"""Settings field -> environment variable of each cron schedule served by ``diagnosis serve``."""


@dataclass(frozen=True)
class Settings:
    """Locations of the store, the model registry, caches and Prefect's own state, and the served schedules.

    Attributes:
        home: Folder holding the SQLite database, models, caches and the Prefect home.
        database_url: SQLAlchemy URL; ``None`` means the embedded SQLite file under ``home``.
        diagnose_cron: When ``diagnosis serve`` diagnoses the pending cases (cron, server's local time zone: UTC).
        ingest_cron: When it ingests new manifests dropped into :attr:`inbox`.
        retrain_cron: When it trains a candidate model and promotes it if it beats the current one on val.
        inbox_dir: Folder watched for new manifests; ``None`` means ``<home>/inbox`` (see :attr:`inbox`).
        retrain_fusion: Fusion variant of retrained candidates.
        retrain_epochs: Maximum epochs of each training stage of a retrained candidate.
        retrain_text_model: Local Hugging Face folder for the candidates' text encoder; ``None``: the packaged MiniLM.
        dask_address: Address of a running Dask scheduler for the flows' task runner; ``None``: run tasks in-process.
        env_errors: Invalid environment values :meth:`from_env` left at their defaults, reported by the commands
            that use them (``diagnosis serve``), so a bad serve setting does not break every other command.
    """

    home: Path  # default: $DIAGNOSIS_HOME, else the per-user data directory
    database_url: str | None = None  # default: $DIAGNOSIS_DATABASE_URL, else sqlite under home
    diagnose_cron: str = "0 2 * * *"  # $DIAGNOSIS_DIAGNOSE_CRON; nightly at 02:00
    ingest_cron: str = "*/15 * * * *"  # $DIAGNOSIS_INGEST_CRON; every quarter hour
    retrain_cron: str = "0 3 * * 0"  # $DIAGNOSIS_RETRAIN_CRON; Sundays at 03:00
    inbox_dir: Path | None = None  # $DIAGNOSIS_INBOX; None: <home>/inbox
    retrain_fusion: str = "poe"  # $DIAGNOSIS_RETRAIN_FUSION; the default of `diagnosis train`
    retrain_epochs: int = 30  # $DIAGNOSIS_RETRAIN_EPOCHS; the default of `diagnosis train`
    retrain_text_model: Path | None = None  # $DIAGNOSIS_RETRAIN_TEXT_MODEL; None: packaged all-MiniLM-L6-v2
    dask_address: str | None = None  # $DIAGNOSIS_DASK_ADDRESS, e.g. tcp://10.0.0.5:8786; None: no Dask
    env_errors: tuple[str, ...] = ()  # filled by from_env; empty when every value was valid

    @classmethod
    def from_env(cls, home: str | Path | None = None, database_url: str | None = None) -> Settings:
        """Build settings from explicit values, falling back to environment variables, then defaults.

        An invalid value (``DIAGNOSIS_RETRAIN_EPOCHS`` not a positive integer) keeps the default and is listed in
        :attr:`env_errors`.
        """
        env = os.environ
        home_value = home or env.get(HOME_ENV) or platformdirs.user_data_dir("diagnosis")
        url = database_url or env.get(DATABASE_URL_ENV) or None
        schedules = {field: env[name].strip() for field, name in SCHEDULE_ENV.items() if env.get(name, "").strip()}
        epochs = env.get(RETRAIN_EPOCHS_ENV, "").strip()
        errors = []
        if epochs and (not epochs.isdigit() or int(epochs) < 1):
            errors.append(f"{RETRAIN_EPOCHS_ENV}={epochs!r}: set it to a positive whole number of epochs")
            epochs = ""
        optional = {
            "inbox_dir": _path(env.get(INBOX_ENV)),
            "retrain_text_model": _path(env.get(RETRAIN_TEXT_MODEL_ENV)),
            "dask_address": env.get(DASK_ADDRESS_ENV, "").strip() or None,
            "retrain_fusion": env.get(RETRAIN_FUSION_ENV, "").strip() or None,
            "retrain_epochs": int(epochs) if epochs else None,
        }
        return cls(home=Path(home_value).expanduser().resolve(), database_url=url, **schedules,
                   **{k: v for k, v in optional.items() if v is not None}, env_errors=tuple(errors))

    @property
    def db_url(self) -> str:
        """The effective SQLAlchemy URL."""
        return self.database_url or f"sqlite:///{self.home / 'diagnosis.db'}"

    @property
    def models_dir(self) -> Path:
        """Folder of registered model checkpoints."""
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        """Folder of feature caches (text embeddings by content hash)."""
        return self.home / "cache"

    @property
    def text_cache_file(self) -> Path:
        """The SQLite file of cached text embeddings (keyed by encoder and text)."""
        return self.cache_dir / "text_embeddings.sqlite"

    @property
    def prefect_home(self) -> Path:
        """Isolated Prefect home, so runs never touch a user's global Prefect profile."""
        return self.home / "prefect"

    @property
    def inbox(self) -> Path:
        """Folder the scheduled ingestion scans for new ``*.csv`` manifests (recursively)."""
        return self.inbox_dir or self.home / "inbox"

    def reconstruction_stem(self, model_version_id: int, case_key: str) -> Path:
        """Where ``diagnosis reconstruct`` writes a case's decoded images: this path plus ``-<view>.png`` (or
        ``.nii.gz``); the name hashes the case id, so no identifier reaches the file system."""
        digest = hashlib.sha256(case_key.encode()).hexdigest()[:24]
        return self.home / "reconstructions" / f"v{model_version_id}" / digest


def _path(value: str | None) -> Path | None:
    """An absolute path from an environment value, ``None`` when unset or blank."""
    return Path(value.strip()).expanduser().resolve() if value and value.strip() else None
