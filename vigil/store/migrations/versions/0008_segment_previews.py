"""The redacted preview thumbnails of each segment: ``segments.previews``, ``preview_bytes``.

``previews`` lists the offsets (ms from the segment's start, separated by spaces) of the
JPEGs under ``previews/<camera>/<date>/<HH>/<MM.SS>/`` (``vigil.record.previews``), so the
timeline's hover finds the nearest one with the segment range query, on whichever node holds
it; ``preview_bytes`` is their size, which retention's quotas and the storage gauge count.
Older segments have none (NULL, 0).

Revision ID: 0008_segment_previews
Revises: 0007_segment_span
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_segment_previews"
down_revision: str | None = "0007_segment_span"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch (on SQLite a batch copies the table and would lose the
    # expression index ix_segments_span, which it cannot reflect).
    op.add_column("segments", sa.Column("previews", sa.Text(), nullable=True))
    op.add_column("segments", sa.Column("preview_bytes", sa.BigInteger(), nullable=False,
                                        server_default="0"))  # fmt: skip


def downgrade() -> None:
    op.drop_column("segments", "preview_bytes")
    op.drop_column("segments", "previews")
