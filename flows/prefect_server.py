"""A Prefect server on loopback as a child process: started, health-checked, and stopped with its owner.

Cron schedules need a real server (the ephemeral one Prefect starts in-process has no scheduler), so
``diagnosis serve`` starts ``prefect server start`` unless it was given a server to connect to.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["LocalPrefectServer", "ServerStartError", "api_healthy", "free_port"]

logger = logging.getLogger("flows")

HOST = "127.0.0.1"  # loopback only: the API has no authentication
STARTUP_TIMEOUT_S = 120.0  # first start migrates Prefect's database; 2 busy cores need ~10-30 s
STOP_TIMEOUT_S = 20.0  # graceful stop, then kill


class ServerStartError(RuntimeError):
    """The Prefect server did not come up; the message names its log file."""


def _die_with_parent() -> None:
    """In the server process before it starts (Linux): receive SIGTERM when ``serve`` dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def api_healthy(api_url: str) -> bool:
    """Whether a Prefect API answers ``GET /health`` with 200."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalPrefectServer:
    """``prefect server start`` on ``127.0.0.1`` with its own Prefect home, as a context manager.

    Args:
        prefect_home: Prefect's home for the server (its SQLite database lives there); ``server.log`` is written there.
        port: TCP port; 0 picks a free one.
        startup_timeout: Seconds to wait for ``/api/health``.

    Examples:
        >>> with LocalPrefectServer(Path("/tmp/prefect")) as api_url:  # doctest: +SKIP
        ...     print(api_url)  # http://127.0.0.1:PORT/api
    """

    def __init__(self, prefect_home: Path, port: int = 0, startup_timeout: float = STARTUP_TIMEOUT_S) -> None:
        self.prefect_home = Path(prefect_home)
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.api_url = f"http://{HOST}:{self.port}/api"
        self.log_path = self.prefect_home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the server process without waiting for it (see :meth:`wait_ready`)."""
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=str(self.prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(self.port)]
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            # A session of its own: a Ctrl-C in the terminal reaches only us, and we stop the server last.
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads yet

    def wait_ready(self) -> str:
        """Wait until the launched server answers; returns the API URL.

        Raises:
            ServerStartError: The server exited or did not answer within ``startup_timeout`` seconds.
        """
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"the Prefect server exited with status {self.process.returncode}; "
                                       f"see {self.log_path}")
            if api_healthy(self.api_url):
                logger.info("Prefect server up on %s (pid %d)", self.api_url, self.process.pid)
                return self.api_url
            time.sleep(0.25)
        self.stop()
        raise ServerStartError(f"the Prefect server did not answer on {self.api_url} within "
                               f"{self.startup_timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`. Safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("Prefect server (pid %d) ignored SIGTERM; killing it", self.process.pid)
            self.process.kill()
            self.process.wait()

    def start(self) -> str:
        """Launch the server and wait until it answers; returns the API URL (see :meth:`wait_ready`)."""
        self.launch()
        return self.wait_ready()

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
