"""Sign-in, session timeout, signed-out pages and the review workflow (AppTest against a seeded store)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import db
from tests.dashboard.apptest import DASHBOARD, TIMEOUT_S, signed_in

Store = Any  # the seeded store from conftest.py
PAGES = ("pages/overview.py", "pages/worklist.py", "pages/case.py", "pages/model.py", "pages/augmentation.py",
         "pages/runs.py")  # fmt: skip


def _all_text(at: AppTest) -> str:
    """Everything the page rendered as text, markdown, metrics, tables and captions."""
    parts = [str(e.value) for kind in ("title", "info", "warning", "caption", "markdown", "text", "error", "success")
             for e in at.get(kind)]  # fmt: skip
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(parts)




@pytest.mark.parametrize("page", PAGES)
def test_signed_out_page_shows_only_the_sign_in_form(store: Store, page: str) -> None:
    at = AppTest.from_file(str(DASHBOARD / page), default_timeout=TIMEOUT_S)
    at.query_params["case"] = store.image_2d
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert not at.dataframe and not at.metric and not at.image and not at.get("plotly_chart")
    shown = _all_text(at)
    for secret in (store.image_2d, "pneumonia", "Productive cough", "poe-v2"):
        assert secret not in shown


def test_app_signed_out_offers_only_the_sign_in_page(store: Store) -> None:
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params["case"] = store.image_2d
    at.run()
    assert [t.value for t in at.title] == ["Sign in"] and not at.dataframe and not at.metric


def test_sign_in_form_accepts_the_right_password_only(store: Store) -> None:
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()
    at.text_input(key="sign_in_username").input(store.clinician)
    at.text_input(key="sign_in_password").input("wrong password")
    at.button[0].click().run()
    assert "wrong password" in at.error[0].value and at.title[0].value == "Sign in"
    at.text_input(key="sign_in_password").input(store.password)
    at.button[0].click().run()
    assert not at.exception and at.title[0].value == "Overview"
    assert at.session_state["user"].username == store.clinician
    at.button(key="sign_out").click().run()
    assert at.title[0].value == "Sign in"


def test_disabled_user_cannot_sign_in(store: Store) -> None:
    with db.session_scope(store.url) as session:
        db.set_user_active(session, store.clinician, False)
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()
    at.text_input(key="sign_in_username").input(store.clinician)
    at.text_input(key="sign_in_password").input(store.password)
    at.button[0].click().run()
    assert at.error and at.title[0].value == "Sign in"


def test_idle_session_times_out(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAGNOSIS_SESSION_TIMEOUT_MINUTES", "1")
    at = signed_in(store, store.clinician)
    assert at.title[0].value == "Overview"
    at.session_state["last_active"] = time.time() - 61
    at.run()
    assert at.title[0].value == "Sign in" and "timed out" in at.warning[0].value
    assert not at.metric


def test_override_is_stored_with_an_audit_row(store: Store) -> None:
    at = signed_in(store, store.clinician, "pages/case.py", case=store.image_2d)
    assert "Not reviewed yet" in _all_text(at)
    at.selectbox(key="review_label").select("covid")
    at.text_area(key="review_comment").input("Ground-glass opacities on the CT.")
    at.button(key="review_submit").click().run()
    assert not at.exception
    assert "Review saved (override: covid, version 1)" in at.success[0].value
    with db.session_scope(store.url) as session:
        stored = db.get_review(session, store.image_2d)
        [entry] = db.audit_log(session, case_key=store.image_2d)
    assert stored is not None and stored.final_label == "covid" and stored.predicted_label == "pneumonia"
    assert (entry.username, entry.action, entry.before) == (store.clinician, "override", None)
    assert entry.after["final_label"] == "covid" and entry.comment == "Ground-glass opacities on the CT."
    assert "clinician1** overrode the prediction with **covid" in _all_text(at)


def test_concurrent_review_is_refused_not_overwritten(store: Store) -> None:
    at = signed_in(store, store.clinician, "pages/case.py", case=store.image_2d)  # the form shows "unreviewed"
    with db.session_scope(store.url) as session:  # meanwhile another clinician confirms
        db.submit_review(session, case_key=store.image_2d, username=store.admin, final_label="pneumonia",
                         expected_version=0, predicted_label="pneumonia", comment="clear consolidation")  # fmt: skip
    at.selectbox(key="review_label").select("covid")
    at.button(key="review_submit").click().run()
    assert not at.exception
    assert "Not saved" in at.error[0].value and "admin1 changed this review" in at.error[0].value
    with db.session_scope(store.url) as session:
        stored = db.get_review(session, store.image_2d)
        assert stored is not None and (stored.final_label, stored.username) == ("pneumonia", store.admin)
        assert len(db.audit_log(session, case_key=store.image_2d)) == 1
    at.button(key="review_submit").click().run()  # now the form has seen version 1: a deliberate override
    assert "Review saved (override: covid, version 2)" in at.success[0].value


def test_augmentation_action_is_for_admins_and_says_when_unavailable(store: Store) -> None:
    at = signed_in(store, store.clinician, "pages/augmentation.py")
    assert "Only administrators" in _all_text(at)
    at = signed_in(store, store.admin, "pages/augmentation.py")
    shown = _all_text(at)
    assert "Generation is unavailable" in shown or at.button(key="augment_start") is not None
