"""What every ``diagnosis`` command group shares: the root command's settings, the migrated store, user errors, and
the options files and manifests commands read."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from diagnosis.settings import Settings

__all__ = ["command_settings", "invoked_as", "json_file", "manifest_rows", "migrated_store", "user_errors"]


def command_settings(ctx: typer.Context) -> Settings:
    """The root command's settings, with Prefect and logging configured from them."""
    settings: Settings = ctx.obj
    from flows.environment import configure_logging, configure_prefect

    configure_prefect(settings)
    configure_logging(verbose=bool(os.environ.get("DIAGNOSIS_VERBOSE")))
    return settings


@contextmanager
def user_errors(*kinds: type[BaseException], code: int = 1) -> Iterator[None]:
    """Turn the listed errors into a red ``error: …`` line on stderr and exit ``code`` (no traceback).

    ``LookupError`` keeps its message unquoted (``KeyError`` would repr it).
    """
    try:
        yield
    except kinds as error:
        message = error.args[0] if isinstance(error, LookupError) and error.args else error
        typer.secho(f"error: {message}", fg="red", err=True)
        raise typer.Exit(code) from error


def invoked_as() -> str:
    """How to run this command again: ``diagnosis`` when that name finds this program on the PATH, else the path
    the user ran (e.g. ``.venv/bin/diagnosis``), so printed hints work as typed."""
    import shutil

    ran = Path(sys.argv[0])
    found = shutil.which("diagnosis")
    if ran.name != "diagnosis" or (found is not None and Path(found).resolve() == ran.resolve()):
        return "diagnosis"
    try:
        return str(ran.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(ran)


def migrated_store(ctx: typer.Context) -> str:
    """Settings as in :func:`command_settings`, and the store migrated to the current schema; returns its URL."""
    settings = command_settings(ctx)
    import db

    db.migrate(settings.db_url)
    return settings.db_url


def manifest_rows(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a manifest this program wrote (for summaries)."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def json_file(path: Path | None) -> dict | None:
    """A JSON options file's content (None without a path); an unreadable file ends the command with its error."""
    if path is None:
        return None
    with user_errors(OSError, json.JSONDecodeError):
        return json.loads(path.read_text())
