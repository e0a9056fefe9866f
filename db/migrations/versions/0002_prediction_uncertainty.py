"""Predictions carry their uncertainty (predictive entropy) and split-conformal prediction set.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``uncertainty`` and ``prediction_set`` columns (older predictions keep NULL)."""
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("uncertainty", sa.Float(), nullable=True))
        batch.add_column(sa.Column("prediction_set", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("prediction_set")
        batch.drop_column("uncertainty")
