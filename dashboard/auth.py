"""Sign-in for the dashboard: a form checked against the store's argon2 hashes, and session timeouts.

The signed-in user (a frozen :class:`db.UserView`) and the time of the last activity live in
``st.session_state``; a session idle for longer than ``DIAGNOSIS_SESSION_TIMEOUT_MINUTES`` (default 30) is
signed out. Every page calls :func:`require_user` first, so a signed-out visitor sees the sign-in form and
nothing else, even when a page is opened directly.
"""

from __future__ import annotations

import os
import time

import streamlit as st

import db
from dashboard import data

__all__ = [
    "DEFAULT_TIMEOUT_MINUTES",
    "TIMEOUT_ENV",
    "current_user",
    "require_user",
    "sign_in_form",
    "sign_out",
    "timeout_s",
]

TIMEOUT_ENV = "DIAGNOSIS_SESSION_TIMEOUT_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 30.0  # idle minutes before a session is signed out
USER_KEY = "user"  # session_state key of the signed-in db.UserView
ACTIVE_KEY = "last_active"  # session_state key of the last activity (time.time())
EXPIRED_KEY = "session_expired"  # set when a timeout signed the user out, to say so on the form


def timeout_s() -> float:
    """The idle timeout in seconds, from :data:`TIMEOUT_ENV` (invalid or non-positive values: the default)."""
    try:
        minutes = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_MINUTES))
    except ValueError:
        minutes = DEFAULT_TIMEOUT_MINUTES
    return (minutes if minutes > 0 else DEFAULT_TIMEOUT_MINUTES) * 60.0


def sign_out() -> None:
    """Forget the signed-in user of this session."""
    st.session_state.pop(USER_KEY, None)
    st.session_state.pop(ACTIVE_KEY, None)


def current_user() -> db.UserView | None:
    """The signed-in user, or ``None``; an idle session past the timeout is signed out here."""
    user = st.session_state.get(USER_KEY)
    if not isinstance(user, db.UserView):
        return None
    now = time.time()
    if now - float(st.session_state.get(ACTIVE_KEY, 0.0)) > timeout_s():
        sign_out()
        st.session_state[EXPIRED_KEY] = True
        return None
    st.session_state[ACTIVE_KEY] = now
    return user


def sign_in_form() -> None:
    """Render the sign-in form; on success store the user in the session and rerun."""
    st.title("Sign in")
    url = data.store_url()  # creates the schema of a new home; an unreachable store is reported here
    if st.session_state.pop(EXPIRED_KEY, False):
        st.warning("Your session timed out. Please sign in again.")
    with st.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        user = data.sign_in(url, username, password)
        if user is None:
            st.error("Unknown user, wrong password or disabled account.")
            return
        st.session_state[USER_KEY] = user
        st.session_state[ACTIVE_KEY] = time.time()
        st.rerun()
    st.caption("Accounts are created by an administrator: `diagnosis users add NAME --role clinician`.")


def require_user() -> db.UserView:
    """Return the signed-in user; otherwise show only the sign-in form and stop the page."""
    user = current_user()
    if user is None:
        sign_in_form()
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{user.username}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()
    return user
