"""Sign-in throttling: the ``sign_in_throttle`` table, and sign-in outcomes allowed in the audit log.

``audit_log.action`` gains ``sign_in``, ``sign_in_failed``, ``sign_in_refused`` and ``sign_in_lockout``. On
SQLite the check constraint can only change by rebuilding the table, which drops its append-only triggers, so
they are dropped first and created again afterwards. A downgrade removes the sign-in audit rows (the older
constraint refuses them), with the append-only guard lifted for that one statement.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ACTIONS = ("confirm", "override", "augment")
_SIGN_IN_ACTIONS = ("sign_in", "sign_in_failed", "sign_in_refused", "sign_in_lockout")
_APPEND_ONLY = "audit_log is append-only"
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER trg_audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]  # the same triggers as revision 0003


def _in_list(column: str, values: Sequence[str]) -> str:
    """Render ``column IN ('a', 'b')`` for a check constraint."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _set_actions(actions: Sequence[str]) -> None:
    """Replace the check constraint of ``audit_log.action`` (rebuilding the table on SQLite, triggers kept)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_no_delete")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("ck_audit_log_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_log_action"), _in_list("action", actions))
    if sqlite:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    """Create ``sign_in_throttle`` and allow the sign-in actions in ``audit_log``."""
    op.create_table(
        "sign_in_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('user', 'client')", name=op.f("ck_sign_in_throttle_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_throttle")),
        sa.UniqueConstraint("scope", "subject", name=op.f("uq_sign_in_throttle_scope_subject")),
    )
    _set_actions(_OLD_ACTIONS + _SIGN_IN_ACTIONS)


def downgrade() -> None:
    """Delete the sign-in audit rows, restore the older action list and drop ``sign_in_throttle``."""
    dialect = op.get_bind().dialect.name
    delete = f"DELETE FROM audit_log WHERE {_in_list('action', _SIGN_IN_ACTIONS)}"
    if dialect == "postgresql":
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER trg_audit_log_append_only")
        op.execute(delete)
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER trg_audit_log_append_only")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_no_delete")
        op.execute(delete)  # _set_actions creates the trigger again
    else:
        op.execute(delete)
    _set_actions(_OLD_ACTIONS)
    op.drop_table("sign_in_throttle")
