"""Throttled sign-in: exponential delays and lockouts per username and per client, decided before any hash.

Each password check costs one argon2id verification (64 MiB, tens of milliseconds of CPU). :func:`sign_in`
therefore refuses a throttled or locked-out attempt from the ``sign_in_throttle`` rows alone, and lets at most
:attr:`SignInPolicy.concurrent_hashes` verifications run at once in the process. Failures are counted for the
typed username (known or not, so the answers reveal no names) and for the client; a success clears both.
Every outcome appends an ``audit_log`` row: ``sign_in``, ``sign_in_failed``, ``sign_in_refused`` (throttled,
locked or busy, no hash computed) and ``sign_in_lockout`` (a limit was just reached).

Examples:
    >>> with session_scope(url) as session:  # doctest: +SKIP
    ...     result = sign_in(session, "ada", "wrong", client="ip:10.0.0.7")
    >>> result.outcome, result.retry_after_s  # doctest: +SKIP
    ('failed', 0.0)
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import SignInThrottle, utcnow
from db.reviews import append_audit
from db.users import UserView, authenticate

__all__ = [
    "BUSY",
    "FAILED",
    "LOCKED",
    "OK",
    "POLICY_ENV",
    "THROTTLED",
    "SignInPolicy",
    "SignInResult",
    "reset_sign_in_throttle",
    "sign_in",
]

OK, FAILED, THROTTLED, LOCKED, BUSY = "ok", "failed", "throttled", "locked", "busy"  # SignInResult.outcome values

POLICY_ENV: Mapping[str, str] = {
    "max_failures": "DIAGNOSIS_SIGN_IN_MAX_FAILURES",
    "max_client_failures": "DIAGNOSIS_SIGN_IN_MAX_CLIENT_FAILURES",
    "base_delay_s": "DIAGNOSIS_SIGN_IN_BASE_DELAY_S",
    "max_delay_s": "DIAGNOSIS_SIGN_IN_MAX_DELAY_S",
    "lockout_s": "DIAGNOSIS_SIGN_IN_LOCKOUT_S",
    "concurrent_hashes": "DIAGNOSIS_SIGN_IN_CONCURRENT_HASHES",
}
"""Policy field -> environment variable read by :meth:`SignInPolicy.from_env`."""

_SUBJECT_LENGTH = 255  # sign_in_throttle.subject and audit_log.username


@dataclass(frozen=True)
class SignInPolicy:
    """Limits of :func:`sign_in`; the wait after ``k`` consecutive failures is ``base * 2**(k - 2)`` (k >= 2).

    With the defaults a username waits 0, 1, 2 and 4 s after its 1st to 4th failure and is locked for 15
    minutes at the 5th; a client (several people may share one address) waits up to 60 s and is locked at the
    20th. Failures older than :attr:`lockout_s` are forgotten.
    """

    max_failures: int = 5  # consecutive failures of one username that lock it out
    max_client_failures: int = 20  # consecutive failures from one client that lock the client out
    base_delay_s: float = 1.0  # wait after the 2nd failure (the 1st, a typo, costs none); doubles each time
    max_delay_s: float = 60.0  # longest wait between attempts below the lockout
    lockout_s: float = 900.0  # how long a lockout lasts; also how long a failure is remembered
    concurrent_hashes: int = 2  # argon2 verifications at once in this process; further attempts get "busy"
    hash_wait_s: float = 5.0  # how long an attempt waits for a free verification slot

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SignInPolicy:
        """The policy from :data:`POLICY_ENV` variables; a missing, invalid or out-of-range value keeps its default."""
        env = os.environ if env is None else env
        counts = {f.name for f in fields(cls) if f.type in ("int", int)}  # whole numbers, at least 1
        values: dict[str, Any] = {}
        for name, variable in POLICY_ENV.items():
            raw = env.get(variable, "").strip()
            try:
                value: float = int(raw) if name in counts else float(raw)
            except ValueError:
                continue
            if math.isfinite(value) and value >= (1 if name in counts else 0):
                values[name] = value
        return cls(**values)

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 after none or one)."""
        return 0.0 if failures < 2 else min(self.base_delay_s * 2.0 ** (failures - 2), self.max_delay_s)


@dataclass(frozen=True)
class SignInResult:
    """The answer to one attempt; the caller shows one message per :attr:`outcome`, never which check failed."""

    outcome: str  # OK, FAILED (wrong name/password or disabled), THROTTLED, LOCKED or BUSY
    user: UserView | None = None  # set when outcome is OK
    retry_after_s: float = 0.0  # seconds until the next attempt is considered (0: at once)


_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


@contextmanager
def _hash_slot(policy: SignInPolicy) -> Iterator[bool]:
    """Hold one of the process's verification slots; yields ``False`` if none freed up in time."""
    with _slots_lock:
        slots = _slots.setdefault(policy.concurrent_hashes, threading.BoundedSemaphore(policy.concurrent_hashes))
    acquired = slots.acquire(timeout=policy.hash_wait_s)
    try:
        yield acquired
    finally:
        if acquired:
            slots.release()


def _expired(row: SignInThrottle, policy: SignInPolicy, now: datetime) -> bool:
    """Whether the row's lockout is over, or its last failure is too old to count."""
    if row.locked_until is not None:
        return row.locked_until <= now
    return row.last_failure_at + timedelta(seconds=policy.lockout_s) <= now


def _wait(row: SignInThrottle | None, policy: SignInPolicy, now: datetime) -> tuple[float, bool]:
    """Seconds the row still holds attempts back, and whether that is a lockout."""
    if row is None or _expired(row, policy, now):
        return 0.0, False
    if row.locked_until is not None:
        return (row.locked_until - now).total_seconds(), True
    ready = row.last_failure_at + timedelta(seconds=policy.delay_s(row.failures))
    return max((ready - now).total_seconds(), 0.0), False


def _rows(session: Session, subjects: Mapping[str, str]) -> dict[str, SignInThrottle | None]:
    """The throttle row of each ``scope -> subject`` (``None`` where there is none)."""
    return {
        scope: session.execute(
            select(SignInThrottle).where(SignInThrottle.scope == scope, SignInThrottle.subject == subject)
        ).scalar_one_or_none()
        for scope, subject in subjects.items()
    }


def _count_failure(
    session: Session, row: SignInThrottle | None, scope: str, subject: str, limit: int, policy: SignInPolicy,
    now: datetime,
) -> tuple[SignInThrottle, bool]:
    """Add one failure to the row (a fresh count after an expired one); lock it when it reaches ``limit``.

    Returns:
        The row and whether this failure locked it.
    """
    if row is None:
        row = SignInThrottle(scope=scope, subject=subject, failures=0, last_failure_at=now)
        session.add(row)
    elif _expired(row, policy, now):
        row.failures, row.locked_until = 0, None
    row.failures += 1
    row.last_failure_at = now
    if row.failures >= limit:
        row.locked_until = now + timedelta(seconds=policy.lockout_s)
        return row, True
    return row, False


def _record_failure(
    session: Session, subjects: Mapping[str, str], policy: SignInPolicy, now: datetime
) -> dict[str, tuple[SignInThrottle, bool]]:
    """Count a failure for every subject, and forget rows that no longer hold anything back.

    A concurrent first failure of the same subject can win the insert; the session is then rolled back
    (it holds nothing else of this attempt yet) and the failure is counted on the row that won.
    """
    limits = {"user": policy.max_failures, "client": policy.max_client_failures}
    for attempt in range(2):
        rows = _rows(session, subjects)
        counted = {scope: _count_failure(session, rows[scope], scope, subject, limits[scope], policy, now)
                   for scope, subject in subjects.items()}  # fmt: skip
        try:
            session.flush()
        except IntegrityError:
            if attempt:
                raise
            session.rollback()
            continue
        session.execute(
            delete(SignInThrottle)
            .where(SignInThrottle.last_failure_at < now - timedelta(seconds=policy.lockout_s))
            .where(or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until <= now))
            .execution_options(synchronize_session=False)
        )
        return counted
    raise AssertionError("unreachable: the second attempt returns or raises")


def sign_in(
    session: Session,
    username: str,
    password: str,
    *,
    client: str,
    policy: SignInPolicy | None = None,
    now: datetime | None = None,
) -> SignInResult:
    """Check a sign-in unless the username or the client is throttled or locked out, and audit the outcome.

    Args:
        session: An open session holding no other pending changes (committed by the caller: the counters
            and audit rows are its writes).
        username: The name as typed (surrounding spaces removed); unknown names are throttled like known ones.
        password: The password as typed.
        client: A key of the client, e.g. ``ip:10.0.0.7`` or ``session:<token>`` (see the dashboard's
            ``auth.client_key``).
        policy: Limits; default :class:`SignInPolicy` ``()``.
        now: The time of the attempt (tests); default the current UTC time.

    Returns:
        The outcome; a refused one (``throttled``, ``locked``, ``busy``) computed no hash.
    """
    policy = policy or SignInPolicy()
    now = now or utcnow()
    name, client = username.strip()[:_SUBJECT_LENGTH], client[:_SUBJECT_LENGTH]
    subjects = {"user": name, "client": client}
    rows = _rows(session, subjects)
    waits = [_wait(row, policy, now) for row in rows.values()]
    wait, locked = max(w for w, _ in waits), any(lock for _, lock in waits)
    if wait > 0:
        outcome = LOCKED if locked else THROTTLED
        append_audit(session, username=name, action="sign_in_refused",
                     after={"client": client, "outcome": outcome, "retry_after_s": round(wait, 1)})  # fmt: skip
        return SignInResult(outcome, retry_after_s=wait)
    with _hash_slot(policy) as free:
        if not free:
            append_audit(session, username=name, action="sign_in_refused", after={"client": client, "outcome": BUSY})
            return SignInResult(BUSY, retry_after_s=1.0)
        user = authenticate(session, name, password)
    if user is not None:
        for row in rows.values():
            if row is not None:
                session.delete(row)
        append_audit(session, username=name, action="sign_in", after={"client": client})
        return SignInResult(OK, user=user)
    counted = _record_failure(session, subjects, policy, now)
    append_audit(session, username=name, action="sign_in_failed",
                 after={"client": client, "failures": counted["user"][0].failures,
                        "client_failures": counted["client"][0].failures})  # fmt: skip
    for scope, (row, locked_now) in counted.items():
        if locked_now and row.locked_until is not None:
            append_audit(session, username=name, action="sign_in_lockout",
                         after={"client": client, "scope": scope, "failures": row.failures,
                                "locked_until": row.locked_until.isoformat()})  # fmt: skip
    waits = [_wait(row, policy, now) for row, _ in counted.values()]
    return SignInResult(LOCKED if any(lock for _, lock in waits) else FAILED, retry_after_s=max(w for w, _ in waits))


def reset_sign_in_throttle(session: Session, *, username: str | None = None, client: str | None = None) -> int:
    """Clear the failures and lockout of a username and/or a client (an administrator's unlock).

    Returns:
        The number of rows removed (0 when nothing was throttled).
    """
    removed = 0
    for scope, subject in (("user", username), ("client", client)):
        if subject is not None:
            result = session.execute(
                delete(SignInThrottle).where(SignInThrottle.scope == scope,
                                             SignInThrottle.subject == subject.strip()[:_SUBJECT_LENGTH])
            )  # fmt: skip
            removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return removed
