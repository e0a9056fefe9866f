"""Settings: defaults, environment overrides of the served schedules and retraining, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnosis.settings import Settings

ENV = ("DIAGNOSIS_DIAGNOSE_CRON", "DIAGNOSIS_INGEST_CRON", "DIAGNOSIS_RETRAIN_CRON", "DIAGNOSIS_INBOX",
       "DIAGNOSIS_RETRAIN_FUSION", "DIAGNOSIS_RETRAIN_EPOCHS", "DIAGNOSIS_RETRAIN_TEXT_MODEL", "DIAGNOSIS_DASK_ADDRESS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, "sqlite:///x.db")
    assert (settings.diagnose_cron, settings.ingest_cron, settings.retrain_cron) == ("0 2 * * *", "*/15 * * * *", "0 3 * * 0")
    assert settings.inbox == tmp_path.resolve() / "inbox" and settings.db_url == "sqlite:///x.db"
    assert (settings.retrain_fusion, settings.retrain_epochs, settings.retrain_text_model) == ("poe", 30, None)
    assert settings.dask_address is None and settings.env_errors == ()
    assert Settings(home=tmp_path).inbox == tmp_path / "inbox"  # constructed directly: the same defaults


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"DIAGNOSIS_DIAGNOSE_CRON": "30 1 * * *", "DIAGNOSIS_INGEST_CRON": " */5 * * * * ",
              "DIAGNOSIS_RETRAIN_CRON": "0 4 1 * *", "DIAGNOSIS_INBOX": str(tmp_path / "drop"),
              "DIAGNOSIS_RETRAIN_FUSION": "mopoe", "DIAGNOSIS_RETRAIN_EPOCHS": "5",
              "DIAGNOSIS_RETRAIN_TEXT_MODEL": str(tmp_path / "bert"), "DIAGNOSIS_DASK_ADDRESS": "tcp://10.0.0.5:8786"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(tmp_path)
    assert (settings.diagnose_cron, settings.ingest_cron, settings.retrain_cron) == ("30 1 * * *", "*/5 * * * *", "0 4 1 * *")
    assert settings.inbox == tmp_path / "drop" and settings.retrain_text_model == tmp_path / "bert"
    assert (settings.retrain_fusion, settings.retrain_epochs, settings.dask_address) == ("mopoe", 5, "tcp://10.0.0.5:8786")


@pytest.mark.parametrize("epochs", ["0", "ten", "-3"])
def test_bad_epochs_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epochs: str) -> None:
    monkeypatch.setenv("DIAGNOSIS_RETRAIN_EPOCHS", epochs)
    settings = Settings.from_env(tmp_path)  # other commands keep working; `diagnosis serve` reports it
    assert settings.retrain_epochs == 30 and len(settings.env_errors) == 1
    assert "DIAGNOSIS_RETRAIN_EPOCHS" in settings.env_errors[0] and "positive whole number" in settings.env_errors[0]
