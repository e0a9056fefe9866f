"""Prefect flows: one per pipeline stage (ingest, train, diagnose, evaluate) and the demo chaining them.

The ``diagnosis`` command line that runs them lives in :mod:`flows.cli` (one module per command group).

Flows are thin: each task calls one library (``diagnosis``) or store (``db``) function. Call
:func:`flows.environment.configure_prefect` before importing a flow module so Prefect uses an isolated home.
"""
