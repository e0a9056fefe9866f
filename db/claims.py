"""Claiming chunks of batch-diagnosis work so that concurrent and restarted runs neither duplicate nor skip a case.

A run pages through the ids of pending cases (:func:`pending_case_ids`, keyset pagination, ids only) and hands
each page to a worker, which opens one transaction per chunk with :func:`claim_chunk`:

* On PostgreSQL the chunk's ``cases`` rows are locked with ``SELECT … FOR UPDATE OF cases SKIP LOCKED`` for the
  whole transaction, so a second run working at the same time skips them; the predictions are written and the
  locks released by the same commit. A worker killed with ``kill -9`` loses its connection, PostgreSQL rolls the
  transaction back and frees the rows: the next run finds them still pending. No lease or clean-up is needed.
* SQLite has one writer at a time and no row locks: the claim is a plain read, committed before the model runs
  (so a reader such as the dashboard never blocks the chunk's write). Runs on one SQLite file should not overlap;
  if they do, the unique ``(case_id, model_version_id)`` constraint still keeps one prediction per case.

After locking, the claim re-reads which of its cases already have a prediction in a fresh statement (a new
snapshot under READ COMMITTED), so a chunk committed by another run a moment earlier is not predicted again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from db.cases.inputs import CaseInput, case_inputs_query, not_predicted_by
from db.cases.queries import in_datasets
from db.engine import session_scope
from db.models import Case, Prediction

__all__ = ["Claim", "claim_chunk", "is_transient_error", "peek_cases", "pending_case_ids"]


@dataclass
class Claim:
    """The cases one worker holds for one chunk, and the open session their results must be written with.

    Attributes:
        cases: The claimed cases, ordered by id (possibly fewer than asked for, or none).
        session: The chunk's session; write with it and the claim's commit stores everything at once.
    """

    cases: list[CaseInput]
    session: Session


def _eligible(model_version_id: int, pending: bool) -> list[ColumnElement[bool]]:
    """Conditions on ``cases``: not rejected, real (and, when ``pending``, without a prediction from the model)."""
    conditions = [Case.status != "rejected", Case.is_synthetic.is_(False)]
    if pending:
        conditions.append(not_predicted_by(model_version_id))
    return conditions


def pending_case_ids(session: Session, model_version_id: int, *, after_id: int = 0, limit: int = 512,
                     pending: bool = True, datasets: Sequence[str | None] | None = None) -> list[int]:
    """The next ``limit`` ids of cases to diagnose with a model version, in id order after ``after_id``.

    Args:
        session: An open session.
        model_version_id: The model version the run predicts with.
        after_id: Keyset cursor: only ids greater than this.
        limit: Page size.
        pending: Only cases without a prediction from the model version (``False``: every eligible case).
        datasets: Only cases of these data sets (the ones the model was trained on); ``None``: every data set.

    Raises:
        ValueError: If ``limit`` is not positive.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    stmt = select(Case.id).where(*_eligible(model_version_id, pending), Case.id > after_id).order_by(Case.id).limit(limit)
    if datasets is not None:
        stmt = stmt.where(in_datasets(datasets))
    return list(session.execute(stmt).scalars())


def _chunk_cases(model_version_id: int, case_ids: Sequence[int], pending: bool) -> Select[Any]:
    """The still-eligible cases among ``case_ids``, as :class:`CaseInput` columns ordered by id."""
    return case_inputs_query().where(Case.id.in_(list(case_ids)), *_eligible(model_version_id, pending)).order_by(Case.id)


def peek_cases(url: str, model_version_id: int, case_ids: Sequence[int], *, pending: bool = True) -> list[CaseInput]:
    """The still-eligible cases among ``case_ids``, read without claiming them (ordered by id).

    A run reads ahead with it (images and texts of the next chunk while the current one is predicted and stored);
    :func:`claim_chunk` decides later which of them are still this run's to predict.
    """
    if not case_ids:
        return []
    with session_scope(url) as session:
        return [CaseInput(*r) for r in session.execute(_chunk_cases(model_version_id, case_ids, pending)).all()]


@contextmanager
def claim_chunk(url: str, model_version_id: int, case_ids: Sequence[int], *, pending: bool = True) -> Iterator[Claim]:
    """Claim the still-eligible cases among ``case_ids`` for one transaction of work.

    Everything written through ``claim.session`` commits together when the block ends; an exception rolls it
    back and releases the claim. Cases another run holds (PostgreSQL) or has meanwhile predicted are left out.

    Args:
        url: Store URL.
        model_version_id: The model version the chunk predicts with.
        case_ids: The ids this worker was handed (from :func:`pending_case_ids`).
        pending: Skip cases that already have a prediction from the model version.

    Yields:
        The claim.
    """
    with session_scope(url) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        locked = _chunk_cases(model_version_id, case_ids, pending)
        if postgres:
            locked = locked.with_for_update(of=Case, skip_locked=True)
        rows = session.execute(locked).all() if case_ids else []
        if rows and pending:  # a fresh snapshot: drop cases another run committed while we were locking
            done = set(session.execute(
                select(Prediction.case_id).where(Prediction.model_version_id == model_version_id,
                                                 Prediction.case_id.in_([r[0] for r in rows]))
            ).scalars())
            rows = [r for r in rows if r[0] not in done]
        if not postgres:
            session.commit()  # SQLite: end the read now; the chunk's writes get a short transaction of their own
        yield Claim(cases=[CaseInput(*r) for r in rows], session=session)


def is_transient_error(error: BaseException | None) -> bool:
    """Whether an error is worth retrying: a lost connection, a lock timeout, a file-system hiccup."""
    if isinstance(error, DBAPIError):
        return isinstance(error, (OperationalError, InterfaceError)) or bool(error.connection_invalidated)
    return isinstance(error, (OSError, TimeoutError, ConnectionError))
