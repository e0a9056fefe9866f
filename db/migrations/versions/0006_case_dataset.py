"""Cases belong to a data set (``cases.dataset``), so that training never mixes data sets silently.

Cases stored before keep NULL: they belong to no named data set, and ``diagnosis train`` lists them as such.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable, indexed ``dataset`` column."""
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("dataset", sa.String(length=255), nullable=True))
        batch.create_index("ix_cases_dataset", ["dataset"])


def downgrade() -> None:
    """Drop the column and its index."""
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_dataset")
        batch.drop_column("dataset")
