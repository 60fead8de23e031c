"""The cameras' switches kept across restarts, and event ids wide enough for any camera name.

``cameras.detection`` and ``cameras.recording``: the state of each camera's ``detection``
and ``recording`` switches (Home Assistant's, over MQTT) as last set; NULL: never switched
(on). ``vigil serve`` restores them at start, so a camera switched off stays off.

``events.id`` is ``<camera>-<start>-<track>``: with a camera name of up to 64 characters
(the width of every ``camera`` column, checked at load), a start of 14 (UNIX seconds with
milliseconds) and a track id of up to 10 digits (``events.track_id`` is a 32-bit integer) it
takes 90 characters, past the 64 it had: PostgreSQL refused the longer ones. 128 leaves room.

Revision ID: 0010_switches_event_ids
Revises: 0009_segment_node_path
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_switches_event_ids"
down_revision: str | None = "0009_segment_node_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.add_column(sa.Column("detection", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("recording", sa.Boolean(), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.alter_column("id", existing_type=sa.String(length=64),
                           type_=sa.String(length=128), existing_nullable=False)  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.alter_column("id", existing_type=sa.String(length=128),
                           type_=sa.String(length=64), existing_nullable=False)  # fmt: skip
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("recording")
        batch.drop_column("detection")
