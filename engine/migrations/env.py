"""Alembic environment: runs on the connection the engine hands over (see engine.db.upgrade)."""

from alembic import context

from engine.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
