"""The review section of the case page: confirm or override the diagnosis, with concurrent edits detected.

The review version shown is remembered in the session when the form renders; a submission sends that
version, so if another clinician saved a review in between, the store refuses it (:class:`db.StaleReviewError`)
and the page shows their review instead of overwriting it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

import db
from dashboard import data
from dashboard.escape import md

__all__ = ["show_audit", "show_review"]

FLASH_KEY = "review_flash"  # message shown once after a saved review


def _seen_key(case_key: str) -> str:
    """Session-state key of the review version the form last showed for a case."""
    return f"review_version_{case_key}"


def show_review(url: str, detail: db.CaseDetail, user: db.UserView, labels: Sequence[str]) -> None:
    """Show the current review and the form to confirm or override the predicted diagnosis."""
    case_key = detail.summary.case_key
    latest = detail.predictions[0] if detail.predictions else None
    current = data.review(url, case_key)
    if (flash := st.session_state.pop(FLASH_KEY, None)) is not None:
        st.success(flash)
    if current is not None:
        verb = "confirmed" if current.action == "confirm" else "overrode the prediction with"
        st.info(f"**{md(current.username)}** {verb} **{md(current.final_label)}** on "
                f"{current.updated_at:%Y-%m-%d %H:%M} UTC (review version {current.version})."
                + (f"\n\n> {md(current.comment)}" if current.comment else ""))
    else:
        st.caption("Not reviewed yet.")
    options = list(dict.fromkeys([*labels, *([latest.label] if latest else [])]))
    default = current.final_label if current is not None else (latest.label if latest is not None else None)
    with st.form(f"review_form_{case_key}", clear_on_submit=False):
        final = st.selectbox("Final diagnosis", options, index=options.index(default) if default in options else None,
                             key="review_label", placeholder="choose a diagnosis")
        comment = st.text_area("Comment", key="review_comment", placeholder="Why you confirm or override")
        submitted = st.form_submit_button("Save review", type="primary", key="review_submit")
    if submitted:
        _submit(url, case_key, user, final, comment, latest)
    st.session_state[_seen_key(case_key)] = current.version if current is not None else 0


def _submit(
    url: str, case_key: str, user: db.UserView, final: str | None, comment: str, latest: db.PredictionView | None
) -> None:
    """Send the review with the version the form showed; report a refused (stale) or invalid one."""
    if not final:
        st.error("Choose a final diagnosis before saving.")
        return
    seen = int(st.session_state.get(_seen_key(case_key), 0))
    try:
        stored = data.submit_review(
            url, case_key=case_key, username=user.username, final_label=final, expected_version=seen,
            comment=comment.strip() or None, predicted_label=latest.label if latest else None,
            model_version_id=latest.model_version_id if latest else None,
        )  # fmt: skip
    except (db.StaleReviewError, PermissionError, LookupError, ValueError) as error:
        st.error(f"Not saved: {md(error)}")
        return
    st.session_state[FLASH_KEY] = f"Review saved ({stored.action}: {md(stored.final_label)}, version {stored.version})."
    st.rerun()


def show_audit(url: str, case_key: str) -> None:
    """The case's audit trail, newest first."""
    rows = data.case_audit(url, case_key=case_key)
    if not rows:
        st.caption("No review actions recorded for this case.")
        return

    def final(state: dict[str, object] | None) -> str:
        return str(state.get("final_label", "")) if state else ""

    frame = pd.DataFrame(
        {
            "time": [r.created_at for r in rows],
            "user": [r.username for r in rows],
            "action": [r.action for r in rows],
            "before": [final(r.before) for r in rows],
            "after": [final(r.after) for r in rows],
            "comment": [r.comment or "" for r in rows],
        }
    )
    st.dataframe(frame, hide_index=True, key="audit_log")
