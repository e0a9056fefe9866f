"""Model promotions (which version is current, and the comparison behind it), inbox manifests, run host and pid.

Every model version that exists before this revision gets one promoted row, so ``latest`` resolves as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 05:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_REASON = "promoted before promotion tracking"


def _timestamp(name: str) -> sa.Column[object]:
    """A non-null timezone-aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    """Create ``model_promotions`` (backfilled) and ``inbox_manifests``; add ``hostname`` and ``pid`` to runs."""
    promotions = op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("incumbent_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=64), nullable=True),
        sa.Column("candidate_score", sa.Float(), nullable=True),
        sa.Column("incumbent_score", sa.Float(), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["model_versions.id"], name=op.f("fk_model_promotions_candidate_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incumbent_id"], ["model_versions.id"], name=op.f("fk_model_promotions_incumbent_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_promotions")),
    )
    op.create_index(op.f("ix_model_promotions_candidate_id"), "model_promotions", ["candidate_id"])
    op.create_table(
        "inbox_manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        _timestamp("ingested_at"),
        sa.Column("flow_run_id", sa.Integer(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_runs.id"], name=op.f("fk_inbox_manifests_flow_run_id_flow_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_manifests")),
        sa.UniqueConstraint("sha256", name=op.f("uq_inbox_manifests_sha256")),
    )
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("hostname", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
    versions = sa.table("model_versions", sa.column("id", sa.Integer()), sa.column("created_at", sa.DateTime()))
    op.execute(
        promotions.insert().from_select(
            ["created_at", "candidate_id", "promoted", "reason"],
            sa.select(versions.c.created_at, versions.c.id, sa.true(), sa.literal(BACKFILL_REASON, sa.Text())),
        )
    )


def downgrade() -> None:
    """Drop the two tables and the two run columns."""
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("pid")
        batch.drop_column("hostname")
    op.drop_table("inbox_manifests")
    op.drop_index(op.f("ix_model_promotions_candidate_id"), table_name="model_promotions")
    op.drop_table("model_promotions")
