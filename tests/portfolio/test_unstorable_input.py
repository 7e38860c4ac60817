"""Values the database cannot store — a NUL in a text, a number beyond any column — are the client's mistake: a
422 problem, nothing written, never a 500 (found by `make fuzz`)."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from shared.db import create_engine
from tests.portfolio.conftest import ADMIN
from tests.support import assert_problem, service_app


async def test_a_nul_in_a_text_is_a_422_and_changes_nothing(api: httpx.AsyncClient) -> None:
    before = (await api.get("/api/v1/portfolio/policy", headers=ADMIN)).json()
    body = {"arrears_dpd": 1, "default_dpd": 120, "comment": "nul \u0000 inside"}
    problem = assert_problem(await api.put("/api/v1/portfolio/policy", json=body, headers=ADMIN), 422)
    assert problem["type"] == "/problems/validation-error" and "cannot be stored" in problem["detail"]
    assert (await api.get("/api/v1/portfolio/policy", headers=ADMIN)).json() == before


async def test_too_many_decimals_for_the_currency_is_a_422(api: httpx.AsyncClient) -> None:
    converted = await api.get(
        "/api/v1/portfolio/fx-rates/convert",
        params={"amount": "1250.50", "currency": "XOF", "on": "2000-01-01"},
        headers=ADMIN,
    )
    assert assert_problem(converted, 422)["errors"][0]["parameter"] == "amount"


async def test_a_busy_database_pool_is_a_503_with_retry_after(database_url: str) -> None:
    """Every connection busy past the pool's wait: 503 with Retry-After, never a 500 or a hang."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    app = service_app("portfolio", engine)
    try:
        async with (
            engine.connect() as held,  # the pool's only connection, held
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portfolio") as api,
        ):
            await held.execute(text("SELECT 1"))
            busy = await api.get("/api/v1/portfolio/policy", headers=ADMIN)
            problem = assert_problem(busy, 503)
            assert problem["type"] == "/problems/busy" and busy.headers["retry-after"] == "5"
    finally:
        await engine.dispose()
