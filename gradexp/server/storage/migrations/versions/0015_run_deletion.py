"""Deleting runs and projects: tombstones, and the lease of the background reclaimer.

- ``deleted_runs``: one row per deleted run, written in the transaction that deletes the
  run's row (so the run disappears from every read at once). It keeps the run's id
  reserved (a late batch is told the run was deleted, and the id never comes back) and is
  the reclaimer's work list until ``reclaimed_at`` is set.
- ``server_leases``: named leases that server processes take in turns (the reclaimer's:
  one process at a time reclaims storage).
- ``projects.deleted_at``: a deleted project keeps its row (its id is never reused), under a
  name no request can address, so its name is free again at once.

Revision ID: 0015
Revises: 0008
Create Date: 2026-02-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "deleted_runs",
        sa.Column("pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("deleted_at", sa.Double, nullable=False),
        sa.Column("deleted_by", sa.Integer, nullable=True),
        sa.Column("reclaimed_at", sa.Double, nullable=True),
        **MYSQL,
    )
    op.create_table(
        "server_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        **MYSQL,
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Double, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("deleted_at")
    op.drop_table("server_leases")
    op.drop_table("deleted_runs")
