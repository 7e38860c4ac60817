"""Alembic plumbing shared by every service's own migration environment.

Each service keeps its own Alembic environment (`services/<svc>/migrations`), its version table inside its own
schema, and autogenerate limited to that schema, so services can be migrated, and later split, independently.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db import async_url


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["database_url"] = url
    return cfg


def head_revision(migrations_dir: Path) -> str | None:
    return ScriptDirectory.from_config(alembic_config(migrations_dir, "")).get_current_head()


def upgrade(migrations_dir: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, url), revision)


def run_env(metadata: MetaData, schema: str, default_url: str | None) -> None:
    """Body of a service's `env.py`: online, async, in the service's schema only."""
    url = context.config.attributes.get("database_url") or default_url
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or the service's *_DATABASE_URL")

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return name == schema if type_ == "schema" else True

    def do_run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(async_url(url), poolclass=NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported; run against a database")
    asyncio.run(run())
