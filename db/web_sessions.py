"""Dashboard sessions that survive a page reload, checked against the store on every rerun.

A sign-in in the dashboard opens a row and hands the browser a one-time **ticket** (:func:`open_web_session`).
The browser takes the ticket to the dashboard server's own route, which redeems it once
(:func:`redeem_ticket`) for a new random **secret** and puts that in an ``HttpOnly`` cookie. From then on every
rerun resolves the cookie's secret to its user (:func:`session_user`), which refuses a revoked, expired or idle
session and a disabled account. Sign-out revokes the row (:func:`revoke_web_session`), so a copied cookie is
dead from that moment. Only SHA-256 hashes of tickets and secrets are stored.

Examples:
    >>> with session_scope(url) as session:  # doctest: +SKIP
    ...     opened = open_web_session(session, user.id, lifetime_s=12 * 3600)
    ...     secret = redeem_ticket(session, opened.ticket)
    ...     session_user(session, secret, idle_s=1800).username
    'ada'
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from db.models import User, WebSession, utcnow
from db.users import UserView, _view

__all__ = [
    "TICKET_S",
    "OpenedWebSession",
    "WebSessionUser",
    "open_web_session",
    "prune_web_sessions",
    "redeem_ticket",
    "revoke_web_session",
    "session_user",
]

TICKET_S = 60.0  # seconds a sign-in ticket can be redeemed
TOUCH_S = 30.0  # last_seen_at is written at most this often per session (not on every rerun)
MAX_TOKEN_CHARS = 128  # longer tickets or secrets are refused unread


@dataclass(frozen=True)
class OpenedWebSession:
    """A new session: its row id and the one-time ticket that the browser redeems for its cookie."""

    id: int
    ticket: str
    expires_at: datetime


@dataclass(frozen=True)
class WebSessionUser:
    """The account behind a valid session cookie."""

    session_id: int
    user: UserView
    expires_at: datetime


def _digest(token: str) -> str:
    """SHA-256 hex of a ticket or secret (high-entropy random values: no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _usable(token: object) -> bool:
    return isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS


def open_web_session(session: Session, user_id: int, *, lifetime_s: float, ticket_s: float = TICKET_S) -> OpenedWebSession:
    """Open a session for a user who has just signed in.

    Args:
        session: Open store session (the caller commits).
        user_id: The signed-in user.
        lifetime_s: Absolute lifetime of the session, whatever the activity.
        ticket_s: How long the returned ticket can be redeemed.
    """
    now, ticket = utcnow(), secrets.token_urlsafe(32)
    row = WebSession(user_id=user_id, ticket_hash=_digest(ticket), ticket_expires_at=now + timedelta(seconds=ticket_s),
                     created_at=now, last_seen_at=now, expires_at=now + timedelta(seconds=lifetime_s))  # fmt: skip
    session.add(row)
    session.flush()
    return OpenedWebSession(id=row.id, ticket=ticket, expires_at=row.expires_at)


def redeem_ticket(session: Session, ticket: object) -> tuple[str, datetime] | None:
    """Exchange a ticket, once and before it lapses, for the session's cookie secret and the session's end.

    Returns:
        ``(secret, expires_at)``; None for an unknown, used, lapsed or revoked ticket.
    """
    if not _usable(ticket):
        return None
    now = utcnow()
    row = session.scalars(select(WebSession).where(WebSession.ticket_hash == _digest(str(ticket)))).first()
    if row is None:
        return None
    row.ticket_hash = None  # single use, whether it is still valid or not
    valid = row.revoked_at is None and row.ticket_expires_at is not None and row.ticket_expires_at > now and row.expires_at > now
    row.ticket_expires_at = None
    if not valid:
        session.flush()
        return None
    secret = secrets.token_urlsafe(32)
    row.secret_hash, row.last_seen_at = _digest(secret), now
    session.flush()
    return secret, row.expires_at


def session_user(session: Session, secret: object, *, idle_s: float) -> WebSessionUser | None:
    """The active account behind a cookie secret, or None (unknown, revoked, expired, idle or disabled).

    A session idle for longer than ``idle_s`` or whose account is disabled is revoked here; a valid one has its
    ``last_seen_at`` moved on (at most every :data:`TOUCH_S` seconds).
    """
    if not _usable(secret):
        return None
    now = utcnow()
    found = session.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                            .where(WebSession.secret_hash == _digest(str(secret)))).first()  # fmt: skip
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if not user.active or (now - row.last_seen_at).total_seconds() > idle_s:
        row.revoked_at = now
        session.flush()
        return None
    if (now - row.last_seen_at).total_seconds() >= TOUCH_S:
        row.last_seen_at = now
        session.flush()
    return WebSessionUser(session_id=row.id, user=_view(user), expires_at=row.expires_at)


def revoke_web_session(session: Session, *, session_id: int | None = None, secret: object = None) -> bool:
    """Sign a session out, named by its row id or by its cookie secret; True when a live session was revoked."""
    if session_id is None and not _usable(secret):
        return False
    where = WebSession.id == session_id if session_id is not None else WebSession.secret_hash == _digest(str(secret))
    result = session.execute(update(WebSession).where(where, WebSession.revoked_at.is_(None))
                             .values(revoked_at=utcnow(), ticket_hash=None, ticket_expires_at=None))  # fmt: skip
    return bool(result.rowcount)


def prune_web_sessions(session: Session) -> int:
    """Delete sessions that ended more than a day ago; returns how many rows went."""
    cutoff = utcnow() - timedelta(days=1)
    result = session.execute(delete(WebSession).where(WebSession.expires_at < cutoff))
    return int(result.rowcount or 0)
