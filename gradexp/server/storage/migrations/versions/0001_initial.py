"""Initial schema: users, keys, projects, runs, history, key index, rollups, blobs, files.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Spelled out here, not imported from schema.py: a migration is a fixed point in history.
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
        **MYSQL,
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("owner_id", "name", name="uq_projects_owner_name"),
        **MYSQL,
    )
    op.create_table(
        "runs",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("config", JsonText, nullable=False),
        sa.Column("summary", JsonText, nullable=False),
        sa.Column("telemetry", JsonText, nullable=False),
        sa.Column("tags", JsonText, nullable=False),
        sa.Column("notes", JsonText, nullable=True),
        sa.Column("group_name", sa.String(256), nullable=True),
        sa.Column("host", JsonText, nullable=False),
        sa.Column("attempt", sa.String(64), nullable=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("attempt_started_at", sa.Double, nullable=False),
        sa.Column("attempt_seq", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("heartbeat_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("acked_seq", sa.BigInteger, nullable=False),
        sa.Column("pending_ranges", JsonText, nullable=False),
        sa.Column("finish_seq", sa.BigInteger, nullable=True),
        sa.Column("finish_exit_code", sa.Integer, nullable=True),
        sa.Column("finish_time", sa.Double, nullable=True),
        sa.Column("exported_seq", sa.BigInteger, nullable=True),
        sa.Column("export_claimed_at", sa.Double, nullable=True),
        sa.Column("export_error", sa.Text, nullable=True),
        **MYSQL,
    )
    op.create_index("ix_runs_project_started", "runs", ["project_id", "started_at"])
    op.create_table(
        "history",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("row_values", JsonText, nullable=False),
        sqlite_with_rowid=False,
        **MYSQL,
    )
    op.create_index("ix_history_run_step", "history", ["run_pk", "step"])
    op.create_table(
        "run_keys",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_value", JsonText, nullable=True),
        sa.UniqueConstraint("run_pk", "key_name", name="uq_run_keys_key"),
        **MYSQL,
    )
    op.create_table(
        "rollups",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("vmin", sa.Double, nullable=True),
        sa.Column("vmax", sa.Double, nullable=True),
        sa.Column("vsum", sa.Double, nullable=False),
        sa.Column("vcount", sa.BigInteger, nullable=False),
        sa.Column("flags", sa.SmallInteger, nullable=False),
        sa.Column("last", sa.Double, nullable=True),
        sa.Column("last_code", sa.SmallInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("last_time", sa.Double, nullable=False),
        sqlite_with_rowid=False,
        **MYSQL,
    )
    op.create_table(
        "blobs",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "files",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    for table in (
        "files",
        "blobs",
        "rollups",
        "run_keys",
        "history",
        "runs",
        "projects",
        "api_keys",
        "users",
    ):
        op.drop_table(table)
