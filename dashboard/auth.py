"""Sign-in for the dashboard: a throttled form checked against the store, session timeouts and re-validation.

The signed-in user (a frozen :class:`db.UserView`) and the time of the last activity live in
``st.session_state``. On every rerun :func:`current_user` signs out a session idle for longer than
``DIAGNOSIS_SESSION_TIMEOUT_MINUTES`` (default 30) and reads the account again from the store: a disabled
account is signed out at once, a changed role applies from that rerun on. Every page calls
:func:`require_user` first, so a signed-out visitor sees the sign-in form and nothing else.

Served through ``dashboard/server.py`` (as ``diagnosis dashboard`` does), a sign-in also opens a store session
and the browser fetches a signed ``HttpOnly`` cookie for it (:mod:`dashboard.session_cookie`); after a reload
the cookie signs the new Streamlit session in, checked against the store on every rerun. Signing out revokes
the store session and deletes the cookie.

Sign-in attempts go through :func:`db.sign_in`, which throttles per username and per client (policy:
:class:`db.SignInPolicy`, ``DIAGNOSIS_SIGN_IN_*`` variables) before any password hash is computed. The client
is the connection's address (:func:`client_key`); behind a reverse proxy that sets ``X-Forwarded-For``, set
``DIAGNOSIS_TRUST_PROXY=1`` to use the address the proxy saw; on localhost it is the browser session.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import streamlit as st

import db
from dashboard import data, session_cookie
from dashboard.escape import md

__all__ = [
    "DEFAULT_TIMEOUT_MINUTES",
    "TIMEOUT_ENV",
    "TRUST_PROXY_ENV",
    "client_key",
    "current_user",
    "refusal_message",
    "require_user",
    "sign_in_form",
    "sign_out",
    "timeout_s",
]

TIMEOUT_ENV = "DIAGNOSIS_SESSION_TIMEOUT_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 30.0  # idle minutes before a session is signed out
TRUST_PROXY_ENV = "DIAGNOSIS_TRUST_PROXY"  # "1": key clients by the last X-Forwarded-For hop (default: off)
USER_KEY = "user"  # session_state key of the signed-in db.UserView
ACTIVE_KEY = "last_active"  # session_state key of the last activity (time.time())
EXPIRED_KEY = "session_expired"  # set when a timeout signed the user out, to say so on the form
REVOKED_KEY = "session_revoked"  # set when the account was disabled (or vanished) while signed in
TOKEN_KEY = "client_token"  # session_state key of the random token that keys a client without an address
WEB_SESSION_KEY = "web_session_id"  # session_state key of the store session (db.web_sessions) of this sign-in
COOKIE_BOUND_KEY = "cookie_bound"  # True when the user came from the session cookie (checked against the store)


def timeout_s() -> float:
    """The idle timeout in seconds, from :data:`TIMEOUT_ENV` (invalid or non-positive values: the default)."""
    return session_cookie.positive_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT_MINUTES) * 60.0


def _address(value: object) -> str | None:
    """``value`` as a normalised IP address (IPv4-mapped IPv6 as IPv4), or ``None`` when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def client_key(headers: Mapping[str, str], ip_address: object, session_token: str, trust_proxy: bool) -> str:
    """The key sign-in failures of this client are counted under.

    Args:
        headers: The request headers (``st.context.headers``).
        ip_address: The connection's address (``st.context.ip_address``; ``None`` on localhost).
        session_token: A random token of this browser session, the fallback.
        trust_proxy: Whether a reverse proxy sets ``X-Forwarded-For``; only then is that header believed
            (anyone can send it), and its last hop is the address the proxy saw.

    Returns:
        ``ip:<address>`` or ``session:<token>``; values that are not IP addresses are ignored.
    """
    if trust_proxy:
        hops = [hop for hop in str(headers.get("X-Forwarded-For", "")).split(",") if hop.strip()]
        if hops and (forwarded := _address(hops[-1])) is not None:
            return f"ip:{forwarded}"
    if (address := _address(ip_address)) is not None:
        return f"ip:{address}"
    return f"session:{session_token}"


def _this_client() -> str:
    """:func:`client_key` of the current browser session."""
    token = st.session_state.setdefault(TOKEN_KEY, secrets.token_urlsafe(16))
    trust = os.environ.get(TRUST_PROXY_ENV, "").strip().lower() in {"1", "true", "yes"}
    headers = st.context.headers if trust else {}
    return client_key(headers, st.context.ip_address, token, trust)


def sign_out() -> None:
    """Forget the signed-in user of this session, and revoke its store session (the cookie dies with it)."""
    session_id = st.session_state.pop(WEB_SESSION_KEY, None)
    if isinstance(session_id, int):
        data.revoke_cookie_session(data.store_url(), session_id=session_id)
    for key in (USER_KEY, ACTIVE_KEY, COOKIE_BOUND_KEY):
        st.session_state.pop(key, None)


def _navigate(target: str) -> None:
    """Send the browser to ``target`` (a path of this dashboard) and stop the page."""
    st.html(f"<script>window.location.replace({json.dumps(target)});</script>", unsafe_allow_javascript=True)
    st.caption(f"Redirecting… [continue]({target})")
    st.stop()


def _from_cookie() -> db.UserView | None:
    """Sign this browser session in from a valid session cookie (after a reload), else None.

    A session that came from the cookie is checked against the store on every rerun: revoked (signed out in
    another tab), expired, idle or disabled ends it here.
    """
    if not session_cookie.enabled():
        return None
    bound = st.session_state.get(COOKIE_BOUND_KEY, False)
    if isinstance(st.session_state.get(USER_KEY), db.UserView) and not bound:
        return None  # signed in with the form in this browser session; the cookie is set on the way
    secret = session_cookie.read_cookie(st.context.cookies)
    found = None if secret is None else data.cookie_session(data.store_url(), secret, idle_s=timeout_s())
    if found is None:
        if bound:
            st.session_state.pop(WEB_SESSION_KEY, None)  # revoked or lapsed in the store already
            sign_out()
            st.session_state[EXPIRED_KEY] = True
        return None
    st.session_state.update({USER_KEY: found.user, ACTIVE_KEY: time.time(), WEB_SESSION_KEY: found.session_id,
                             COOKIE_BOUND_KEY: True})  # fmt: skip
    return found.user


def current_user() -> db.UserView | None:
    """The signed-in user as the store has it now, or ``None``.

    An idle session past the timeout is signed out here, and so is one whose account is disabled or gone; a
    role changed meanwhile replaces the session's copy.
    """
    cookie_user = _from_cookie()
    if cookie_user is not None:
        return cookie_user
    user = st.session_state.get(USER_KEY)
    if not isinstance(user, db.UserView):
        return None
    now = time.time()
    if now - float(st.session_state.get(ACTIVE_KEY, 0.0)) > timeout_s():
        sign_out()
        st.session_state[EXPIRED_KEY] = True
        return None
    fresh = data.account(data.store_url(), user.username)
    if fresh is None or fresh.id != user.id or not fresh.active:
        sign_out()
        st.session_state[REVOKED_KEY] = True
        return None
    st.session_state[USER_KEY] = fresh
    st.session_state[ACTIVE_KEY] = now
    return fresh


def _duration(seconds: float) -> str:
    """``"3 seconds"`` / ``"15 minutes"``, rounded up."""
    if seconds < 90:
        n = max(math.ceil(seconds), 1)
        return f"{n} second{'s' if n != 1 else ''}"
    n = math.ceil(seconds / 60)
    return f"{n} minutes"


def refusal_message(result: db.SignInResult) -> str:
    """What the sign-in form says about a refused attempt (the same words for unknown and known names)."""
    wait = _duration(result.retry_after_s)
    if result.outcome == db.signin.BUSY:
        return "The server is busy checking other sign-ins. Try again in a few seconds."
    if result.outcome == db.signin.THROTTLED:
        return f"Too many failed sign-ins. Wait {wait} before trying again."
    if result.outcome == db.signin.LOCKED:
        return (f"Too many failed sign-ins: sign-in is locked for {wait}. Try again later, or ask an "
                "administrator to unlock the account.")  # fmt: skip
    message = "Unknown user, wrong password or disabled account."
    return message + (f" Wait {wait} before the next attempt." if result.retry_after_s > 0 else "")


def sign_in_form() -> None:
    """Render the sign-in form; on success store the user in the session and rerun."""
    st.title("Sign in")
    url = data.store_url()  # creates the schema of a new home; an unreachable store is reported here
    if st.session_state.pop(EXPIRED_KEY, False):
        st.warning("Your session timed out. Please sign in again.")
    if st.session_state.pop(REVOKED_KEY, False):
        st.warning("You were signed out: your account has been disabled. Ask an administrator if this is a mistake.")
    with st.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        result = data.sign_in(url, username, password, _this_client())
        if result.user is None:
            st.error(refusal_message(result))
            return
        st.session_state[USER_KEY] = result.user
        st.session_state[ACTIVE_KEY] = time.time()
        if session_cookie.enabled():  # the browser fetches its cookie and comes back to this page
            opened = data.open_cookie_session(url, result.user.id, lifetime_s=session_cookie.lifetime_s())
            st.session_state[WEB_SESSION_KEY] = opened.id
            page = session_cookie.safe_next(urlsplit(st.context.url or "/").path)
            _navigate(f"{session_cookie.SESSION_PATH}?{urlencode({'ticket': opened.ticket, 'next': page})}")
        st.rerun()
    st.caption("Accounts are created by an administrator: `diagnosis users add NAME --role clinician`.")


def require_user() -> db.UserView:
    """Return the signed-in user; otherwise show only the sign-in form and stop the page."""
    user = current_user()
    if user is None:
        sign_in_form()
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{md(user.username)}** ({md(user.role)})")
        if st.button("Sign out", key="sign_out"):
            cookie = st.session_state.get(COOKIE_BOUND_KEY) or st.session_state.get(WEB_SESSION_KEY) is not None
            sign_out()
            if cookie and session_cookie.enabled():
                _navigate(session_cookie.SIGN_OUT_PATH)  # deletes the cookie (already refused by the store)
            st.rerun()
    return user
