"""Login throttle in the database; API tokens without an expiry get one.

The ``login_attempts`` table lets every process and replica on one database share the login
limits. API tokens minted before tokens expired by default (``expires`` NULL) get the default
lifetime from their creation, 90 days, so no token lives for ever after the upgrade.

Revision ID: 0003_auth_hardening
Revises: 0002_event_shape
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_auth_hardening"
down_revision: str | None = "0002_event_shape"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The default API token lifetime when this migration was written (``ApiSettings``).
_TOKEN_TTL_S = 90 * 86400.0


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index("ix_login_attempts_scope_key_time", "login_attempts",
                    ["scope", "key", "time"])  # fmt: skip
    op.create_index(op.f("ix_login_attempts_time"), "login_attempts", ["time"])
    op.execute(
        sa.text(
            "UPDATE tokens SET expires = created + :ttl WHERE expires IS NULL AND kind = 'api'"
        ).bindparams(ttl=_TOKEN_TTL_S)
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
