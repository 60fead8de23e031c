"""An index on each segment's length, ``ix_segments_span`` (``"end" - start``).

Time-range queries of segments (a day's timeline, whether an event has a clip, flagging the
segments of an event that ended) ask for ``end > since AND start < until``; on the index
(camera, start) only ``start < until`` bounds the scan, so each one read the camera's whole
older history (weeks of 10 s segments; measured by ``bench/city.py``). The longest segment's
length bounds it from below too (``start >= since - longest``), and this index gives that
length in one lookup.

Revision ID: 0007_segment_span
Revises: 0006_segment_node
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_segment_span"
down_revision: str | None = "0006_segment_node"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_segments_span", "segments", [sa.text('("end" - start)')])


def downgrade() -> None:
    op.drop_index("ix_segments_span", table_name="segments")
