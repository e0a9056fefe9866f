"""The dashboard's session cookie: signed, expiring, ``HttpOnly`` and ``SameSite=Strict``, checked against the store.

Streamlit keeps a signed-in user in its per-connection session state, which a page reload throws away. So a sign-in
(:mod:`dashboard.auth`) also opens a row in the store (:mod:`db.web_sessions`) and sends the browser to
:data:`SESSION_PATH` with a one-time ticket. That route, served beside Streamlit by ``dashboard/server.py``,
redeems the ticket for a random secret and sets the cookie; JavaScript never sees the cookie. Every rerun then reads
the cookie (``st.context.cookies``), checks its signature and expiry here and its session in the store. Sign-out
revokes the session in the store and sends the browser to :data:`SIGN_OUT_PATH`, which deletes the cookie.

The cookie is ``<secret>.<expiry unix seconds>.<HMAC-SHA256 signature>``, signed with a key kept in
``<home>/secrets/session.key`` (created on first use). The routes exist only when the dashboard runs through
``dashboard/server.py`` (``diagnosis dashboard`` does); ``streamlit run dashboard/app.py`` keeps sessions in
memory only, as before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "COOKIE_NAME",
    "ENABLED_ENV",
    "LIFETIME_ENV",
    "SESSION_PATH",
    "SIGN_OUT_PATH",
    "enabled",
    "lifetime_s",
    "positive_setting",
    "read_cookie",
    "routes",
    "safe_next",
    "sign",
    "unsign",
]

COOKIE_NAME = "diagnosis_session"
ENABLED_ENV = "DIAGNOSIS_SESSION_COOKIE"  # "1" where the routes are served (set by dashboard/server.py)
LIFETIME_ENV = "DIAGNOSIS_SESSION_MAX_HOURS"  # absolute lifetime of a signed-in session (default 12 hours)
DEFAULT_LIFETIME_HOURS = 12.0
SESSION_PATH = "/_diagnosis/session"  # redeems a sign-in ticket, sets the cookie
SIGN_OUT_PATH = "/_diagnosis/sign-out"  # revokes the cookie's session, deletes the cookie
MAX_COOKIE_CHARS = 256  # longer cookie values are ignored unread


def enabled() -> bool:
    """Whether this dashboard process serves the cookie routes."""
    return os.environ.get(ENABLED_ENV, "").strip() == "1"


def positive_setting(name: str, default: float) -> float:
    """The positive number in environment variable ``name`` (unset, invalid or non-positive: ``default``)."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def lifetime_s() -> float:
    """Absolute session lifetime in seconds, from :data:`LIFETIME_ENV` (invalid or non-positive: the default)."""
    return positive_setting(LIFETIME_ENV, DEFAULT_LIFETIME_HOURS) * 3600.0


def signing_key() -> bytes:
    """The cookie-signing key of this diagnosis home (created on first use).

    Raises:
        RuntimeError: The key file exists but is unusable.
    """
    from diagnosis.keys import read_key_file
    from diagnosis.settings import Settings

    path = Path(Settings.from_env().home) / "secrets" / "session.key"
    key = read_key_file(path)
    if key is None:
        raise RuntimeError(f"{path} holds no usable key; delete it (every signed-in browser must then sign in again)")
    return key


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(secret: str, expires_unix: int, key: bytes) -> str:
    """The cookie value for a session secret that lapses at ``expires_unix``."""
    payload = f"{secret}.{int(expires_unix)}"
    return f"{payload}.{_signature(key, payload)}"


def unsign(value: object, key: bytes, now: float | None = None) -> str | None:
    """The secret inside a cookie value whose signature holds and whose expiry is still ahead, else None."""
    if not isinstance(value, str) or len(value) > MAX_COOKIE_CHARS or value.count(".") != 2:
        return None
    secret, expires, signature = value.split(".")
    if not secret or not expires.isdigit() or not hmac.compare_digest(signature, _signature(key, f"{secret}.{expires}")):
        return None
    return secret if int(expires) > (time.time() if now is None else now) else None


def read_cookie(cookies: Mapping[str, str]) -> str | None:
    """The valid session secret in a request's cookies, or None (no cookie, bad signature, lapsed)."""
    value = cookies.get(COOKIE_NAME)
    return unsign(value, signing_key()) if value else None


def safe_next(value: object) -> str:
    """A same-site path to land on after the redirect (anything else, e.g. ``//evil.example``, becomes ``/``)."""
    if not isinstance(value, str) or len(value) > 512:
        return "/"
    parts = urlsplit(value)
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in value:
        return "/"
    return path


def routes() -> list:
    """The Starlette routes that set and delete the cookie (served beside Streamlit by ``dashboard/server.py``)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    import db
    from diagnosis.settings import Settings

    def redirect(target: str) -> RedirectResponse:
        response = RedirectResponse(target, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        return response

    def redeem(ticket: str | None) -> tuple[str, int] | None:
        with db.session_scope(Settings.from_env().db_url) as session:
            redeemed = db.redeem_ticket(session, ticket)
        return None if redeemed is None else (redeemed[0], int(redeemed[1].timestamp()))

    def revoke(secret: str | None) -> None:
        if secret is not None:
            with db.session_scope(Settings.from_env().db_url) as session:
                db.revoke_web_session(session, secret=secret)

    async def session_route(request: Request) -> RedirectResponse:
        redeemed = await run_in_threadpool(redeem, request.query_params.get("ticket"))
        response = redirect(safe_next(request.query_params.get("next")))
        if redeemed is not None:
            secret, expires = redeemed
            response.set_cookie(COOKIE_NAME, sign(secret, expires, signing_key()), max_age=max(expires - int(time.time()), 1),
                                path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        return response

    async def sign_out_route(request: Request) -> RedirectResponse:
        await run_in_threadpool(revoke, read_cookie(request.cookies))
        response = redirect("/")
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    return [Route(SESSION_PATH, session_route, methods=["GET"]), Route(SIGN_OUT_PATH, sign_out_route, methods=["GET"])]
