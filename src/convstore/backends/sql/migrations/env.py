"""Alembic environment: migrations always run on a connection handed in by convstore.

``convstore.backends.sql.migrate`` opens the connection, takes the store's write lock
and passes the connection as ``config.attributes["connection"]``, so every process that
opens a store at the same moment waits its turn and the upgrade runs exactly once.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
