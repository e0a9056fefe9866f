"""``diagnosis dashboard`` and ``diagnosis demo``: what a new user starts first (the demo job, then the dashboard)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from diagnosis.settings import DATABASE_URL_ENV, HOME_ENV, Settings
from flows.cli.common import command_settings, invoked_as

__all__ = ["dashboard", "demo"]


def dashboard(ctx: typer.Context, port: Annotated[int, typer.Option()] = 8501) -> None:
    """Start the Streamlit dashboard on 127.0.0.1."""
    settings: Settings = ctx.obj
    import importlib.util

    package = importlib.util.find_spec("dashboard")  # found, not imported: Streamlit loads in its own process
    if package is None or not package.submodule_search_locations:
        raise typer.BadParameter("the dashboard package is not installed beside the command line")
    app_path = Path(list(package.submodule_search_locations)[0]) / "server.py"  # app.py + the session-cookie routes
    env = {**os.environ, HOME_ENV: str(settings.home), DATABASE_URL_ENV: settings.db_url}
    command = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer",
               "--client.showSidebarNavigation", "false"]  # no flash of the pages/ file names before st.navigation
    typer.echo(f"dashboard on http://127.0.0.1:{port}")
    raise typer.Exit(subprocess.call(command, env=env))


def demo(
    ctx: typer.Context,
    cases: Annotated[int, typer.Option(min=60, help="Number of synthetic cases.")] = 600,
    dims: Annotated[int, typer.Option(min=2, max=3)] = 2,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    seed: int = 0,
) -> None:
    """Generate -> ingest -> train -> diagnose -> evaluate through the Prefect flows."""
    settings = command_settings(ctx)
    from flows.cli.render import metrics_table, print_table
    from flows.demo import demo_flow

    report = demo_flow(settings.db_url, str(settings.home), cases=cases, dims=dims, epochs=epochs, seed=seed)
    print_table(metrics_table(report))
    from diagnosis.synthetic.classes import RARE_DIAGNOSIS

    rare = report.get("per_class_recall", {}).get(RARE_DIAGNOSIS)
    if rare is not None:
        typer.echo(f"rare diagnosis {RARE_DIAGNOSIS}: recall {rare:.3f} on the test split (trained with class weights; "
                   f"`diagnosis augment --label {RARE_DIAGNOSIS}` adds generated cases of it)")
    home = "" if Settings.from_env().home == settings.home else f" --home {settings.home}"  # only when not implied
    command = invoked_as() + home
    typer.echo(f"\nstore: {settings.db_url}\nnext: {command} users add admin --role admin   (asks for a password)"
               f"\n      {command} dashboard   (then open http://127.0.0.1:8501 and sign in)")
