"""Room in the pages of the written tables, so that updating a row stays in its page.

An event's row is inserted at START and updated by its UPDATEs and END; a count's minute
row is updated by every tick that counts in that minute; a segment's row is updated when
an event that it recorded ends (``has_events``). None of those updates changes an indexed
column, so PostgreSQL can write the new version in the same page without touching any
index (a HOT update), but only where the page has room: the default fill factor (100)
leaves none, and each update then inserts into every index of the table (four for events,
five for segments). ``fillfactor`` keeps that room in the pages written from now on (the
existing ones are not rewritten: the migration is instant on a large table).

Measured with ``bench/city.py`` on 10^7 stored events (docs/cluster.md, City-scale event
path): with 70 for events, 90 for segments and counts, most updates are HOT.

PostgreSQL only: SQLite has no such setting (nothing to do there).

Revision ID: 0012_write_fillfactor
Revises: 0010_switches_event_ids
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012_write_fillfactor"
down_revision: str | None = "0010_switches_event_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables' fill factors (the models say the same: ``postgresql_with``).
FILLFACTORS = {"events": 70, "segments": 90, "counts": 90}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, percent in FILLFACTORS.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in FILLFACTORS:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
