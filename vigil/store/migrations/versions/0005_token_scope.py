"""Scoped API tokens: ``tokens.scope``.

A token with a scope (``live:<camera>``) opens nothing but that camera's redacted stream URL
(``vigil.api.routes.stream``); every other route refuses it. Existing tokens get NULL: full
tokens, as before.

Revision ID: 0005_token_scope
Revises: 0004_jobs
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_token_scope"
down_revision: str | None = "0004_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("scope")
