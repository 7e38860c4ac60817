"""The reporting service's connections start with the reports' settings (no JIT, 64 MB for sorts and hashes), set
once at connect rather than by two statements in every report's transaction."""

from __future__ import annotations

from sqlalchemy import text

from services.reporting.reports.common import REPORTS_SESSION
from shared.db import create_engine


async def test_every_connection_of_the_reporting_pool_has_the_reports_settings(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2, max_overflow=0, session_settings=REPORTS_SESSION)
    try:
        for _ in range(2):
            async with engine.connect() as conn:
                assert await conn.scalar(text("SHOW jit")) == "off"
                assert await conn.scalar(text("SHOW work_mem")) == "64MB"
                assert await conn.scalar(text("SHOW application_name")) == "fisiq"
    finally:
        await engine.dispose()
    plain = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with plain.connect() as conn:  # other services keep the server's defaults
            assert await conn.scalar(text("SHOW work_mem")) != "64MB"
    finally:
        await plain.dispose()
