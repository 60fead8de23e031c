"""Events: the zones an object is in now, the normalised snapshot box, traffic measures, the
review flag.

Revision ID: 0002_event_shape
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_event_shape"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("zones_now", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))  # fmt: skip
        batch.add_column(sa.Column("box", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("measures", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))  # fmt: skip
        batch.add_column(sa.Column("reviewed", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("reviewed")
        batch.drop_column("measures")
        batch.drop_column("box")
        batch.drop_column("zones_now")
