"""A run with several writers: the ranks of a distributed job.

A run's first writer (rank 0) is the run's own row. Every other rank of the job gets a
row of its own in ``runs`` (``parent_pk`` naming the run, ``rank`` its rank), so it has
its own sequence numbers, acknowledgements, history and state exactly as a run does;
lists of runs skip these rows. ``world_size`` on the run says how many writers it waits
for before it is over (NULL: one).

Revision ID: 0009
Revises: 0008
Create Date: 2025-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("parent_pk", sa.BigInteger, nullable=True))
    op.add_column("runs", sa.Column("rank", sa.SmallInteger, nullable=True))
    op.add_column("runs", sa.Column("world_size", sa.Integer, nullable=True))
    op.create_index("uq_runs_parent_rank", "runs", ["parent_pk", "rank"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_runs_parent_rank", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("world_size")
        batch.drop_column("rank")
        batch.drop_column("parent_pk")
