"""Drive the real dashboard server with headless Chromium: overview -> cases -> open a case -> its diagnosis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 60  # server start on a busy machine
PAGE_TIMEOUT_MS = 90_000  # the first image shown imports MONAI in the server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium"),
]


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers ``ok``; fail with the server log otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dashboard exited with code {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(f"dashboard did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def server(store: Any, tmp_path: Path) -> Iterator[str]:
    """Start ``streamlit run dashboard/app.py`` on a free port against the seeded store; yield its URL."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
               "--server.address", "127.0.0.1", "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    env = {**os.environ, "DIAGNOSIS_DATABASE_URL": store.url, "DIAGNOSIS_HOME": str(store.home)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_healthy(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_open_a_case_from_the_case_list(server: str, store: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(server)
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.get_by_test_id("stMetric").filter(has_text="Diagnosed")).to_contain_text("3")

            page.get_by_role("link", name="Cases").click()
            expect(page.get_by_text("5 cases")).to_be_visible()
            expect(page.get_by_text(store.image_2d, exact=True)).to_be_attached()  # the grid's accessible table

            page.get_by_role("combobox", name="Open case").click()
            page.get_by_role("option", name=store.image_2d, exact=True).click()
            page.locator(".st-key-open_button button").click()
            page.wait_for_url(f"**/case?case={store.image_2d}")

            predicted = page.get_by_test_id("stMetric").filter(has_text="Predicted diagnosis")
            expect(predicted).to_contain_text("pneumonia")
            expect(predicted).to_contain_text("80% probability")
            expect(page.get_by_text("Productive cough and fever")).to_be_visible()
            image = page.get_by_test_id("stImage").locator("img")
            expect(image).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth === 48", arg=image.element_handle())
            expect(page.locator(".js-plotly-plot")).to_be_visible()
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()  # the script run has finished
            page.screenshot(path=tmp_path / "case.png", full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "case.png").stat().st_size > 10_000
