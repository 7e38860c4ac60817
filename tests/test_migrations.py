"""Each service's migrations: they build exactly what its models declare, and they go down and up again."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url

from deploy.database import create_database, drop_database
from deploy.topology import ALL, ServiceSpec
from shared.db import create_engine
from shared.migrations import alembic_config, head_revision


@pytest.fixture(scope="module")
def scratch_url(database_url: str) -> Iterator[str]:
    url = (
        make_url(database_url).set(database=f"fisiq_migr_{uuid.uuid4().hex[:8]}").render_as_string(hide_password=False)
    )
    asyncio.run(create_database(url))
    yield url
    asyncio.run(drop_database(url))


def differences(url: str, spec: ServiceSpec) -> list[Any]:
    metadata = importlib.import_module(f"services.{spec.name}.models").metadata

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _: name == spec.name if type_ == "schema" else True,
                "compare_type": True,
                "version_table_schema": spec.name,
            },
        )
        return list(compare_metadata(context, metadata))

    async def run() -> list[Any]:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        async with engine.connect() as conn:
            found = await conn.run_sync(compare)
        await engine.dispose()
        return found

    return asyncio.run(run())


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_migrations_match_the_models_and_go_down_and_up(scratch_url: str, spec: ServiceSpec) -> None:
    config = alembic_config(spec.migrations_dir, scratch_url)
    command.upgrade(config, "head")
    found = differences(scratch_url, spec)
    assert found == [], f"models and migrations disagree (write a migration): {found}"
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert head_revision(spec.migrations_dir) is not None
