"""Which runs live streams follow right now, shared by every server process.

Each process with open live streams renews a row per followed run every few seconds
(``watched_until``); ingest can ask whether anyone watches a run without knowing which
process holds the stream.

Revision ID: 0005
Revises: 0004
Create Date: 2026-05-10
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "live_watches",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("watched_until", sa.Double, nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("live_watches")
