"""Segment paths unique per node, not across the cluster: ``uq_segments_node_path``.

A segment's path is relative to the data dir of the node that recorded it
(``segments.node``, 0006), so two nodes may hold one path: a camera that fails over within
the second its last segment started names its first segment on the new node as the last
one on the old node was named, and the unique path (``uq_segments_path``) refused that
row. The place of a file is its node and its path: the unique index is on both, with the
single host's rows (node NULL) counted as one node (``coalesce(node, '')``: NULLs are
distinct in a plain unique index, which would let a single host record one path twice).

Downgrading fails while two nodes hold one path (the old constraint cannot hold them).

Revision ID: 0009_segment_node_path
Revises: 0008_segment_previews
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0009_segment_node_path"
down_revision: str | None = "0008_segment_previews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with _table_rebuilt(), op.batch_alter_table("segments") as batch:
        batch.drop_constraint("uq_segments_path", type_="unique")
    op.create_index("uq_segments_node_path", "segments",
                    [sa.text("coalesce(node, '')"), "path"], unique=True)  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_segments_node_path", table_name="segments")
    with _table_rebuilt(), op.batch_alter_table("segments") as batch:
        batch.create_unique_constraint("uq_segments_path", ["path"])


@contextmanager
def _table_rebuilt() -> Iterator[None]:
    """SQLite changes a table's constraints by copying it into a new one, which reflection
    builds without the expression index 0007 made (it cannot reflect one): drop it first,
    make it again after. PostgreSQL alters the table in place."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.drop_index("ix_segments_span", table_name="segments")
    yield
    if sqlite:
        op.create_index("ix_segments_span", "segments", [sa.text('("end" - start)')])
