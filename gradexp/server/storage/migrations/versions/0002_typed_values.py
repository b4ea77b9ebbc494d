"""Index typed values (histograms, tensors, images) by key, and backfill it.

Before this revision the histogram heatmap had to scan every history row of a run; now
each typed value is also stored under its key. Existing history is backfilled here, so an
upgraded database serves its old histograms like new ones.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")
MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
TYPED = ("histogram", "tensor", "image")
CHUNK = 5000


def upgrade() -> None:
    typed_values = op.create_table(
        "typed_values",
        sa.Column("run_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("value", JsonText, nullable=False),
        **MYSQL,
    )
    op.create_index("ix_typed_values_step", "typed_values", ["run_pk", "key_id", "step"])
    _backfill(typed_values)


def _backfill(typed_values: sa.Table) -> None:
    bind = op.get_bind()
    run_keys = sa.table(
        "run_keys",
        sa.column("run_pk"),
        sa.column("key_id"),
        sa.column("key_name"),
        sa.column("kind"),
    )
    history = sa.table(
        "history",
        sa.column("run_pk"),
        sa.column("seq"),
        sa.column("step"),
        sa.column("time"),
        sa.column("row_values"),
    )
    key_ids: dict[int, dict[str, int]] = {}
    for run_pk, key_id, key_name in bind.execute(
        sa.select(run_keys.c.run_pk, run_keys.c.key_id, run_keys.c.key_name).where(
            run_keys.c.kind.in_(TYPED)
        )
    ):
        key_ids.setdefault(run_pk, {})[key_name] = key_id
    for run_pk, keys in key_ids.items():
        after = 0
        while True:
            rows = bind.execute(
                sa.select(history.c.seq, history.c.step, history.c.time, history.c.row_values)
                .where(history.c.run_pk == run_pk, history.c.seq > after)
                .order_by(history.c.seq)
                .limit(CHUNK)
            ).all()
            if not rows:
                break
            batch = []
            for seq, step, time, text in rows:
                for key, value in orjson.loads(text).items():
                    if key in keys and isinstance(value, dict) and value.get("_type") in TYPED:
                        batch.append(
                            {
                                "run_pk": run_pk,
                                "key_id": keys[key],
                                "seq": seq,
                                "step": step,
                                "time": time,
                                "value": orjson.dumps(value).decode(),
                            }
                        )
            if batch:
                bind.execute(typed_values.insert(), batch)
            after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_typed_values_step", "typed_values")
    op.drop_table("typed_values")
