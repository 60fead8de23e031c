"""The node that holds a segment or a snapshot: ``segments.node``, ``events.node``.

In cluster mode (``server.backend: ray``) recordings stay on the machine that recorded them;
the API finds the file (a segment, an event's snapshot) through that node (``vigil.cluster``).
NULL: recorded by a single-host ``vigil serve``, under the server's own media root.

Revision ID: 0006_segment_node
Revises: 0005_token_scope
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_segment_node"
down_revision: str | None = "0005_token_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("segments", "events"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("node", sa.String(length=128), nullable=True))


def downgrade() -> None:
    for table in ("events", "segments"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("node")
