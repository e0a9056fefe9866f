"""Worklist page: the latest model's predicted cases to review, most uncertain first, filtered and paginated
(keyset pages: the page after one already shown costs what the first page costs)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

import streamlit as st

import db
from dashboard import auth, data, tables
from dashboard.escape import md

CASE_PAGE = "pages/case.py"


def _first_page() -> None:
    """Go back to page 1 when a filter changes."""
    st.session_state.pop("page", None)


def _page_start(url: str, where: db.WorklistFilter, page: int) -> db.WorklistCursor | None:
    """The cursor page ``page`` starts after: the last row of the page before it when that was shown (a keyset
    page, as cheap as the first), else found by one index walk from the nearest page before it whose start is
    known (a jump in the page numbers: the pager lists pages at most COUNT_AHEAD rows past a shown one)."""
    known = st.session_state.get("worklist_starts")
    if not known or known[0] != where:
        known = st.session_state["worklist_starts"] = (where, {})
    starts = known[1]
    if page <= 1:
        return None
    if page not in starts:
        nearest = max((p for p in starts if p < page), default=1)
        start = data.worklist_cursor_at(url, where, (page - nearest) * data.PAGE_SIZE, starts.get(nearest))
        if start is None:
            return None
        starts[page] = start
    return starts[page]


def _remember_next(where: db.WorklistFilter, page: int, rows: list[db.WorklistRow]) -> None:
    """Keep where the next page starts (bounded: one filter's pages at a time)."""
    if rows:
        st.session_state["worklist_starts"][1][page + 1] = rows[-1].cursor


def _open(case_key: str) -> None:
    """Switch to the case page showing ``case_key``."""
    st.switch_page(CASE_PAGE, query_params={"case": case_key})


auth.require_user()
st.title("Worklist")
url = data.store_url()
model = data.latest_model(url)
if model is None:
    empty = sum(data.status_counts(url).values()) == 0
    st.info("No cases yet — run `diagnosis demo`." if empty else "No model yet — run `diagnosis train`, then "
            "`diagnosis diagnose`: the worklist lists predicted cases.")
    st.stop()

review_col, label_col, uncertainty_col, date_col, dataset_col = st.columns([1, 1, 1, 1, 1])
review_state = review_col.selectbox("Review status", db.REVIEW_STATES, index=None, placeholder="any",
                                    key="filter_review", on_change=_first_page)
predicted = label_col.selectbox("Predicted diagnosis", list(model.label_names), index=None, placeholder="any",
                                key="filter_predicted_label", on_change=_first_page)
min_uncertainty = uncertainty_col.number_input("Uncertainty at least (nats)", min_value=0.0, value=None, step=0.1,
                                               key="filter_uncertainty", on_change=_first_page)
dataset = dataset_col.selectbox("Data set", data.datasets(url), index=None, placeholder="any", key="filter_dataset",
                                on_change=_first_page)
dates = date_col.date_input("Stored between", value=(), key="filter_dates", on_change=_first_page)
since = until = None
if isinstance(dates, tuple) and len(dates) == 2:
    since = datetime.combine(dates[0], time.min, tzinfo=UTC)
    until = datetime.combine(dates[1], time.min, tzinfo=UTC) + timedelta(days=1)

where = db.WorklistFilter(model_version_id=model.id, review=review_state, predicted_label=predicted,
                          min_uncertainty=min_uncertainty, since=since, until=until, dataset=dataset)  # fmt: skip
shown = max(1, int(st.session_state.get("page", 1)))  # the page about to be shown (the pager's value)
start = _page_start(url, where, shown)
if shown > 1 and start is None:  # past the end (rows went away since): back to the first page
    shown = 1
    st.session_state.pop("page", None)
before = (shown - 1) * data.PAGE_SIZE
ahead = data.worklist_count(url, where, after=start, limit=db.COUNT_AHEAD + 1)  # counted from this page on only
counted = before + min(ahead, db.COUNT_AHEAD)
more = ahead > db.COUNT_AHEAD  # more rows than counted: the pager reaches COUNT_AHEAD rows past the page shown
total = before + ahead
if total == 0:
    st.info("No case matches these filters.")
    st.stop()

n_pages = math.ceil(counted / data.PAGE_SIZE)
page = st.pagination(n_pages, key="page") if n_pages > 1 else 1
if page != shown:  # the pager moved it (fewer pages than before)
    start = _page_start(url, where, page)
rows = data.worklist_page(url, where, after=start, limit=data.PAGE_SIZE) if page == 1 or start is not None else []
_remember_next(where, page, rows)
first = (page - 1) * data.PAGE_SIZE + 1
matching = f"more than {counted:,}" if more else f"{total:,}"
st.caption(f"{matching} cases predicted by {md(model.name)} · showing {first}–{first + len(rows) - 1} · "
           "most uncertain first · select a row to open the case")

event = st.dataframe(
    tables.worklist_frame(rows),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="case_table",
    column_config={
        "case": st.column_config.TextColumn("case", pinned=True),
        "probability": st.column_config.ProgressColumn("probability", format="percent", min_value=0, max_value=1),
        "uncertainty": st.column_config.NumberColumn("uncertainty", format="%.3f"),
    },
)
if event.selection.rows:
    _open(rows[event.selection.rows[0]].case_key)

pick, go = st.columns([3, 1], vertical_alignment="bottom")
chosen = pick.selectbox("Open case", [r.case_key for r in rows], index=None, placeholder="choose a case id",
                        key="open_case")
if go.button("Open", key="open_button", disabled=chosen is None) and chosen is not None:
    _open(chosen)
