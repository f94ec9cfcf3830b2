"""Index leaves by leaf hash, so an inclusion proof can be asked for by hash.

Without it, finding the leaf of a hash scans every leaf hash in order.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("leaves_leaf_hash", "leaves", ["leaf_hash"])


def downgrade() -> None:
    op.drop_index("leaves_leaf_hash", table_name="leaves")
