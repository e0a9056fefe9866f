"""Entry point of the diagnosis dashboard: page setup and navigation only.

Run with ``diagnosis dashboard`` or ``streamlit run dashboard/app.py``; the store comes from
``DIAGNOSIS_DATABASE_URL`` / ``DIAGNOSIS_HOME``. Each page lives in ``pages/`` and reads the store through
:mod:`dashboard.data`.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Diagnosis dashboard", page_icon="🩺", layout="wide")

st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/cases.py", title="Cases", icon=":material/list:"),
        st.Page("pages/case.py", title="Case", icon=":material/person_search:"),
    ]
).run()
