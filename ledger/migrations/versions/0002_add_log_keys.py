"""Add the log_keys table, which tracks key rotation.

Each row is a key that signs the log's checkpoints, with the leaf indexes
of the key records that introduced and retired it. Before this revision a
log's keys were only the key records at its start, so the upgrade fills the
table from those.

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Code before this revision read at most this many leading key records.
_MAX_LEADING_KEY_RECORDS = 16


def upgrade() -> None:
    log_keys = op.create_table(
        "log_keys",
        sa.Column("verifier_key", sa.Text(), primary_key=True),
        sa.Column("added_index", sa.BigInteger(), nullable=False),
        sa.Column("retired_index", sa.BigInteger(), nullable=True),
    )
    leaves = sa.table(
        "leaves",
        sa.column("leaf_index", sa.BigInteger()),
        sa.column("entry", sa.LargeBinary()),
    )
    rows = op.get_bind().execute(
        sa.select(leaves.c.leaf_index, leaves.c.entry)
        .where(leaves.c.leaf_index < _MAX_LEADING_KEY_RECORDS)
        .order_by(leaves.c.leaf_index)
    )
    found = {}
    for index, entry in rows:
        try:
            record = json.loads(bytes(entry))
        except ValueError:
            break
        if not isinstance(record, dict) or record.get("type") != "key":
            break
        key = record.get("key")
        if record.get("role") == "log" and isinstance(key, str):
            found.setdefault(key, index)
    if found:
        rows = [
            {"verifier_key": key, "added_index": index} for key, index in found.items()
        ]
        op.bulk_insert(log_keys, rows)


def downgrade() -> None:
    op.drop_table("log_keys")
