"""Alembic environment: run the migrations on the connection the caller opened.

``ledger.migrations.alembic_config`` puts an open connection, inside a
transaction, into ``config.attributes["connection"]``. Offline (SQL script)
mode is not supported.
"""

from alembic import context

from ledger.migrations import VERSION_TABLE
from ledger.storage import metadata

connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError(
        "AgentGate migrations run only on an open connection; use "
        "ledger.migrations.upgrade_database or agentgate log migrate"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
