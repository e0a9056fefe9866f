"""Prefect process settings: an isolated home, no analytics, a patient ephemeral-server start-up."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings

from diagnosis.settings import Settings

__all__ = ["UMASK_ENV", "configure_logging", "configure_prefect", "exit_on_signals", "restrict_permissions"]

UMASK_ENV = "DIAGNOSIS_UMASK"  # octal; default 077: files 0600, folders 0700 (only the account running the product)
DEFAULT_UMASK = 0o077


def restrict_permissions(settings: Settings) -> None:
    """Make every file this process creates private (the store, caches, Prefect's database, de-identified copies,
    models): umask ``$DIAGNOSIS_UMASK`` (default 077), and the diagnosis home itself 0700 when we own it.

    Child processes (Prefect's server, the dashboard) inherit the umask. A deployment whose dashboard runs under
    another account in the same group can set ``DIAGNOSIS_UMASK=027``.
    """
    raw = os.environ.get(UMASK_ENV, "")
    try:
        mask = int(raw, 8) if raw else DEFAULT_UMASK
    except ValueError as error:
        raise ValueError(f"{UMASK_ENV}={raw!r} is not an octal umask such as 077 or 027") from error
    os.umask(mask)
    home = settings.home
    home.mkdir(parents=True, exist_ok=True, mode=0o777 & ~mask)
    if home.stat().st_uid == os.getuid():
        home.chmod(0o777 & ~mask)


def configure_prefect(settings: Settings) -> None:
    """Point Prefect at ``<home>/prefect`` unless the environment already chose; must run before ``import prefect``."""
    restrict_permissions(settings)
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


def _exit_on_signal(number: int, _frame: object) -> None:
    """SIGTERM, SIGINT, SIGHUP: unwind like an exit, so ``finally`` blocks and atexit hooks stop what this command
    started (Prefect's temporary server among them) instead of leaving it orphaned."""
    signal.signal(number, signal.SIG_IGN)  # a second signal while unwinding changes nothing
    print(f"\nstopped by {signal.Signals(number).name}", file=sys.stderr)
    raise SystemExit(128 + number)


def exit_on_signals() -> None:
    """Make SIGTERM, SIGINT and SIGHUP exit with 128 + their number, children stopped (``serve`` installs its own)."""
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, _exit_on_signal)
