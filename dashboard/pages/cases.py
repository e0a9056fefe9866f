"""Cases page: the filtered, paginated case list; select a row (or pick an id) to open the case."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import data, tables

CASE_PAGE = "pages/case.py"
FILTERS = {"status": "Status", "split": "Split", "label": "True diagnosis", "predicted_label": "Prediction"}


def _first_page() -> None:
    """Go back to page 1 when a filter changes."""
    st.session_state.pop("page", None)


def _open(case_key: str) -> None:
    """Switch to the case page showing ``case_key``."""
    st.switch_page(CASE_PAGE, query_params={"case": case_key})


st.title("Cases")
url = data.store_url()
options = data.filter_options(url)

*columns, search_column = st.columns([1, 1, 1, 1, 2])
filters: dict[str, str | None] = {
    name: column.selectbox(label, options[name], index=None, placeholder="any", key=f"filter_{name}",
                          on_change=_first_page)
    for column, (name, label) in zip(columns, FILTERS.items(), strict=True)
}
search = search_column.text_input("Case id contains", key="filter_search", on_change=_first_page)
filters["search"] = search.strip() or None

total = data.count_cases(url, **filters)
if total == 0:
    empty = sum(data.status_counts(url).values()) == 0
    st.info("No cases yet — run `diagnosis demo`." if empty else "No case matches these filters.")
    st.stop()

n_pages = math.ceil(total / data.PAGE_SIZE)
page = st.pagination(n_pages, key="page") if n_pages > 1 else 1
rows = data.case_page(url, **filters, page=page)
first = (page - 1) * data.PAGE_SIZE + 1
st.caption(f"{total} cases · showing {first}–{first + len(rows) - 1} · select a row to open the case")

event = st.dataframe(
    tables.cases_frame(rows),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="case_table",
    column_config={
        "case": st.column_config.TextColumn("case", pinned=True),
        "probability": st.column_config.ProgressColumn("probability", format="percent", min_value=0, max_value=1),
    },
)
if event.selection.rows:
    _open(rows[event.selection.rows[0]].case_key)

pick, go = st.columns([3, 1], vertical_alignment="bottom")
chosen = pick.selectbox("Open case", [r.case_key for r in rows], index=None, placeholder="choose a case id",
                        key="open_case")
if go.button("Open", key="open_button", disabled=chosen is None) and chosen is not None:
    _open(chosen)
