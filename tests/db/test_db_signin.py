"""Throttled sign-in: delays, lockouts per username and per client, no hash while refused, every outcome audited."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

import db
from db import signin
from db.models import SignInThrottle, utcnow

POLICY = db.SignInPolicy(max_failures=3, max_client_failures=5, base_delay_s=2.0, max_delay_s=5.0, lockout_s=600.0)
PASSWORD = "password-ann"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names whose password was checked (each check is one argon2 verification)."""
    checked: list[str] = []
    real = signin.authenticate

    def counting(session, username, password):  # noqa: ANN001, ANN202 - same signature as db.authenticate
        checked.append(username)
        return real(session, username, password)

    monkeypatch.setattr(signin, "authenticate", counting)
    return checked


@pytest.fixture
def attempt(db_url: str) -> Iterator[Callable[..., db.SignInResult]]:
    """``attempt(name, password, at=seconds after t0, client=...)``: one sign-in in its own committed session."""
    with db.session_scope(db_url) as session:
        db.create_user(session, "ann", PASSWORD)
        db.create_user(session, "bob", "password-bob")
    t0 = utcnow()

    def run(name: str, password: str, at: float = 0.0, client: str = "ip:10.0.0.1",
            policy: db.SignInPolicy = POLICY) -> db.SignInResult:  # fmt: skip
        with db.session_scope(db_url) as session:
            return db.sign_in(session, name, password, client=client, policy=policy, now=t0 + timedelta(seconds=at))

    yield run


def _actions(url: str) -> list[str]:
    """Audit actions, oldest first."""
    with db.session_scope(url) as session:
        return [entry.action for entry in reversed(db.audit_log(session, limit=1000))]


def test_delays_grow_exponentially_and_refusals_compute_no_hash(
    db_url: str, attempt: Callable[..., db.SignInResult], hashes: list[str]
) -> None:
    first = attempt("ann", "wrong")
    assert (first.outcome, first.retry_after_s) == (db.signin.FAILED, 0.0)  # a typo costs no wait
    second = attempt("ann", "wrong", at=0.5)
    assert (second.outcome, second.retry_after_s) == (db.signin.FAILED, 2.0)
    early = attempt("ann", PASSWORD, at=1.5)  # the right password, but too soon
    assert early.outcome == db.signin.THROTTLED and early.user is None and early.retry_after_s == pytest.approx(1.0)
    assert hashes == ["ann", "ann"], "a throttled attempt must not compute a hash"
    ok = attempt("ann", PASSWORD, at=2.6)
    assert ok.outcome == db.signin.OK and ok.user is not None and ok.user.username == "ann"
    with db.session_scope(db_url) as session:  # a success clears both counters
        assert session.execute(select(func.count(SignInThrottle.id))).scalar_one() == 0
    assert _actions(db_url) == ["sign_in_failed", "sign_in_failed", "sign_in_refused", "sign_in"]
    assert POLICY.delay_s(3) == 4.0 and POLICY.delay_s(9) == 5.0  # doubling, capped at max_delay_s


def test_lockout_after_n_failures_refuses_even_the_right_password(
    db_url: str, attempt: Callable[..., db.SignInResult], hashes: list[str]
) -> None:
    attempt("ann", "wrong", at=0)
    attempt("ann", "wrong", at=1)
    locked = attempt("ann", "wrong", at=10)
    assert locked.outcome == db.signin.LOCKED and locked.retry_after_s == pytest.approx(600.0)
    refused = attempt("ann", PASSWORD, at=300, client="ip:10.9.9.9")  # another client: the user lock holds
    assert refused.outcome == db.signin.LOCKED and refused.retry_after_s == pytest.approx(310.0)
    assert len(hashes) == 3
    assert attempt("bob", "password-bob", at=300).outcome == db.signin.OK  # other names are not locked
    again = attempt("ann", PASSWORD, at=611)  # the lockout is over
    assert again.outcome == db.signin.OK
    actions = _actions(db_url)
    assert actions.count("sign_in_lockout") == 1 and actions.count("sign_in_failed") == 3
    with db.session_scope(db_url) as session:
        [lockout] = [e for e in db.audit_log(session) if e.action == "sign_in_lockout"]
        assert lockout.username == "ann" and lockout.after["scope"] == "user" and lockout.after["failures"] == 3
        assert lockout.after["client"] == "ip:10.0.0.1"


def test_one_client_guessing_many_names_is_locked_out(
    attempt: Callable[..., db.SignInResult], hashes: list[str]
) -> None:
    results = [attempt(f"user{i}", "guess", at=i * 10) for i in range(5)]
    assert [r.outcome for r in results] == [db.signin.FAILED] * 4 + [db.signin.LOCKED]
    assert attempt("ann", PASSWORD, at=60).outcome == db.signin.LOCKED  # the client, not the name
    assert attempt("ann", PASSWORD, at=60, client="ip:10.0.0.2").outcome == db.signin.OK
    assert len(hashes) == 6


def test_unknown_names_are_throttled_like_known_ones(attempt: Callable[..., db.SignInResult]) -> None:
    outcomes = [attempt(name, "wrong", at=t, client=f"ip:{name}").outcome
                for name in ("ann", "nobody") for t in (0, 1, 2)]  # fmt: skip
    assert outcomes[:3] == outcomes[3:] == [db.signin.FAILED, db.signin.FAILED, db.signin.THROTTLED]


def test_failures_are_forgotten_after_the_lockout_period(attempt: Callable[..., db.SignInResult]) -> None:
    attempt("ann", "wrong", at=0)
    attempt("ann", "wrong", at=5)
    late = attempt("ann", "wrong", at=700)  # 700 s > lockout_s: a fresh count, no lockout
    assert (late.outcome, late.retry_after_s) == (db.signin.FAILED, 0.0)


def test_admin_reset_unlocks(db_url: str, attempt: Callable[..., db.SignInResult]) -> None:
    for t in (0, 5, 20):
        attempt("ann", "wrong", at=t)
    with db.session_scope(db_url) as session:
        assert db.reset_sign_in_throttle(session, username="ann", client="ip:10.0.0.1") == 2
    assert attempt("ann", PASSWORD, at=30).outcome == db.signin.OK


def test_busy_when_every_hash_slot_is_taken(db_url: str, attempt: Callable[..., db.SignInResult],
                                            hashes: list[str]) -> None:  # fmt: skip
    policy = db.SignInPolicy(concurrent_hashes=1, hash_wait_s=0.05)
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with signin._hash_slot(policy):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        busy = attempt("ann", PASSWORD, policy=policy)
    finally:
        release.set()
        thread.join()
    assert busy.outcome == db.signin.BUSY and hashes == []
    assert _actions(db_url) == ["sign_in_refused"]
    assert attempt("ann", PASSWORD, policy=policy).outcome == db.signin.OK


def test_policy_from_env_keeps_defaults_for_bad_values() -> None:
    env = {"DIAGNOSIS_SIGN_IN_MAX_FAILURES": "3", "DIAGNOSIS_SIGN_IN_MAX_CLIENT_FAILURES": "0",
           "DIAGNOSIS_SIGN_IN_BASE_DELAY_S": "0.5", "DIAGNOSIS_SIGN_IN_MAX_DELAY_S": "nan",
           "DIAGNOSIS_SIGN_IN_LOCKOUT_S": "inf", "DIAGNOSIS_SIGN_IN_CONCURRENT_HASHES": "4"}  # fmt: skip
    policy = db.SignInPolicy.from_env(env)
    default = db.SignInPolicy()
    assert (policy.max_failures, policy.base_delay_s, policy.concurrent_hashes) == (3, 0.5, 4)
    assert (policy.max_client_failures, policy.max_delay_s, policy.lockout_s) == (
        default.max_client_failures, default.max_delay_s, default.lockout_s)
    assert db.SignInPolicy.from_env({}) == default
    assert (default.max_failures, default.lockout_s, default.delay_s(1), default.delay_s(2)) == (5, 900.0, 0.0, 1.0)


def test_role_changes_are_stored(db_url: str) -> None:
    with db.session_scope(db_url) as session:
        db.create_user(session, "cid", "password-cid", role="admin")
        assert db.set_user_role(session, "cid", "clinician").role == "clinician"
        with pytest.raises(ValueError, match="unknown role"):
            db.set_user_role(session, "cid", "root")
        with pytest.raises(LookupError):
            db.set_user_role(session, "nobody", "admin")
    with db.session_scope(db_url) as session:
        assert db.get_user(session, "cid").role == "clinician"


def test_now_defaults_to_the_current_time(attempt: Callable[..., db.SignInResult], db_url: str) -> None:
    with db.session_scope(db_url) as session:
        result = db.sign_in(session, "ann", "wrong", client="session:abc")
        row = session.execute(select(SignInThrottle).where(SignInThrottle.scope == "client")).scalar_one()
    assert result.outcome == db.signin.FAILED
    assert isinstance(row.last_failure_at, datetime) and abs((utcnow() - row.last_failure_at).total_seconds()) < 60
