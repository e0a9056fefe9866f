"""An index for the worklist filtered by predicted diagnosis: ``(model_version_id, label, uncertainty)``.

With it, a worklist of one diagnosis walks that diagnosis's rows most uncertain first and stops after a page, and
a count of them reads only their index entries, not every prediction of the model version.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_predictions_model_version_id_label_uncertainty"


def upgrade() -> None:
    """Create the index."""
    op.create_index(INDEX, "predictions", ["model_version_id", "label", "uncertainty"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index(INDEX, table_name="predictions")
