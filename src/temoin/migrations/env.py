"""Alembic environment: the URL and metadata come from Témoin itself, not from an ini file."""

from alembic import context

from temoin.jobs.models import not_the_queues
from temoin.models import metadata

config = context.config
connection = config.attributes.get("connection")


def run() -> None:
    if connection is None:
        from temoin.db import make_engine

        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError(
                "no database URL for the migrations: run them through temoin (temoin.migrate), "
                "which sets sqlalchemy.url or passes a connection"
            )
        engine = make_engine(url)
        with engine.begin() as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=not_the_queues,  # procrastinate's tables are its own (migration 0022)
        # temoin.migrate.upgrade: each revision commits alone, so that its locks are held briefly on a running
        # cluster and it may leave its transaction to build an index CONCURRENTLY (autocommit_block).
        transaction_per_migration=bool(config.attributes.get("transaction_per_migration")),
    )
    with context.begin_transaction():
        context.run_migrations()


run()
