"""The session cookie's signature, expiry and redirect target, and the two routes that set and delete it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import db
from dashboard import session_cookie
from dashboard.session_cookie import COOKIE_NAME, SESSION_PATH, SIGN_OUT_PATH, safe_next, sign, unsign

KEY = b"k" * 32


def test_sign_and_unsign_refuse_forgery_and_expiry() -> None:
    value = sign("s3cret", int(time.time()) + 60, KEY)
    assert unsign(value, KEY) == "s3cret"
    assert unsign(value, b"other key" * 4) is None
    assert unsign(value.replace("s3cret", "s3cres"), KEY) is None
    assert unsign(sign("s3cret", int(time.time()) - 1, KEY), KEY) is None
    for bad in (None, "", "a.b", "a.b.c.d", "x" * 1000, "s.notdigits." + value.split(".")[2]):
        assert unsign(bad, KEY) is None


@pytest.mark.parametrize(("target", "expected"), [
    ("/worklist", "/worklist"), ("/", "/"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("worklist", "/"), ("/\\evil.example", "/"), (None, "/"), ("/case?case=a", "/case"),
])  # fmt: skip
def test_safe_next_only_lands_on_this_site(target: object, expected: str) -> None:
    assert safe_next(target) == expected


def test_the_routes_set_an_http_only_strict_cookie_and_delete_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    home = tmp_path / "home"
    url = db.default_sqlite_url(home)
    db.migrate(url)
    monkeypatch.setenv("DIAGNOSIS_HOME", str(home))
    monkeypatch.delenv("DIAGNOSIS_DATABASE_URL", raising=False)
    with db.session_scope(url) as session:
        user = db.create_user(session, "ann", "password-ann")
        opened = db.open_web_session(session, user.id, lifetime_s=3600)
    client = TestClient(Starlette(routes=session_cookie.routes()), follow_redirects=False)

    response = client.get(SESSION_PATH, params={"ticket": opened.ticket, "next": "//evil.example"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "max-age=" in header
    secret = unsign(response.cookies[COOKIE_NAME], session_cookie.signing_key())
    assert (home / "secrets" / "session.key").stat().st_mode & 0o077 == 0
    with db.session_scope(url) as session:
        assert db.session_user(session, secret, idle_s=60).user.username == "ann"

    again = client.get(SESSION_PATH, params={"ticket": opened.ticket})  # a used ticket sets nothing
    assert again.status_code == 303 and "set-cookie" not in again.headers

    client.cookies.set(COOKIE_NAME, response.cookies[COOKIE_NAME])
    out = client.get(SIGN_OUT_PATH)
    assert out.status_code == 303 and f'{COOKIE_NAME}=""' in out.headers["set-cookie"]
    with db.session_scope(url) as session:
        assert db.session_user(session, secret, idle_s=60) is None
