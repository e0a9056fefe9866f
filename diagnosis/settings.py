"""Runtime settings shared by the CLI, flows and dashboard: where data lives and which database to use."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["Settings", "HOME_ENV", "DATABASE_URL_ENV"]

HOME_ENV = "DIAGNOSIS_HOME"
DATABASE_URL_ENV = "DIAGNOSIS_DATABASE_URL"


@dataclass(frozen=True)
class Settings:
    """Locations of the store, the model registry, caches and Prefect's own state.

    Attributes:
        home: Folder holding the SQLite database, models, caches and the Prefect home.
        database_url: SQLAlchemy URL; ``None`` means the embedded SQLite file under ``home``.
    """

    home: Path  # default: $DIAGNOSIS_HOME, else the per-user data directory
    database_url: str | None = None  # default: $DIAGNOSIS_DATABASE_URL, else sqlite under home

    @classmethod
    def from_env(cls, home: str | Path | None = None, database_url: str | None = None) -> Settings:
        """Build settings from explicit values, falling back to environment variables, then defaults."""
        home_value = home or os.environ.get(HOME_ENV) or platformdirs.user_data_dir("diagnosis")
        url = database_url or os.environ.get(DATABASE_URL_ENV) or None
        return cls(home=Path(home_value).expanduser().resolve(), database_url=url)

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
    def prefect_home(self) -> Path:
        """Isolated Prefect home, so runs never touch a user's global Prefect profile."""
        return self.home / "prefect"

    def views_file(self, model_version_id: int, case_key: str) -> Path:
        """Where ``diagnosis reconstruct`` keeps a case's decoded views (the file name hashes the case id)."""
        digest = hashlib.sha256(case_key.encode()).hexdigest()[:24]
        return self.home / "reconstructions" / f"v{model_version_id}" / f"{digest}.json"
