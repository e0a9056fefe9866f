"""``diagnosis serve``: scheduled deployments on a loopback Prefect server, or each run once (``--once``)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run each deployment once now, print a JSON summary and exit (status 1 if a run did not complete).")] = False,
    api_url: Annotated[Optional[str], typer.Option("--api-url", envvar="PREFECT_API_URL", help="Use this Prefect server (e.g. http://127.0.0.1:4200/api) instead of starting one.")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the Prefect server started on 127.0.0.1; 0 picks a free one.")] = 0,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Only this deployment (repeatable): ingest-inbox, retrain, diagnose-pending.")] = None,
) -> None:
    """Serve the scheduled deployments: inbox ingestion, retraining with promotion, diagnosis of pending cases.

    Starts `prefect server start` on 127.0.0.1 (state under <home>/prefect) unless --api-url or PREFECT_API_URL names
    a server, registers the deployments with their cron schedules (DIAGNOSIS_INGEST_CRON, DIAGNOSIS_RETRAIN_CRON,
    DIAGNOSIS_DIAGNOSE_CRON) and runs them as scheduled until SIGTERM or Ctrl-C, which stop the runner, then the
    server (exit status 0).
    """
    from flows.cli.common import migrated_store, user_errors
    from flows.prefect_server import LocalPrefectServer, ServerStartError, api_healthy

    migrated_store(ctx)  # also points Prefect at <home>/prefect, before Prefect is imported
    from flows.serve import ScheduleError, Shutdown, ShutdownRequested, check_schedules, run_on, scheduled_flows

    with user_errors(ScheduleError):
        check_schedules(ctx.obj, only or ())
    if api_url and not api_healthy(api_url):
        typer.secho(f"error: no Prefect server answers on {api_url}: start one or leave out --api-url/PREFECT_API_URL",
                    fg="red", err=True)
        raise typer.Exit(1)
    shutdown = Shutdown()
    shutdown.install()
    server = None if api_url else LocalPrefectServer(ctx.obj.prefect_home, port)
    url = server.api_url if server else str(api_url)

    def ready() -> None:
        plural = "s" if len(flows) != 1 else ""
        typer.echo(f"{'running' if once else 'serving'} {len(flows)} deployment{plural} on {url}", err=True)
        for scheduled in flows:
            typer.echo(f"  {scheduled.name:<17} cron {scheduled.cron}", err=True)
        if server and server.process:
            typer.echo(f"  prefect server pid {server.process.pid}, log {server.log_path}", err=True)

    try:
        with user_errors(ServerStartError):
            if server:
                server.launch()  # it starts while the flows (torch, MONAI) are imported
            flows = scheduled_flows(ctx.obj, only or ())
            if server:
                server.wait_ready()
            summary = run_on(url, flows, shutdown, ready, once=once)
    except ShutdownRequested:
        typer.echo("stopped before serving began", err=True)
        raise typer.Exit(0) from None
    finally:
        if server:
            server.stop()
    if not once:
        typer.echo("stopped: runner and server shut down", err=True)
        return
    typer.echo(json.dumps({"api_url": url, "deployments": summary}, default=str))
    raise typer.Exit(0 if all(entry["state"] == "COMPLETED" for entry in summary.values()) else 1)
