"""Clinician reviews with optimistic concurrency, and the append-only audit log.

A case has at most one current review (``reviews``); its ``version`` grows with every change. A review form
submits the version it saw (``0`` when the case was unreviewed): if someone else changed the review since,
:func:`submit_review` raises :class:`StaleReviewError` instead of overwriting their work. Every accepted
review appends one ``audit_log`` row (user, time, case, before, after, comment). This module offers no way
to change or delete audit rows, and the migration adds database triggers that refuse both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import AuditEntry, Case, Review, User, utcnow

__all__ = [
    "AuditView",
    "ReviewView",
    "StaleReviewError",
    "append_audit",
    "audit_log",
    "get_review",
    "review_counts",
    "submit_review",
]


class StaleReviewError(RuntimeError):
    """The review changed after the form was loaded; reload the case and review again."""


@dataclass(frozen=True)
class ReviewView:
    """The current review of a case."""

    case_key: str
    username: str
    final_label: str
    predicted_label: str | None
    model_version_id: int | None
    comment: str | None
    version: int  # submit this as ``expected_version`` to change the review
    created_at: datetime
    updated_at: datetime

    @property
    def action(self) -> str:
        """``confirm`` when the clinician kept the model's diagnosis, else ``override``."""
        return "confirm" if self.final_label == self.predicted_label else "override"


@dataclass(frozen=True)
class AuditView:
    """One audit log row."""

    id: int
    created_at: datetime
    username: str
    case_key: str | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    comment: str | None


def _review_select() -> Any:
    """Columns of :class:`ReviewView`."""
    return (
        select(Case.case_key, User.username, Review.final_label, Review.predicted_label, Review.model_version_id,
               Review.comment, Review.version, Review.created_at, Review.updated_at)
        .join(Case, Case.id == Review.case_id)
        .join(User, User.id == Review.user_id)
    )  # fmt: skip


def get_review(session: Session, case_key: str) -> ReviewView | None:
    """The current review of ``case_key``, or ``None`` while it is unreviewed."""
    row = session.execute(_review_select().where(Case.case_key == case_key)).one_or_none()
    return ReviewView(*row) if row is not None else None


def _snapshot(review: ReviewView | None) -> dict[str, Any] | None:
    """The JSON an audit row keeps of a review state."""
    if review is None:
        return None
    return {"final_label": review.final_label, "predicted_label": review.predicted_label,
            "model_version_id": review.model_version_id, "comment": review.comment,
            "version": review.version, "reviewer": review.username}  # fmt: skip


def append_audit(
    session: Session,
    *,
    username: str,
    action: str,
    case_key: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    comment: str | None = None,
) -> int:
    """Append one audit row and return its id (the only write the audit log allows)."""
    entry = AuditEntry(username=username, case_key=case_key, action=action, before=before, after=after,
                       comment=comment)  # fmt: skip
    session.add(entry)
    session.flush()
    return entry.id


def _stale(current: ReviewView | None, expected_version: int) -> StaleReviewError:
    """The error for a review form that saw ``expected_version`` while the store holds ``current``."""
    if current is None:
        return StaleReviewError(f"the review you saw (version {expected_version}) no longer exists; reload the case")
    return StaleReviewError(
        f"{current.username} changed this review at {current.updated_at:%Y-%m-%d %H:%M} UTC "
        f"(now version {current.version}, you saw version {expected_version}): reload the case, read their "
        "review, then submit yours again"
    )


def submit_review(
    session: Session,
    *,
    case_key: str,
    username: str,
    final_label: str,
    expected_version: int,
    comment: str | None = None,
    predicted_label: str | None = None,
    model_version_id: int | None = None,
) -> ReviewView:
    """Confirm or override the diagnosis of a case, refusing stale forms, and audit the change.

    Args:
        session: An open session (committed by the caller).
        case_key: The case reviewed.
        username: The signed-in, active user.
        final_label: The diagnosis the clinician settles on.
        expected_version: The review version the form showed (``0`` = the case was unreviewed).
        comment: Free-text reasoning.
        predicted_label: The model's diagnosis shown on the form (equal to ``final_label`` = confirm).
        model_version_id: The model version of that prediction.

    Returns:
        The review as stored, with its new version.

    Raises:
        LookupError: If the case does not exist.
        PermissionError: If the user is unknown or disabled.
        ValueError: If ``final_label`` is empty.
        StaleReviewError: If the review changed since the form was loaded.
    """
    final_label = final_label.strip()
    if not final_label:
        raise ValueError("choose a final diagnosis")
    case_id = session.execute(select(Case.id).where(Case.case_key == case_key)).scalar_one_or_none()
    if case_id is None:
        raise LookupError(f"no case {case_key!r}")
    user = session.execute(select(User.id, User.active).where(User.username == username)).one_or_none()
    if user is None or not user.active:
        raise PermissionError(f"user {username!r} is unknown or disabled; sign in again")
    current = get_review(session, case_key)
    if (current.version if current is not None else 0) != expected_version:
        raise _stale(current, expected_version)
    now = utcnow()
    values = {"user_id": user.id, "final_label": final_label, "predicted_label": predicted_label,
              "model_version_id": model_version_id, "comment": comment or None, "updated_at": now}  # fmt: skip
    if current is None:
        session.add(Review(case_id=case_id, version=1, created_at=now, **values))
        try:
            session.flush()
        except IntegrityError as error:  # another clinician's first review won the race
            raise StaleReviewError("another clinician reviewed this case a moment ago; reload the case") from error
    else:
        changed = session.execute(
            update(Review)
            .where(Review.case_id == case_id, Review.version == expected_version)
            .values(version=Review.version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]  # changed between our read and write
            raise _stale(get_review(session, case_key), expected_version)
    stored = get_review(session, case_key)
    assert stored is not None
    append_audit(session, username=username, action=stored.action, case_key=case_key, before=_snapshot(current),
                 after=_snapshot(stored), comment=comment or None)  # fmt: skip
    return stored


def audit_log(session: Session, *, case_key: str | None = None, limit: int = 100) -> list[AuditView]:
    """Audit rows, newest first, optionally of one case."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if case_key is not None:
        stmt = stmt.where(AuditEntry.case_key == case_key)
    return [
        AuditView(id=r.id, created_at=r.created_at, username=r.username, case_key=r.case_key, action=r.action,
                  before=r.before, after=r.after, comment=r.comment)
        for r in session.execute(stmt).scalars()
    ]  # fmt: skip


def review_counts(session: Session) -> dict[str, int]:
    """Reviewed cases: ``confirmed`` (kept the model's diagnosis) and ``overridden``."""
    agrees = Review.final_label == Review.predicted_label
    confirmed = session.execute(select(func.count()).where(agrees)).scalar_one()
    total = session.execute(select(func.count(Review.id))).scalar_one()
    return {"confirmed": int(confirmed), "overridden": int(total - confirmed)}
