"""Artifacts: versions per project and name, aliases, lineage, and the bytes held.

- ``artifact_versions``: one row per version (v0, v1, ...) with its manifest;
- ``artifact_aliases``: where each alias (``latest`` included) points;
- ``artifact_usage``: the runs that logged ("output") and used ("input") each version;
- ``artifact_blobs``: the files' bytes a project holds, by sha256.

Revision ID: 0014
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "artifact_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("metadata", JsonText, nullable=False),
        sa.Column("files", JsonText, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("run_pk", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_artifact_versions_version"),
        **MYSQL,
    )
    op.create_index(
        "ix_artifact_versions_digest", "artifact_versions", ["project_id", "name", "digest"]
    )
    op.create_table(
        "artifact_aliases",
        sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version_id", sa.BigInteger, nullable=False),
        **MYSQL,
    )
    op.create_index("ix_artifact_aliases_version_id", "artifact_aliases", ["version_id"])
    op.create_table(
        "artifact_usage",
        sa.Column("version_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("role", sa.String(8), primary_key=True),
        sa.Column("time", sa.Double, nullable=False),
        **MYSQL,
    )
    op.create_index("ix_artifact_usage_run", "artifact_usage", ["run_pk"])
    op.create_table(
        "artifact_blobs",
        sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("artifact_blobs")
    op.drop_index("ix_artifact_usage_run", "artifact_usage")
    op.drop_table("artifact_usage")
    op.drop_index("ix_artifact_aliases_version_id", "artifact_aliases")
    op.drop_table("artifact_aliases")
    op.drop_index("ix_artifact_versions_digest", "artifact_versions")
    op.drop_table("artifact_versions")
