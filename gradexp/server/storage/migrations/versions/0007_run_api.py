"""Job types, metric definitions, per-key summaries and alerts.

- ``runs.job_type`` (``init(job_type=...)``) and ``runs.metrics`` (the run's
  ``define_metric`` definitions, a JSON object by name);
- ``run_keys`` keeps, per key, what its summary may need besides the last value: the
  finite values' min, max, sum and count, the first value (and its sequence), and
  ``summary_value``, the summary a definition chose (the runs table sorts by it);
- ``alerts``: the run's alerts.

The min, max, sum and count of keys stored before this revision are backfilled from the
coarsest rollups (every point is in them); their first values stay unknown.

Revision ID: 0007
Revises: 0005
Create Date: 2026-01-15
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")
MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
COARSEST_LEVEL = 7  # gradexp.server.domain.rollup.LEVELS[-1] when this revision was written


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("job_type", sa.String(64), nullable=True))
        batch.add_column(sa.Column("metrics", JsonText, nullable=True))
    with op.batch_alter_table("run_keys") as batch:
        batch.add_column(sa.Column("vmin", sa.Double, nullable=True))
        batch.add_column(sa.Column("vmax", sa.Double, nullable=True))
        batch.add_column(sa.Column("vsum", sa.Double, nullable=True))
        batch.add_column(sa.Column("vcount", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("first_value", JsonText, nullable=True))
        batch.add_column(sa.Column("first_seq", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("summary_value", JsonText, nullable=True))
    op.create_table(
        "alerts",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        **MYSQL,
    )
    _backfill_aggregates()


def _backfill_aggregates() -> None:
    run_keys = sa.table(
        "run_keys",
        sa.column("run_pk"),
        sa.column("key_id"),
        sa.column("vmin"),
        sa.column("vmax"),
        sa.column("vsum"),
        sa.column("vcount"),
    )
    rollups = sa.table(
        "rollups",
        sa.column("run_pk"),
        sa.column("key_id"),
        sa.column("level"),
        sa.column("vmin"),
        sa.column("vmax"),
        sa.column("vsum"),
        sa.column("vcount"),
    )

    def agg(fn: Any) -> Any:
        return (
            sa.select(fn)
            .where(
                rollups.c.run_pk == run_keys.c.run_pk,
                rollups.c.key_id == run_keys.c.key_id,
                rollups.c.level == COARSEST_LEVEL,
            )
            .scalar_subquery()
        )

    op.execute(
        run_keys.update().values(
            vmin=agg(sa.func.min(rollups.c.vmin)),
            vmax=agg(sa.func.max(rollups.c.vmax)),
            vsum=agg(sa.func.sum(rollups.c.vsum)),
            vcount=agg(sa.func.sum(rollups.c.vcount)),
        )
    )


def downgrade() -> None:
    op.drop_table("alerts")
    with op.batch_alter_table("run_keys") as batch:
        for name in ("summary_value", "first_seq", "first_value", "vcount", "vsum", "vmax", "vmin"):
            batch.drop_column(name)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("metrics")
        batch.drop_column("job_type")
