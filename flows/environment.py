"""Prefect process settings: an isolated home, no analytics, a patient ephemeral-server start-up."""

from __future__ import annotations

import logging
import os
import warnings

from diagnosis.settings import Settings

__all__ = ["configure_logging", "configure_prefect"]


def configure_prefect(settings: Settings) -> None:
    """Point Prefect at ``<home>/prefect`` unless the environment already chose; must run before ``import prefect``."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def configure_logging(verbose: bool = False) -> None:
    """Concise progress lines from the library and flows; third-party chatter only with ``verbose``."""
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler], force=True)
    for name in ("flows", "diagnosis"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("diagnosis.features.text").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*nvimgcodec.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="monai")
    warnings.filterwarnings("ignore", category=FutureWarning)
