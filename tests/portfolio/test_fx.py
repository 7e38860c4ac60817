"""FX rates: dated closing rates, the XOF/XAF peg, stale fallback, CSV import, and the screening contract."""

from __future__ import annotations

import os
import uuid
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.applications.pipeline.peers import HttpPeers
from shared.auth import SERVICE_HEADER, Role, mint_service_token
from tests.conftest import INTERNAL_SECRET
from tests.portfolio.conftest import ADMIN, as_role
from tests.support import assert_problem, service_app, serving

RATES = "/api/v1/portfolio/fx-rates"


async def post_rate(
    api: httpx.AsyncClient, currency: str, day: str, value: str, headers: dict[str, str] = ADMIN
) -> httpx.Response:
    return await api.post(
        RATES,
        json={"currency": currency, "rate_date": day, "cad_per_unit": value, "source": "Bank of Canada"},
        headers=headers,
    )


async def test_xof_and_xaf_derive_exactly_from_the_eur_rate_at_the_peg(api: httpx.AsyncClient) -> None:
    assert (await post_rate(api, "EUR", "2026-10-30", "1.4712")).status_code == 201
    converted = (
        await api.get(
            f"{RATES}/convert", params={"amount": "15000000", "currency": "XOF", "on": "2026-10-30"}, headers=ADMIN
        )
    ).json()
    expected = (Decimal("15000000") * Decimal("1.4712") / Decimal("655.957")).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_EVEN
    )
    assert converted["cad"] == {"amount": format(expected, "f"), "currency": "CAD"}
    assert converted["stale"] is False and "peg" in converted["source"]
    xaf = (
        await api.get(
            f"{RATES}/convert", params={"amount": "1000", "currency": "XAF", "on": "2026-10-30"}, headers=ADMIN
        )
    ).json()
    assert Decimal(xaf["rate"]) == Decimal("1.4712") / Decimal("655.957")
    refused = await post_rate(api, "XOF", "2026-10-30", "0.0022")
    assert "peg" in assert_problem(refused, 422)["detail"]


async def test_a_missing_days_rate_falls_back_and_says_so_and_no_rate_is_not_zero(api: httpx.AsyncClient) -> None:
    await post_rate(api, "HTG", "2026-10-30", "0.0106")
    later = (
        await api.get(
            f"{RATES}/convert", params={"amount": "1000.00", "currency": "HTG", "on": "2026-11-02"}, headers=ADMIN
        )
    ).json()
    assert later["stale"] is True and later["rate_date"] == "2026-10-30" and later["cad"]["amount"] == "10.60"
    before = await api.get(
        f"{RATES}/convert", params={"amount": "1000.00", "currency": "HTG", "on": "2026-10-01"}, headers=ADMIN
    )
    assert assert_problem(before, 404)["type"] == "/problems/fx-rate-missing"
    never = await api.get(
        f"{RATES}/convert", params={"amount": "10.00", "currency": "BOB", "on": "2026-10-30"}, headers=ADMIN
    )
    assert_problem(never, 404)
    cad = (
        await api.get(
            f"{RATES}/convert", params={"amount": "12.34", "currency": "CAD", "on": "2026-10-30"}, headers=ADMIN
        )
    ).json()
    assert cad["cad"]["amount"] == "12.34"


async def test_history_is_not_overwritten(api: httpx.AsyncClient) -> None:
    recorded = await post_rate(api, "USD", "2026-10-30", "1.39")
    assert recorded.status_code == 201 and recorded.json()["cad_per_unit"] == "1.39"
    assert (await post_rate(api, "USD", "2026-10-30", "1.3900")).status_code == 201  # the same rate: a no-op
    conflict = assert_problem(await post_rate(api, "USD", "2026-10-30", "1.41"), 409)
    assert conflict["recorded"] == "1.39"
    for bad in ({"cad_per_unit": 1.4}, {"cad_per_unit": "-1"}, {"currency": "ZZZ"}, {"currency": "CAD"}):
        body = {"currency": "USD", "rate_date": "2026-10-31", "cad_per_unit": "1.4", "source": "BoC", **bad}
        assert_problem(await api.post(RATES, json=body, headers=ADMIN), 422)
    assert_problem(await post_rate(api, "USD", "2026-10-31", "1.4", headers=as_role(Role.ica, uuid.uuid4())), 403)
    assert_problem(await post_rate(api, "USD", "2026-10-31", "1.4", headers=as_role(Role.analyst)), 403)
    assert_problem(
        await api.get(
            f"{RATES}/convert",
            params={"amount": "1", "currency": "USD", "on": "2026-10-30"},
            headers=as_role(Role.lender, uuid.uuid4()),
        ),
        403,
    )


async def test_csv_import_is_all_or_nothing_with_the_bad_lines_named(api: httpx.AsyncClient) -> None:
    good = "date,currency,cad_per_unit,source\n2026-09-30,PEN,0.3712,BCRP\n2026-09-30,BOB,0.2021,BCB\n"
    imported = await api.post(f"{RATES}/import", content=good.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    assert imported.json() == {"imported": 2, "unchanged": 0}
    again = await api.post(f"{RATES}/import", content=good.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    assert again.json() == {"imported": 0, "unchanged": 2}
    bad = "2026-08-31,PEN,0.37,BCRP\n2026-08-31,XOF,0.002,x\nnot-a-date,BOB,0.2,BCB\n2026-08-31,BOB,abc,BCB\n"
    problem = assert_problem(
        await api.post(f"{RATES}/import", content=bad.encode(), headers={**ADMIN, "Content-Type": "text/csv"}), 422
    )
    assert [e["pointer"] for e in problem["errors"]] == ["#/lines/2", "#/lines/3", "#/lines/4"]
    missing = await api.get(
        f"{RATES}/convert", params={"amount": "1.00", "currency": "PEN", "on": "2026-08-31"}, headers=ADMIN
    )
    assert_problem(missing, 404)  # line 1 was valid but nothing was imported


async def test_a_csv_the_reader_cannot_parse_is_a_422_not_a_500(api: httpx.AsyncClient) -> None:
    """Found by `make fuzz`: a lone carriage return made the csv module raise its own error (a 500)."""
    for body in ("\U000f69bc\xbf\x15\xd1D\xaa\u140d\xbb\x19\rN\xd8\x19\xef", "2026-08-31,PEN,0.37,BCRP\r2026-08-31,X"):
        answer = await api.post(f"{RATES}/import", content=body.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
        assert_problem(answer, 422)
    missing = await api.get(
        f"{RATES}/convert", params={"amount": "1.00", "currency": "PEN", "on": "2026-08-31"}, headers=ADMIN
    )
    assert_problem(missing, 404)  # nothing was imported


async def test_screening_reads_the_cad_equivalent_from_a_running_portfolio(engine: AsyncEngine) -> None:
    """The contract of docs/applications.md, between the two real services over HTTP."""
    portfolio = service_app("portfolio", engine)
    day = date(2001, 1, 2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=portfolio), base_url="http://portfolio") as api:
        assert (await post_rate(api, "EUR", day.isoformat(), "1.4000")).status_code == 201
    async with serving(portfolio) as server:
        os.environ["PORTFOLIO_URL"] = server.url
        try:
            peers = HttpPeers(secret=INTERNAL_SECRET)
            found = await peers.cad_equivalent(Decimal("655957"), "XOF", day)
            assert found is not None and found.amount_cad == Decimal("1400.00") and found.stale is False
            assert await peers.cad_equivalent(Decimal("100"), "BOB", date(1999, 1, 1)) is None
            async with httpx.AsyncClient(base_url=server.url) as direct:
                assert (
                    await direct.get(
                        "/internal/fx/cad-equivalent", params={"amount": "1", "currency": "EUR", "on": "2001-01-02"}
                    )
                ).status_code == 401
                token = mint_service_token("applications", secret=INTERNAL_SECRET, audience="portfolio")
                ok = await direct.get(
                    "/internal/fx/cad-equivalent",
                    params={"amount": "10.00", "currency": "EUR", "on": "2001-01-02"},
                    headers={SERVICE_HEADER: token},
                )
                assert ok.json() == {"amount_cad": "14.00", "rate": "1.4", "rate_date": "2001-01-02", "stale": False}
        finally:
            del os.environ["PORTFOLIO_URL"]
