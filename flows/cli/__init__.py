"""The ``diagnosis`` command line (Typer).

:mod:`~flows.cli.main` holds the root app and the pipeline commands; :mod:`~flows.cli.common` what every command
group shares (settings, the migrated store, user errors); one module per group: :mod:`~flows.cli.users`,
:mod:`~flows.cli.serve`, :mod:`~flows.cli.bench`. The groups import :mod:`~flows.cli.common`, never the root app.
"""

from __future__ import annotations

from flows.cli.main import app, main

__all__ = ["app", "main"]
