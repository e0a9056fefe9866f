"""The graph classifier's neighbours that mattered for a prediction: ``predictions.neighbours``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 02:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``predictions.neighbours`` (JSON, null for models without a graph classifier)."""
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("neighbours", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop ``predictions.neighbours``."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("neighbours")
