"""Sign-in limits: a table of shared secrets (the key of the "known browser" cookie), and
wrong-password counters keyed afresh (per user and address, per user, per known browser).

The counters of the previous revision were keyed by user name and address; they are
dropped (any lockout in progress is lifted), and nothing else depends on them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        **MYSQL,
    )
    op.execute("DELETE FROM login_failures")


def downgrade() -> None:
    op.execute("DELETE FROM login_failures")
    op.drop_table("server_secrets")
