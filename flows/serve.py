"""The scheduled deployments of ``diagnosis serve`` and the runner that serves them (or runs each once).

Deployments, each with a cron schedule from :class:`diagnosis.settings.Settings` and at most one run at a time:

- ``ingest-inbox``: :func:`flows.inbox.inbox_flow` over the inbox folder (``ingest_cron``);
- ``retrain``: :func:`flows.retrain.retrain_flow`, promoting a better candidate only (``retrain_cron``);
- ``diagnose-pending``: :func:`flows.diagnose.diagnose_flow` with the current model on pending cases
  (``diagnose_cron``).

Runs execute in child processes of the runner. Flow return values are persisted (under Prefect's home) so that
``--once`` can report them; task results are not.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from uuid import UUID

import anyio
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import PrefectException
from prefect.runner import Runner
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import ValidationError

from diagnosis.settings import SCHEDULE_ENV, Settings

__all__ = ["DEPLOYMENT_NAMES", "ScheduleError", "ScheduledFlow", "Shutdown", "ShutdownRequested", "check_schedules",
           "run_each_once", "run_on", "scheduled_flows", "serve_forever"]

RUNNER_NAME = "diagnosis-serve"
DEPLOYMENT_NAMES = ("ingest-inbox", "retrain", "diagnose-pending")  # pipeline order: --once runs them in this order


class ScheduleError(ValueError):
    """A setting of the served deployments is invalid: a cron expression, the retraining epochs, a deployment name."""


class ShutdownRequested(Exception):
    """SIGTERM or SIGINT arrived before serving began."""


@dataclass(frozen=True)
class ScheduledFlow:
    """One deployment: a flow, its cron schedule and its parameters."""

    name: str
    flow: Flow[..., Any]
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``Runner.aadd_flow`` for this deployment."""
        return {"name": self.name, "cron": self.cron, "parameters": self.parameters, "concurrency_limit": 1,
                "tags": ["diagnosis"], "description": (self.flow.description or "").split("\n")[0]}


def check_cron(expression: str, setting: str) -> str:
    """Return ``expression`` if it is a valid cron string, else raise :class:`ScheduleError` naming the setting."""
    try:
        CronSchedule(cron=expression)
    except ValidationError as error:
        raise ScheduleError(f"{setting}={expression!r} is not a cron expression (five fields, e.g. '0 2 * * *'): "
                            "fix the environment variable") from error
    return expression


def check_schedules(settings: Settings, only: Sequence[str] = ()) -> dict[str, str]:
    """The cron expression per schedule setting (``ingest_cron``, ...), checked, as are ``only`` and the rest.

    Raises:
        ScheduleError: A cron setting or another served setting is invalid, or ``only`` names an unknown deployment.
    """
    if settings.env_errors:
        raise ScheduleError("; ".join(settings.env_errors))
    unknown = sorted(set(only) - set(DEPLOYMENT_NAMES))
    if unknown:
        raise ScheduleError(f"unknown deployment {', '.join(unknown)}; choose from {', '.join(DEPLOYMENT_NAMES)}")
    return {key: check_cron(getattr(settings, key), env) for key, env in SCHEDULE_ENV.items()}


def scheduled_flows(settings: Settings, only: Sequence[str] = ()) -> list[ScheduledFlow]:
    """The deployments for ``settings`` in pipeline order, restricted to the names in ``only`` when given.

    Raises:
        ScheduleError: See :func:`check_schedules`.
    """
    from flows.diagnose import diagnose_flow  # imported here: the flow modules load torch (seconds)
    from flows.inbox import inbox_flow
    from flows.retrain import retrain_flow

    cron = check_schedules(settings, only)
    store = {"db_url": settings.db_url, "home": str(settings.home)}
    text_model = str(settings.retrain_text_model) if settings.retrain_text_model else None
    persisted = {"persist_result": True}  # the return value is kept for --once's summary
    every = [
        ScheduledFlow("ingest-inbox", inbox_flow.with_options(**persisted), cron["ingest_cron"],
                      {**store, "inbox": str(settings.inbox)}),
        ScheduledFlow("retrain", retrain_flow.with_options(**persisted), cron["retrain_cron"],
                      {**store, "fusion": settings.retrain_fusion, "epochs": settings.retrain_epochs,
                       "text_model": text_model}),
        ScheduledFlow("diagnose-pending", diagnose_flow.with_options(**persisted), cron["diagnose_cron"],
                      {**store, "model": "latest", "pending": True,
                       **({"task_runner": "dask", "dask_address": settings.dask_address} if settings.dask_address else {})}),
    ]
    return [f for f in every if not only or f.name in only]


class Shutdown:
    """SIGTERM and SIGINT as a clean stop.

    Before serving they abort start-up (:class:`ShutdownRequested`); while serving they call the waker, which stops
    the runner; a second signal, or one while shutting down, is ignored.
    """

    def __init__(self) -> None:
        self.requested = False
        self._wake: Callable[[], None] | None = None

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (main thread only)."""
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self.handle)

    def handle(self, number: int, frame: FrameType | None = None) -> None:
        """The signal handler."""
        if self.requested:
            return
        self.requested = True
        if self._wake is None:
            raise ShutdownRequested(signal.Signals(number).name)
        self._wake()

    @contextmanager
    def waking(self, wake: Callable[[], None]) -> Iterator[None]:
        """Within the block a signal calls ``wake`` (thread-safe) instead of raising."""
        self._wake = wake
        try:
            yield
        finally:
            self._wake = None
            self.requested = True  # from here on: shutting down, further signals are ignored


class _Runner(Runner):
    """A Runner whose SIGTERM handler (installed by ``start``) hands over to :class:`Shutdown` instead of exiting."""

    def __init__(self, shutdown: Shutdown, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shutdown = shutdown

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        """Request a clean stop."""
        self._shutdown.handle(signal.SIGTERM)


async def _run(runner: Runner, stop: anyio.Event, run_once: bool) -> None:
    """Start ``runner`` (one poll and wait with ``run_once``) until it returns or ``stop`` is set."""
    async with anyio.create_task_group() as group:

        async def stop_when_asked() -> None:
            await stop.wait()
            if runner.started:
                await runner.astop()  # cancels in-flight runs, then start() returns
            else:
                group.cancel_scope.cancel()

        group.start_soon(stop_when_asked)
        await runner.start(run_once=run_once)
        group.cancel_scope.cancel()


def _stop_event(shutdown: Shutdown) -> tuple[anyio.Event, Callable[[], None]]:
    """An event, and a thread-safe waker that sets it from a signal handler."""
    stop, loop = anyio.Event(), asyncio.get_running_loop()
    return stop, lambda: loop.call_soon_threadsafe(stop.set)


async def serve_forever(flows: Sequence[ScheduledFlow], shutdown: Shutdown, on_ready: Callable[[], None]) -> None:
    """Register the deployments and run their scheduled runs until SIGTERM/SIGINT.

    On the way out the schedules are paused (Prefect drops the runs it had scheduled ahead, so nothing piles up while
    nobody serves them); registering them again on the next start resumes them.
    """
    runner = _Runner(shutdown, name=RUNNER_NAME)
    for scheduled in flows:
        await runner.aadd_flow(scheduled.flow, **scheduled.options())
    stop, wake = _stop_event(shutdown)
    with shutdown.waking(wake):
        on_ready()
        await _run(runner, stop, run_once=False)


async def _registered(deployment_id: UUID) -> dict[str, Any]:
    """A deployment as the server stores it: id, flow name and its schedules."""
    async with get_client() as client:
        deployment = await client.read_deployment(deployment_id)
        flow = await client.read_flow(deployment.flow_id)
    schedules = [{"cron": getattr(s.schedule, "cron", None), "timezone": getattr(s.schedule, "timezone", None),
                  "active": s.active} for s in deployment.schedules]
    return {"deployment_id": str(deployment_id), "flow": flow.name, "paused": deployment.paused, "schedules": schedules}


async def _outcome(flow_run_id: UUID) -> dict[str, Any]:
    """Final state of a flow run and, when it completed, its return value."""
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
    state = run.state
    outcome: dict[str, Any] = {"flow_run_id": str(flow_run_id), "state": state.type.value if state else "UNKNOWN",
                               "result": None}
    if state is None or not state.is_completed():
        outcome["message"] = state.message if state else "no state"
        return outcome
    try:
        outcome["result"] = await state.aresult()
    except (PrefectException, OSError) as error:  # e.g. a server whose runs were executed elsewhere
        outcome["message"] = f"return value not available: {error}"
    return outcome


async def run_each_once(flows: Sequence[ScheduledFlow], shutdown: Shutdown,
                        on_ready: Callable[[], None]) -> dict[str, dict[str, Any]]:
    """Register every deployment with its schedule, then run each once now, in order, and wait for it.

    As when serving stops, each schedule is paused when its run is done (Prefect then drops the runs it had
    scheduled, so none is left to run late); the next ``serve`` resumes them.

    Returns:
        Deployment name -> ``deployment_id``, ``flow``, ``schedules`` (cron, timezone, active), ``flow_run_id``,
        ``state`` (``COMPLETED``, ``FAILED``, ..., ``NOT_RUN`` after a stop request), ``result`` and, unless
        completed, ``message``.
    """
    runners: dict[str, _Runner] = {}
    report: dict[str, dict[str, Any]] = {}
    for scheduled in flows:  # one runner per deployment: each run_once poll picks only its own run
        runners[scheduled.name] = _Runner(shutdown, name=f"{RUNNER_NAME}-{scheduled.name}", prefetch_seconds=1)
        report[scheduled.name] = await _registered(await runners[scheduled.name].aadd_flow(scheduled.flow,
                                                                                           **scheduled.options()))
    stop, wake = _stop_event(shutdown)
    with shutdown.waking(wake):
        on_ready()
        for scheduled in flows:
            entry = report[scheduled.name]
            if stop.is_set():
                entry.update(state="NOT_RUN", result=None, message="stopped before this run")
                continue
            async with get_client() as client:
                run = await client.create_flow_run_from_deployment(UUID(entry["deployment_id"]))
            await _run(runners[scheduled.name], stop, run_once=True)
            entry.update(await _outcome(run.id))
    return report


def run_on(api_url: str, flows: Sequence[ScheduledFlow], shutdown: Shutdown, on_ready: Callable[[], None],
           once: bool = False) -> dict[str, dict[str, Any]]:
    """Point Prefect (this process and the runs' child processes) at ``api_url``, then serve or run each once.

    Returns:
        The summary of :func:`run_each_once` with ``once``; else, after a stop request, an empty dict.
    """
    os.environ["PREFECT_API_URL"] = api_url  # the runs' child processes read it from the environment
    os.environ.setdefault("PREFECT_TASKS_DEFAULT_PERSIST_RESULT", "false")  # flows keep their return value, tasks not
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        if once:
            return asyncio.run(run_each_once(flows, shutdown, on_ready))
        asyncio.run(serve_forever(flows, shutdown, on_ready))
        return {}
