"""Drive the real dashboard with headless Chromium: sign in -> worklist -> case -> override -> review + audit stored."""

from __future__ import annotations

import os
import shutil
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

import db

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
    """Start ``streamlit run dashboard/server.py`` (what ``diagnosis dashboard`` runs) on a free port against the seeded store; yield its URL."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "server.py"),
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


def test_sign_in_review_a_case_and_audit_it(server: str, store: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    shot = tmp_path / "case.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(server)
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_test_id("stMetric")).to_have_count(0)  # nothing but the form before signing in
            page.get_by_label("Username").fill(store.clinician)
            page.get_by_label("Password", exact=True).fill(store.password)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.get_by_test_id("stMetric").filter(has_text="Diagnosed")).to_contain_text("3")

            page.get_by_role("link", name="Worklist").click()
            expect(page.get_by_text("3 cases predicted by poe-v2")).to_be_visible()
            page.get_by_role("combobox", name="Open case").click()
            page.get_by_role("option", name=store.image_2d, exact=True).click()
            page.locator(".st-key-open_button button").click()
            page.wait_for_url(f"**/case?case={store.image_2d}")

            predicted = page.get_by_test_id("stMetric").filter(has_text="Predicted diagnosis")
            expect(predicted).to_contain_text("pneumonia")
            expect(page.get_by_text("Productive cough and fever")).to_be_visible()
            image = page.get_by_test_id("stImage").locator("img")
            expect(image).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth === 48", arg=image.element_handle())

            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()  # the case page finished rendering
            final = page.get_by_role("combobox", name="Final diagnosis")
            final.scroll_into_view_if_needed()
            final.click()
            page.keyboard.type("covid")
            page.keyboard.press("Enter")
            expect(final).to_have_value("covid")
            page.get_by_label("Comment").fill("Bilateral ground-glass pattern.")
            page.get_by_role("button", name="Save review").click()
            expect(page.get_by_text("Review saved (override: covid, version 1)")).to_be_visible()
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()  # the script run has finished
            page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, "/tmp/dashboard-review.png")
    with db.session_scope(store.url) as session:
        review = db.get_review(session, store.image_2d)
        [entry] = db.audit_log(session, case_key=store.image_2d)
    assert review is not None and (review.final_label, review.username) == ("covid", store.clinician)
    assert (entry.action, entry.username, entry.comment) == ("override", store.clinician, "Bilateral ground-glass pattern.")
    assert entry.before is None and entry.after["final_label"] == "covid"


def test_a_reload_keeps_the_sign_in_and_sign_out_ends_it(server: str, store: Any) -> None:
    """Sign in, reload: still signed in (the HttpOnly cookie). Sign out, reload: signed out, cookie gone."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{server}/runs")
            page.get_by_label("Username").fill(store.clinician)
            page.get_by_label("Password", exact=True).fill(store.password)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Runs")).to_be_visible()  # back on the page it was opened on
            [cookie] = [c for c in context.cookies() if c["name"] == "diagnosis_session"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
            assert page.evaluate("document.cookie").find("diagnosis_session") < 0  # invisible to scripts

            page.reload()
            expect(page.get_by_role("heading", name="Runs")).to_be_visible()
            expect(page.get_by_text(f"Signed in as {store.clinician}")).to_be_visible()
            with db.session_scope(store.url) as session:
                assert db.session_user(session, cookie["value"].split(".")[0], idle_s=60) is not None

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            assert not [c for c in context.cookies() if c["name"] == "diagnosis_session"]
            page.reload()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_text(f"Signed in as {store.clinician}")).to_have_count(0)

            context.add_cookies([cookie])  # the old cookie, replayed
            page.reload()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # revoked in the store
        finally:
            browser.close()
