"""Dashboard sessions in the store: one-time tickets, secrets stored only as hashes, expiry, idle timeout, revocation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

import db
from db.models import WebSession, utcnow


def _user(url: str, name: str = "ann") -> int:
    with db.session_scope(url) as session:
        return db.create_user(session, name, f"password-{name}").id


def _open(url: str, user_id: int, lifetime_s: float = 3600.0) -> db.OpenedWebSession:
    with db.session_scope(url) as session:
        return db.open_web_session(session, user_id, lifetime_s=lifetime_s)


def _redeem(url: str, ticket: object) -> str | None:
    with db.session_scope(url) as session:
        redeemed = db.redeem_ticket(session, ticket)
    return None if redeemed is None else redeemed[0]


def _user_of(url: str, secret: object, idle_s: float = 600.0) -> db.WebSessionUser | None:
    with db.session_scope(url) as session:
        return db.session_user(session, secret, idle_s=idle_s)


def test_a_ticket_buys_one_secret_once_and_only_hashes_are_stored(db_url: str) -> None:
    opened = _open(db_url, _user(db_url))
    secret = _redeem(db_url, opened.ticket)
    assert secret is not None and _redeem(db_url, opened.ticket) is None  # single use
    found = _user_of(db_url, secret)
    assert found is not None and (found.user.username, found.session_id) == ("ann", opened.id)
    with db.session_scope(db_url) as session:
        row = session.get(WebSession, opened.id)
        stored = [row.secret_hash, row.ticket_hash]
    assert secret not in stored and opened.ticket not in stored and row.ticket_hash is None
    for bad in (None, "", "x" * 500, 42, opened.ticket):
        assert _user_of(db_url, bad) is None


def test_a_lapsed_ticket_and_an_expired_session_are_refused(db_url: str) -> None:
    user_id = _user(db_url)
    late = _open(db_url, user_id)
    with db.session_scope(db_url) as session:
        session.execute(update(WebSession).where(WebSession.id == late.id).values(ticket_expires_at=utcnow() - timedelta(seconds=1)))
    assert _redeem(db_url, late.ticket) is None
    opened = _open(db_url, user_id)
    secret = _redeem(db_url, opened.ticket)
    with db.session_scope(db_url) as session:
        session.execute(update(WebSession).where(WebSession.id == opened.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert _user_of(db_url, secret) is None


def test_idle_disabled_and_revoked_sessions_end(db_url: str) -> None:
    user_id = _user(db_url)
    idle, disabled, revoked = (_open(db_url, user_id) for _ in range(3))
    secrets = {name: _redeem(db_url, o.ticket) for name, o in (("idle", idle), ("disabled", disabled), ("revoked", revoked))}
    with db.session_scope(db_url) as session:
        session.execute(update(WebSession).where(WebSession.id == idle.id).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    assert _user_of(db_url, secrets["idle"], idle_s=30 * 60) is None
    assert _user_of(db_url, secrets["idle"], idle_s=10**6) is None  # an idle session was revoked, not just refused

    with db.session_scope(db_url) as session:
        assert db.revoke_web_session(session, session_id=revoked.id)
        assert not db.revoke_web_session(session, session_id=revoked.id)  # already revoked
    assert _user_of(db_url, secrets["revoked"]) is None
    with db.session_scope(db_url) as session:
        assert db.revoke_web_session(session, secret=None) is False

    assert _user_of(db_url, secrets["disabled"]) is not None
    with db.session_scope(db_url) as session:
        db.set_user_active(session, "ann", False)
    assert _user_of(db_url, secrets["disabled"]) is None
    with db.session_scope(db_url) as session:
        assert session.scalars(select(WebSession.revoked_at).where(WebSession.id == disabled.id)).one() is not None


def test_a_revoked_session_ticket_is_refused_and_old_rows_are_pruned(db_url: str) -> None:
    user_id = _user(db_url)
    opened = _open(db_url, user_id)
    with db.session_scope(db_url) as session:
        db.revoke_web_session(session, session_id=opened.id)
    assert _redeem(db_url, opened.ticket) is None
    old = _open(db_url, user_id)
    with db.session_scope(db_url) as session:
        session.execute(update(WebSession).where(WebSession.id == old.id).values(expires_at=utcnow() - timedelta(days=2)))
        assert db.prune_web_sessions(session) == 1
        assert session.get(WebSession, opened.id) is not None
