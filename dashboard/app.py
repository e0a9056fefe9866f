"""Entry point of the diagnosis dashboard: page setup and navigation only.

Run with ``diagnosis dashboard`` or ``streamlit run dashboard/app.py``; the store comes from
``DIAGNOSIS_DATABASE_URL`` / ``DIAGNOSIS_HOME``. Every page starts with
:func:`dashboard.auth.require_user`, so a signed-out visitor sees the sign-in form on whichever page they
open (and lands on that page after signing in); the menu is hidden until then.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth

st.set_page_config(page_title="Diagnosis dashboard", page_icon="🩺", layout="wide")

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/worklist.py", title="Worklist", icon=":material/list:"),
    st.Page("pages/case.py", title="Case", icon=":material/person_search:"),
    st.Page("pages/model.py", title="Model", icon=":material/model_training:"),
    st.Page("pages/augmentation.py", title="Augmentation", icon=":material/auto_awesome:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
]
st.navigation(pages, position="sidebar" if auth.current_user() is not None else "hidden").run()
