"""Open sessions re-check the account on every rerun; sign-in is throttled per user and per client; the Overview's
date axis (AppTest)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import db
from tests.dashboard.apptest import DASHBOARD, TIMEOUT_S, signed_in
from dashboard import auth

Store = Any  # the seeded store from conftest.py




def _shown(at: AppTest) -> str:
    """Everything the page rendered as text."""
    parts = [str(e.value) for kind in ("title", "info", "warning", "caption", "markdown", "text", "error")
             for e in at.get(kind)]  # fmt: skip
    return "\n".join(parts + [f"{m.label} {m.value}" for m in at.metric])


def _try(at: AppTest, username: str, password: str) -> AppTest:
    """Submit the sign-in form."""
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(password)
    at.button[0].click().run()
    assert not at.exception
    return at


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names whose password the store checked (each check is one 64 MiB argon2 verification)."""
    checked: list[str] = []
    real = db.signin.authenticate

    def counting(session, username, password):  # noqa: ANN001, ANN202 - same signature as db.authenticate
        checked.append(username)
        return real(session, username, password)

    monkeypatch.setattr(db.signin, "authenticate", counting)
    return checked


def _audit_actions(store: Store) -> list[str]:
    """Audit actions of sign-ins, oldest first."""
    with db.session_scope(store.url) as session:
        return [e.action for e in reversed(db.audit_log(session)) if e.action.startswith("sign_in")]


def test_disabled_user_is_signed_out_on_the_next_rerun(store: Store) -> None:
    at = signed_in(store, store.clinician, "pages/case.py", case=store.image_2d)
    assert "Productive cough" in _shown(at)
    with db.session_scope(store.url) as session:
        db.set_user_active(session, store.clinician, False)
    at.run()  # any interaction reruns the page
    assert not at.exception and [t.value for t in at.title] == ["Sign in"]
    assert "account has been disabled" in at.warning[0].value
    assert "Productive cough" not in _shown(at) and not at.metric and "user" not in at.session_state


def test_disabled_user_cannot_save_a_review_from_an_open_form(store: Store) -> None:
    at = signed_in(store, store.clinician, "pages/case.py", case=store.image_2d)
    at.selectbox(key="review_label").select("covid")
    with db.session_scope(store.url) as session:
        db.set_user_active(session, store.clinician, False)
    at.button(key="review_submit").click().run()
    assert [t.value for t in at.title] == ["Sign in"]
    with db.session_scope(store.url) as session:
        assert db.get_review(session, store.image_2d) is None


def test_changed_role_applies_on_the_next_rerun(store: Store) -> None:
    at = signed_in(store, store.admin, "pages/augmentation.py")
    assert "Only administrators" not in _shown(at)
    with db.session_scope(store.url) as session:
        db.set_user_role(session, store.admin, "clinician")
    at.run()
    assert not at.exception and "Only administrators can generate samples" in _shown(at)
    assert at.session_state["user"].role == "clinician" and not [b for b in at.button if b.key == "augment_start"]


def _app(monkeypatch: pytest.MonkeyPatch, **policy: str) -> AppTest:
    """The app, run once, with the sign-in policy set from ``DIAGNOSIS_SIGN_IN_<NAME>`` variables."""
    for name, value in policy.items():
        monkeypatch.setenv(f"DIAGNOSIS_SIGN_IN_{name}", value)
    return AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()


def test_failed_sign_ins_lock_the_user_out_before_any_hash(
    store: Store, monkeypatch: pytest.MonkeyPatch, hashes: list[str]
) -> None:
    at = _app(monkeypatch, MAX_FAILURES="3", BASE_DELAY_S="0")
    for _ in range(2):
        assert "wrong password" in _try(at, store.clinician, "wrong password").error[0].value
    assert "locked for 15 minutes" in _try(at, store.clinician, "wrong again").error[0].value
    locked = _try(at, store.clinician, store.password)  # the right password, while locked
    assert "locked" in locked.error[0].value and locked.title[0].value == "Sign in"
    assert "user" not in locked.session_state and len(hashes) == 3
    other = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()  # another browser
    assert "locked" in _try(other, store.clinician, store.password).error[0].value
    assert _audit_actions(store) == ["sign_in_failed"] * 3 + ["sign_in_lockout"] + ["sign_in_refused"] * 2
    with db.session_scope(store.url) as session:
        db.reset_sign_in_throttle(session, username=store.clinician)
    assert _try(other, store.clinician, store.password).title[0].value == "Overview"


def test_one_browser_guessing_many_names_is_locked_out(
    store: Store, monkeypatch: pytest.MonkeyPatch, hashes: list[str]
) -> None:
    at = _app(monkeypatch, MAX_CLIENT_FAILURES="3", BASE_DELAY_S="0")
    for name in ("alice", "bert", "carol"):
        _try(at, name, "guess-1234")
    assert "locked" in _try(at, store.admin, store.password).error[0].value  # the client is locked, any name
    assert len(hashes) == 3
    fresh = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()
    assert _try(fresh, store.admin, store.password).title[0].value == "Overview"
    with db.session_scope(store.url) as session:
        [lockout] = [e for e in db.audit_log(session) if e.action == "sign_in_lockout"]
    assert lockout.after["scope"] == "client" and lockout.after["client"].startswith("session:")


def test_throttled_attempt_says_how_long_to_wait(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, BASE_DELAY_S="120", MAX_DELAY_S="300")
    _try(at, store.clinician, "wrong password")
    assert "Wait 2 minutes before the next attempt" in _try(at, store.clinician, "wrong again").error[0].value
    assert "Wait 2 minutes before trying again" in _try(at, store.clinician, store.password).error[0].value


def test_client_key_trusts_forwarded_for_only_behind_a_proxy() -> None:
    headers = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    assert auth.client_key(headers, "10.0.0.1", "tok", trust_proxy=True) == "ip:10.0.0.2"
    assert auth.client_key(headers, "10.0.0.1", "tok", trust_proxy=False) == "ip:10.0.0.1"
    assert auth.client_key({}, "10.0.0.1", "tok", trust_proxy=True) == "ip:10.0.0.1"
    assert auth.client_key(headers, None, "tok", trust_proxy=False) == "session:tok"
    assert auth.client_key({"X-Forwarded-For": "evil"}, object(), "tok", trust_proxy=True) == "session:tok"
    assert auth.client_key({}, " ::ffff:10.0.0.1 ", "tok", trust_proxy=False) == "ip:10.0.0.1"


def test_cases_over_time_ticks_whole_days_when_every_case_arrived_on_one_day(store: Store) -> None:
    at = signed_in(store, store.clinician, "pages/overview.py")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "cases_per_day" in c.proto.id]
    assert charts, "the Overview draws its cases-over-time chart"
    axis = charts[0]["layout"]["xaxis"]
    assert axis["type"] == "category" and all(len(day) == 10 for day in charts[0]["data"][0]["x"])  # YYYY-MM-DD
