"""Teams, roles and sharing.

- ``users.kind``: ``user`` or ``team``. A team is a row of ``users`` (names share one
  namespace, and projects keep their one ``owner_id``) that nobody signs in as.
- ``team_members``: who belongs to a team, as ``viewer``, ``member`` or ``admin``.
- ``projects.visibility``: ``private`` (owner or team) or ``signed_in`` (every signed-in
  user of the server may read it).
- ``runs.created_by``: the user whose key created the run (a member edits their own runs).
- ``share_links``: read-only links to runs, stored as the SHA-256 of their token.

Revision ID: 0012
Revises: 0008
Create Date: 2026-06-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="user"))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("visibility", sa.String(16), nullable=False, server_default="private")
        )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("created_by", sa.Integer, nullable=True))
    # Runs made before teams were made by their project's owner.
    op.execute(
        "UPDATE runs SET created_by = "
        "(SELECT projects.owner_id FROM projects WHERE projects.id = runs.project_id)"
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        **MYSQL,
    )
    op.create_index("ix_team_members_user", "team_members", ["user_id"])
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("run_ids", JsonText, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
        **MYSQL,
    )
    op.create_index("ix_share_links_project", "share_links", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_share_links_project", "share_links")
    op.drop_table("share_links")
    op.drop_index("ix_team_members_user", "team_members")
    op.drop_table("team_members")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("created_by")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("visibility")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("kind")
