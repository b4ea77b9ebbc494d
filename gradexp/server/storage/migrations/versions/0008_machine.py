"""What the machine did: system samples, console lines (and their totals), environments.

Tables for the records ``system``, ``console`` and ``environment`` (docs/protocol.md).
Every table carries the writer's ``rank`` (0 for a run with one process).

Revision ID: 0008
Revises: 0007
Create Date: 2025-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")


def upgrade() -> None:
    op.create_table(
        "system_samples",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rank", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("sample_values", JsonText, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "console_lines",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rank", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("line_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("stream", sa.SmallInteger, nullable=False),
        sa.Column("text", JsonText, nullable=False),
        **MYSQL,
    )
    op.create_index("ix_console_lines_seq", "console_lines", ["run_pk", "seq"])
    op.create_table(
        "console_totals",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rank", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("lines", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("dropped_lines", sa.BigInteger, nullable=False),
        sa.Column("dropped_bytes", sa.BigInteger, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "run_environments",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rank", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("environment", JsonText, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("run_environments")
    op.drop_table("console_totals")
    op.drop_index("ix_console_lines_seq", "console_lines")
    op.drop_table("console_lines")
    op.drop_table("system_samples")
