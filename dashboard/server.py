"""ASGI entry point of the dashboard: the Streamlit app (``dashboard/app.py``) plus the session-cookie routes.

``diagnosis dashboard`` runs ``streamlit run dashboard/server.py``; Streamlit finds :data:`app` and serves it with
uvicorn. The extra routes (:func:`dashboard.session_cookie.routes`) set and delete the signed ``HttpOnly`` session
cookie, so a signed-in clinician stays signed in across page reloads.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from dashboard import session_cookie

__all__ = ["app"]

os.environ[session_cookie.ENABLED_ENV] = "1"  # the script runs in this process: it may hand out tickets
app = st.App(Path(__file__).with_name("app.py"), routes=session_cookie.routes())
