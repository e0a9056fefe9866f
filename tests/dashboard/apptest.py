"""Opening the dashboard in ``AppTest`` as a signed-in user (shared by the page tests)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

import db

__all__ = ["DASHBOARD", "TIMEOUT_S", "signed_in"]

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
TIMEOUT_S = 90


def signed_in(store: Any, username: str, page: str | None = None, **query: str) -> AppTest:
    """The app signed in as ``username`` (as the sign-in form leaves the session), switched to ``page``."""
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params.update(query)
    with db.session_scope(store.url) as session:
        at.session_state["user"] = db.get_user(session, username)
    at.session_state["last_active"] = time.time()
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception
    return at
