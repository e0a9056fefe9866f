"""Decoded views of a case in the store: the ``reconstructions`` table (they were JSON files beside the store).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``reconstructions``."""
    op.create_table(
        "reconstructions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("reconstruction_path", sa.Text(), nullable=True),
        sa.Column("image_from_text_path", sa.Text(), nullable=True),
        sa.Column("nearest_texts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_reconstructions_case_id_cases"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_reconstructions_model_version_id_model_versions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconstructions")),
        sa.UniqueConstraint("case_id", "model_version_id", name=op.f("uq_reconstructions_case_id_model_version_id")),
    )
    op.create_index(op.f("ix_reconstructions_model_version_id"), "reconstructions", ["model_version_id"])


def downgrade() -> None:
    """Drop ``reconstructions``."""
    op.drop_index(op.f("ix_reconstructions_model_version_id"), table_name="reconstructions")
    op.drop_table("reconstructions")
