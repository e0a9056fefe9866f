"""Dashboard users: argon2id password hashes, roles, sign-in checks (no hand-written crypto).

Users are disabled, never deleted, so every review and audit row keeps pointing at a real person.

Examples:
    >>> with session_scope(url) as session:  # doctest: +SKIP
    ...     create_user(session, "ada", "correct horse battery", role="admin")
    ...     authenticate(session, "ada", "correct horse battery")
    UserView(id=1, username='ada', role='admin', active=True, created_at=...)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ROLES, User

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "UserExistsError",
    "UserView",
    "authenticate",
    "create_user",
    "get_user",
    "list_users",
    "set_user_active",
    "set_user_role",
]

MIN_PASSWORD_LENGTH = 8
"""Shortest password :func:`create_user` accepts."""

_hasher = PasswordHasher()  # argon2id with the library's recommended (RFC 9106 low-memory) parameters
_DUMMY_HASH = _hasher.hash("not a real password")  # verified for unknown users: same timing as a wrong password


class UserExistsError(ValueError):
    """A user with this name exists already."""


@dataclass(frozen=True)
class UserView:
    """A user as the dashboard sees it (never the password hash)."""

    id: int
    username: str
    role: str
    active: bool
    created_at: datetime


def _view(row: User) -> UserView:
    """Copy an ORM user into its frozen view."""
    return UserView(id=row.id, username=row.username, role=row.role, active=row.active, created_at=row.created_at)


def create_user(session: Session, username: str, password: str, *, role: str = "clinician") -> UserView:
    """Add a user with an argon2id hash of ``password``.

    Args:
        session: An open session.
        username: Unique sign-in name (surrounding spaces are removed).
        password: At least :data:`MIN_PASSWORD_LENGTH` characters.
        role: ``clinician`` or ``admin``.

    Returns:
        The new user.

    Raises:
        ValueError: If the name is empty, the password too short or the role unknown.
        UserExistsError: If the name is taken.
    """
    username = username.strip()
    if not username:
        raise ValueError("username must not be empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if session.execute(select(User.id).where(User.username == username)).first() is not None:
        raise UserExistsError(f"user {username!r} exists already; pick another name or disable the old one")
    row = User(username=username, password_hash=_hasher.hash(password), role=role, active=True)
    session.add(row)
    session.flush()
    return _view(row)


def get_user(session: Session, username: str) -> UserView | None:
    """The user called ``username``, or ``None``."""
    row = session.execute(select(User).where(User.username == username.strip())).scalar_one_or_none()
    return _view(row) if row is not None else None


def authenticate(session: Session, username: str, password: str) -> UserView | None:
    """Check a sign-in: the user exists, is active and ``password`` matches its hash.

    Unknown users cost one hash verification too, so timing does not reveal which names exist. A hash made
    with older parameters is re-hashed on success.

    Returns:
        The user, or ``None`` when the sign-in is refused (for any reason: the caller shows one message).
    """
    row = session.execute(select(User).where(User.username == username.strip())).scalar_one_or_none()
    try:
        _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or not row.active:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
    return _view(row)


def list_users(session: Session) -> list[UserView]:
    """All users, ordered by name."""
    return [_view(row) for row in session.execute(select(User).order_by(User.username)).scalars()]


def _user_row(session: Session, username: str) -> User:
    """The user's row.

    Raises:
        LookupError: If there is no such user.
    """
    row = session.execute(select(User).where(User.username == username.strip())).scalar_one_or_none()
    if row is None:
        raise LookupError(f"no user {username!r}; see `diagnosis users list`")
    return row


def set_user_active(session: Session, username: str, active: bool) -> UserView:
    """Enable or disable a user; a disabled user can no longer sign in.

    Raises:
        LookupError: If there is no such user.
    """
    row = _user_row(session, username)
    row.active = active
    session.flush()
    return _view(row)


def set_user_role(session: Session, username: str, role: str) -> UserView:
    """Change a user's role; open dashboard sessions apply it on their next rerun.

    Raises:
        ValueError: If the role is unknown.
        LookupError: If there is no such user.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    row = _user_row(session, username)
    row.role = role
    session.flush()
    return _view(row)
