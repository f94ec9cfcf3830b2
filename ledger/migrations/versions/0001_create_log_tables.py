"""Create the log tables: head, leaves, subtree nodes and checkpoints.

This is the schema that AgentGate created before it had migrations.

Revision ID: 0001
Revises: none
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# On SQLite an INTEGER PRIMARY KEY is the rowid itself; elsewhere BIGINT.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "log_head",
        sa.Column("origin", sa.Text(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "leaves",
        sa.Column("leaf_index", _ROW_ID, primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True, unique=True),
    )
    op.create_table(
        "nodes",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column(
            "node_index", sa.BigInteger(), primary_key=True, autoincrement=False
        ),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", _ROW_ID, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for name in ("checkpoints", "nodes", "leaves", "log_head"):
        op.drop_table(name)
