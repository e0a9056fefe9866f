"""The review worklist: one model version's predicted cases, most uncertain first, one page at a time.

Ordering by ``uncertainty`` walks the ``(model_version_id, uncertainty)`` index backwards and stops after
one page. Pages are keyset pages: a page after a :class:`WorklistCursor` (the previous page's last row) starts
with an index seek to ``uncertainty <= cursor``, so page 20,000 costs what page 1 costs; ``OFFSET`` would walk
(and join) every row before it. Reaching a page without its predecessor's cursor (a jump in the page numbers)
costs one index walk to that row: :func:`worklist_cursor_at`. A pager counts from the page it shows and stops
early (``count_worklist(after=, limit=)``), so over a filtered million it costs what its pages cost. Rows without
an uncertainty (predictions made before migration 0002) come last, by prediction id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from db.cases.queries import NO_DATASET, in_datasets
from db.models import Case, Prediction, Review

__all__ = ["COUNT_AHEAD", "REVIEW_STATES", "WorklistCursor", "WorklistFilter", "WorklistRow", "count_worklist",
           "list_worklist", "worklist_cursor_at"]

COUNT_AHEAD = 5_000
"""A pager counts the worklist's rows up to this many past the page shown ("more than N" beyond it)."""

REVIEW_STATES: tuple[str, ...] = ("unreviewed", "reviewed", "disagreement")
"""``disagreement``: reviewed with a final diagnosis other than this model's prediction."""


@dataclass(frozen=True)
class WorklistFilter:
    """Which predictions of a model version the worklist shows (``None`` = no restriction)."""

    model_version_id: int
    review: str | None = None  # one of REVIEW_STATES
    predicted_label: str | None = None
    min_uncertainty: float | None = None
    max_uncertainty: float | None = None
    since: datetime | None = None  # case stored at or after
    until: datetime | None = None  # case stored before
    dataset: str | None = None  # cases of this data set (``db.NO_DATASET``: cases stored without one)


@dataclass(frozen=True)
class WorklistCursor:
    """Where a worklist page ended: its last row's uncertainty (None: a legacy row without one) and prediction id.

    Pass it as ``after`` to :func:`list_worklist` for the next page.
    """

    uncertainty: float | None
    prediction_id: int


@dataclass(frozen=True)
class WorklistRow:
    """One case to review."""

    case_key: str
    status: str
    true_label: str | None
    predicted_label: str
    probability: float | None
    uncertainty: float | None
    prediction_set: tuple[str, ...] | None
    modalities: tuple[str, ...]
    reviewed_label: str | None  # the current review's final diagnosis
    created_at: datetime
    prediction_id: int = 0  # the sort's tie-breaker (see :attr:`cursor`)

    @property
    def cursor(self) -> WorklistCursor:
        """The cursor of this row: the page after it starts with the next row."""
        return WorklistCursor(self.uncertainty, self.prediction_id)


def _apply(stmt: Select[Any], where: WorklistFilter) -> Select[Any]:
    """Join reviews when needed and apply the filters."""
    stmt = stmt.where(Prediction.model_version_id == where.model_version_id)
    if where.review is not None:
        if where.review not in REVIEW_STATES:
            raise ValueError(f"unknown review filter {where.review!r}: use one of {', '.join(REVIEW_STATES)}")
        if where.review == "unreviewed":
            stmt = stmt.where(Review.id.is_(None))
        elif where.review == "reviewed":
            stmt = stmt.where(Review.id.is_not(None))
        else:
            stmt = stmt.where(Review.id.is_not(None), Review.final_label != Prediction.label)
    if where.predicted_label is not None:
        stmt = stmt.where(Prediction.label == where.predicted_label)
    if where.min_uncertainty is not None:
        stmt = stmt.where(Prediction.uncertainty >= where.min_uncertainty)
    if where.max_uncertainty is not None:
        stmt = stmt.where(Prediction.uncertainty <= where.max_uncertainty)
    if where.since is not None:
        stmt = stmt.where(Case.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(Case.created_at < where.until)
    if where.dataset is not None:
        stmt = stmt.where(in_datasets([None if where.dataset == NO_DATASET else where.dataset]))
    return stmt


def _joined(stmt: Select[Any]) -> Select[Any]:
    """Predictions joined to their case and (outer) to its review."""
    return stmt.join(Case, Case.id == Prediction.case_id).outerjoin(Review, Review.case_id == Prediction.case_id)


def _ordered(stmt: Select[Any]) -> Select[Any]:
    """The worklist order: most uncertain first, ties and legacy rows (no uncertainty, last) by prediction id."""
    return stmt.order_by(Prediction.uncertainty.desc().nulls_last(), Prediction.id)


def _after(stmt: Select[Any], cursor: WorklistCursor) -> tuple[Select[Any], Select[Any] | None]:
    """The rows after ``cursor``: those with an uncertainty (None when the cursor is past them) and the legacy ones.

    ``uncertainty <= u`` is a range on the index, so the walk starts at the cursor; the few ties at ``u`` up to its
    id are filtered out. Two statements, because a range never matches NULL: the legacy rows follow in a second one.
    """
    legacy = stmt.where(Prediction.uncertainty.is_(None))
    if cursor.uncertainty is None:
        return legacy.where(Prediction.id > cursor.prediction_id), None
    u = cursor.uncertainty
    ranked = stmt.where(Prediction.uncertainty <= u, or_(Prediction.uncertainty < u, Prediction.id > cursor.prediction_id))
    return ranked, legacy


def _rows_statement() -> Select[Any]:
    return _joined(
        select(Case.case_key, Case.status, Case.label, Prediction.label, Prediction.probabilities,
               Prediction.uncertainty, Prediction.prediction_set, Prediction.modalities, Review.final_label,
               Case.created_at, Prediction.id)
        .select_from(Prediction)
    )  # fmt: skip


def list_worklist(session: Session, where: WorklistFilter, *, limit: int = 50, offset: int = 0,
                  after: WorklistCursor | None = None) -> list[WorklistRow]:
    """One page of the worklist, most uncertain first (then by prediction id).

    Args:
        session: An open session.
        where: The model version and filters.
        limit: Page size.
        offset: Rows to skip. A deep offset walks (and joins) every skipped row: page on with ``after`` instead.
        after: The previous page's last :attr:`WorklistRow.cursor`: the page starts right after it, at the cost of
            the first page.

    Returns:
        At most ``limit`` rows.

    Raises:
        ValueError: If ``where.review`` is not one of :data:`REVIEW_STATES`, or both ``offset`` and ``after`` are given.
    """
    if after is not None and offset:
        raise ValueError("page with either offset or after, not both")
    base = _apply(_rows_statement(), where)
    if after is None:
        rows = list(session.execute(_ordered(base).limit(limit).offset(offset)).all())
    else:
        ranked, legacy = _after(base, after)
        rows = list(session.execute(_ordered(ranked).limit(limit)).all())
        if legacy is not None and len(rows) < limit:
            rows.extend(session.execute(_ordered(legacy).limit(limit - len(rows))).all())
    return [
        WorklistRow(case_key=key, status=status, true_label=label, predicted_label=p_label,
                    probability=float(probs[p_label]) if p_label in probs else None,
                    uncertainty=uncertainty, prediction_set=tuple(p_set) if p_set is not None else None,
                    modalities=tuple(modalities), reviewed_label=reviewed, created_at=created, prediction_id=pid)
        for key, status, label, p_label, probs, uncertainty, p_set, modalities, reviewed, created, pid in rows
    ]  # fmt: skip


def _narrow(stmt: Select[Any], where: WorklistFilter) -> Select[Any]:
    """``stmt`` over predictions, joined only to what the filters read, filtered."""
    if where.since is not None or where.until is not None or where.dataset is not None:
        stmt = stmt.join(Case, Case.id == Prediction.case_id)
    if where.review is not None:
        stmt = stmt.outerjoin(Review, Review.case_id == Prediction.case_id)
    return _apply(stmt, where)


def _capped_count(session: Session, stmt: Select[Any], limit: int | None) -> int:
    """Rows of ``stmt`` (a select of prediction ids), at most ``limit``."""
    if limit is not None:
        stmt = stmt.limit(max(0, limit))
    return int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())


def count_worklist(session: Session, where: WorklistFilter, *, after: WorklistCursor | None = None,
                   limit: int | None = None) -> int:
    """Number of rows :func:`list_worklist` pages through with the same filters (after ``after``, when given).

    Args:
        session: An open session.
        where: The model version and filters.
        after: Count only the rows after this cursor (a page's start): what a pager needs from the page it shows.
        limit: Stop counting at this many rows (the result is then at most ``limit``; pass the rows wanted plus one
            to learn whether there are more). A filtered count of a million predictions probes every matching row's
            review; a limited one costs what its rows cost, whatever the store's size.
    """
    if after is None and limit is None:
        every = _narrow(select(func.count(Prediction.id)).select_from(Prediction), where)
        return int(session.execute(every).scalar_one())
    stmt = _narrow(select(Prediction.id).select_from(Prediction), where)
    if after is None:
        return _capped_count(session, stmt, limit)
    ranked, legacy = _after(stmt, after)
    counted = _capped_count(session, ranked, limit)
    if legacy is not None and (limit is None or counted < limit):
        counted += _capped_count(session, legacy, None if limit is None else limit - counted)
    return counted


def worklist_cursor_at(session: Session, where: WorklistFilter, offset: int,
                       after: WorklistCursor | None = None) -> WorklistCursor | None:
    """The cursor after which the page starting at row ``offset`` (0-based) begins, counting from the first row or,
    with ``after``, from the row after that cursor; ``after`` itself for ``offset`` 0, None past the end.

    For a jump to a page whose predecessor was not read: the walk to row ``offset`` reads only the predictions'
    index (and the tables the filters need), not the rows a page shows. Its cost grows with ``offset``: start it
    from the nearest cursor already known (a page shown before) and it costs the rows between the two.
    """
    if offset <= 0:
        return after
    stmt = _narrow(select(Prediction.uncertainty, Prediction.id).select_from(Prediction), where)
    if after is None:
        row = session.execute(_ordered(stmt).limit(1).offset(offset - 1)).first()
        return WorklistCursor(row[0], row[1]) if row is not None else None
    ranked, legacy = _after(stmt, after)
    row = session.execute(_ordered(ranked).limit(1).offset(offset - 1)).first()
    if row is None and legacy is not None:
        walked = _capped_count(session, ranked.with_only_columns(Prediction.id), offset)
        row = session.execute(_ordered(legacy).limit(1).offset(offset - 1 - walked)).first()
    return WorklistCursor(row[0], row[1]) if row is not None else None
