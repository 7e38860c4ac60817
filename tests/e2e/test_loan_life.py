"""A loan's whole life through the gateway, every process real, every call with a real API key:

the admin sets up an ICA, a lender, a guarantee facility, the fund's capital and FX rates; the ICA registers a
cooperative (with a callback endpoint for its notifications) and applies; screening, the analyst's scorecard and
two committee members approve co-financing with a 50 % guarantee; the loan opens and its guarantee is issued;
staff disburse it (16 months ago); the lender pushes 12 monthly repayments, signed — the 6th 40 days late — then
nothing, so the loan is about 95 days past due today; the lender files a claim, one fund manager validates it and
another approves its payment; the lender pushes a recovery. Then the reports at three as-of dates show the PAR,
aging, exposure, leverage, capital and impact figures computed here from the loan's own schedule, the ICA has a
signed notification for each status change of its application, and reporting's totals reconcile with the
services' own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from dateutil.relativedelta import relativedelta
from standardwebhooks.webhooks import Webhook

from deploy.topology import GATEWAY, SERVICES, WORKERS
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.apikeys.service import store_key
from services.gateway.keystore import new_key
from shared.auth import Role
from shared.db import create_engine, make_sessionmaker
from shared.webhooks.secrets import sign
from tests.applications.conftest import business_body
from tests.bench.harness import platform_env, processes, scratch_database
from tests.support import Upstream, free_port

EUR = Decimal("1.4712")
XOF = EUR / Decimal("655.957")  # CAD per XOF, at the peg
CENT = Decimal("0.01")
TODAY = datetime.now(UTC).date()


def cad(amount: Decimal) -> Decimal:
    return (amount * XOF).quantize(CENT, rounding=ROUND_HALF_EVEN)


class Receiver:
    """The ICA's callback endpoint: keeps every POST (headers and raw body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, str, Receiver, int]]:
    # a database of its own: what this scenario commits (a fund's capital, guarantees) stays out of other tests
    with scratch_database() as database_url:
        yield from platform(database_url, tmp_path)


def platform(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Receiver, int]]:
    """The platform (gateway and every service), an admin's key and the ICA's callback receiver (served by its
    own event loop in a thread)."""
    receiver = Receiver()
    callback = Upstream(receiver)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(callback.start(), loop).result(10)
    key = new_key()

    async def store() -> None:
        engine = create_engine(database_url, pool_size=1, max_overflow=0)
        async with make_sessionmaker(engine)() as session:
            spec = ApiKeyCreate(name="e2e admin", role=Role.admin, rate_limit_per_second=1000, rate_limit_burst=10_000)
            await store_key(session, plaintext=key, spec=spec, created_by=None)
            await session.commit()
        await engine.dispose()

    asyncio.run(store())
    ports = {spec.name: free_port() for spec in (*SERVICES, GATEWAY)}
    env = {**platform_env(database_url, ports), "APPLICATIONS_WEBHOOKS_ALLOW_HTTP": "true"}
    try:
        with processes([*SERVICES, GATEWAY], env, tmp_path, WORKERS):
            yield f"http://127.0.0.1:{ports['gateway']}", key, receiver, callback.port
    finally:
        asyncio.run_coroutine_threadsafe(callback.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def until(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def test_a_loans_whole_life_through_the_gateway(gateway: tuple[str, str, Receiver, int]) -> None:
    url, admin_key, receiver, callback_port = gateway
    api = httpx.Client(base_url=url, timeout=30)

    def call(method: str, path: str, key: str, status: int | tuple[int, ...] = (200, 201, 202), **kw: Any) -> Any:
        response = api.request(method, path, headers={"Authorization": f"Bearer {key}", **kw.pop("headers", {})}, **kw)
        expected = (status,) if isinstance(status, int) else status
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def key(role: str, org: str | None = None, holder: str | None = None) -> str:
        body = {"name": f"e2e {role} {holder or ''}", "role": role, "organization_id": org, "holder": holder}
        return str(call("POST", "/api/v1/admin/api-keys", admin_key, json=body)["key"])

    # dates: disbursed 16 months ago; 24 monthly instalments; 12 paid; the 13th unpaid for about 95 days
    start = TODAY - timedelta(days=95) - relativedelta(months=13)
    disbursed_on = start.replace(day=min(start.day, 28))  # no month-end clamping in its due dates
    capital_on = disbursed_on - timedelta(days=10)

    # -- the admin sets up the fund
    for day in {capital_on, disbursed_on, TODAY}:
        call(
            "POST",
            "/api/v1/portfolio/fx-rates",
            admin_key,
            (201, 200),
            json={"currency": "EUR", "rate_date": str(day), "cad_per_unit": str(EUR), "source": "Bank of Canada"},
        )
    call(
        "POST",
        "/api/v1/guarantees/capital/entries",
        admin_key,
        json={
            "kind": "contribution",
            "amount": {"amount": "1000000.00", "currency": "CAD"},
            "value_date": str(capital_on),
            "reference": "government contribution",
        },
    )
    lender = call(
        "POST",
        "/api/v1/portfolio/lenders",
        admin_key,
        json={
            "name": f"Banque Agricole {uuid.uuid4().hex[:4]}",
            "institution_type": "bank",
            "country": "SN",
            "currencies": ["XOF"],
        },
    )
    secret = lender["webhook_secret"]["secret"]
    call(
        "POST",
        "/api/v1/guarantees/facilities",
        admin_key,
        json={
            "lender_id": lender["id"],
            "ceiling": {"amount": "1500000.00", "currency": "CAD"},
            "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
            "valid_from": str(capital_on),
            "valid_to": str(TODAY + relativedelta(years=3)),
        },
    )
    ica = call("POST", "/api/v1/applications/icas", admin_key, json={"name": f"SUCO {uuid.uuid4().hex[:4]}"})
    ica_key, lender_key = key("ica", ica["id"]), key("lender", lender["id"])
    analyst = key("analyst", holder="amina@fisiq.example")
    alice, bob = key("committee", holder="alice@fisiq.example"), key("committee", holder="bob@fisiq.example")
    maker, checker = key("fund_manager", holder="marc@fisiq.example"), key("fund_manager", holder="lea@fisiq.example")
    funder = key("funder", holder="ministere@quebec.example")

    # -- the ICA registers its callback, its partner, and applies
    endpoint = call(
        "POST",
        "/api/v1/applications/notifications/endpoints",
        ica_key,
        json={"url": f"http://127.0.0.1:{callback_port}/fisiq"},
    )
    business = call("POST", "/api/v1/applications/businesses", ica_key, json=business_body())
    draft = call(
        "POST",
        "/api/v1/applications/applications",
        ica_key,
        json={
            "business_id": business["id"],
            "requested": {"amount": "12000000", "currency": "XOF"},
            "term_months": 24,
            "purpose": "equipment",
            "instruments": ["co_financing", "guarantee"],
            "lender_id": lender["id"],
            "lender_share_pct": "60",
            "support_plan": "Monthly visits by the ICA's agronomist.",
        },
    )
    app_path = f"/api/v1/applications/applications/{draft['id']}"
    assert call("POST", f"{app_path}/submit", ica_key, json={})["status"] == "under_review"
    scores = {
        "gender_equality": 4,
        "democratic_governance": 3,
        "environment": 2,
        "decent_income_social_responsibility": 3,
        "partnership_strength": 3,
    }
    call("POST", f"{app_path}/scorecard", analyst, json={"scores": scores})
    call("POST", f"{app_path}/send-to-committee", analyst, json={"comment": "ready"})
    terms = {
        "amount": {"amount": "12000000", "currency": "XOF"},
        "term_months": 24,
        "instruments": ["co_financing", "guarantee"],
        "lender_id": lender["id"],
        "fund_share_pct": "40",
        "guarantee_coverage_pct": "50",
        "conditions": ["quarterly reports"],
    }
    call("POST", f"{app_path}/votes", alice, json={"decision": "approve", "terms": terms, "comment": "yes"})
    decided = call("POST", f"{app_path}/votes", bob, json={"decision": "approve", "terms": terms, "comment": "yes"})
    assert decided["application_status"] == "approved"

    # -- the loan opens from the approval, and its guarantee from the loan
    loan = until(
        lambda: next(
            iter(call("GET", "/api/v1/portfolio/loans", maker, params={"application_id": draft["id"]})["items"]), None
        ),
        "the loan opening",
    )
    loan_path = f"/api/v1/portfolio/loans/{loan['id']}"
    guarantee = until(
        lambda: next(iter(call("GET", "/api/v1/guarantees/guarantees", maker, params={"loan_id": loan["id"]})), None),
        "the guarantee's issue",
    )
    assert guarantee["status"] == "active" and guarantee["coverage_pct"] == "50.00"
    call(
        "PUT", f"{loan_path}/terms", maker, json={"annual_rate_pct": "12", "frequency": "monthly", "method": "annuity"}
    )
    call(
        "POST",
        f"{loan_path}/disbursements",
        maker,
        json={"amount": {"amount": "12000000", "currency": "XOF"}, "value_date": str(disbursed_on)},
    )
    schedule = call("GET", f"{loan_path}/schedule", maker, params={"as_of": str(disbursed_on)})["instalments"]
    due = [date.fromisoformat(i["due_date"]) for i in schedule]
    principal = [Decimal(i["principal"]["amount"]) for i in schedule]
    amount = [Decimal(i["total_due"]["amount"]) for i in schedule]

    # -- the lender pushes 12 repayments, signed; the 6th 40 days late, the 7th 12 days late
    paid_on = [due[k] + timedelta(days={5: 40, 6: 12}.get(k, 0)) for k in range(12)]
    hook = f"/webhooks/lenders/{lender['id']}"
    for k in range(12):
        raw = json.dumps(
            {
                "items": [
                    {
                        "type": "repayment",
                        "transaction_id": f"BA-{k + 1}",
                        "loan_id": loan["id"],
                        "amount": {"amount": str(amount[k]), "currency": "XOF"},
                        "value_date": str(paid_on[k]),
                    }
                ]
            }
        ).encode()
        signed = sign(secret, msg_id=f"msg_e2e_{k}", timestamp=datetime.now(UTC), body=raw)
        assert api.post(hook, content=raw, headers={**signed, "content-type": "application/json"}).status_code == 202
    until(
        lambda: (
            call("GET", f"/api/v1/portfolio/lenders/{lender['id']}/pushes", lender_key)["items"]
            and all(
                p["status"] == "processed"
                for p in call("GET", f"/api/v1/portfolio/lenders/{lender['id']}/pushes", lender_key)["items"]
            )
        ),
        "the pushes' processing",
    )
    outstanding = [Decimal(12000000) - sum(principal[: k + 1], Decimal(0)) for k in range(12)]  # after payment k+1
    dpd_today = (TODAY - due[12]).days
    assert 90 <= dpd_today <= 100
    position = call("GET", f"{loan_path}/position", maker, params={"as_of": str(TODAY)})
    assert position["days_past_due"] == dpd_today
    assert Decimal(position["outstanding_principal"]["amount"]) == outstanding[11]

    # -- before the claim: the guarantee exposes half the outstanding, in CAD, against the fund's capital
    exposure = min((outstanding[11] * XOF / 2).quantize(CENT, rounding=ROUND_HALF_EVEN), Decimal("125000.00"))

    def exposed() -> dict[str, Any] | None:
        body = call("GET", "/api/v1/reporting/guarantees", funder, params={"as_of": str(TODAY)})["total"]
        return body if Decimal(body["exposure_cad"]) == exposure else None

    before_claim = until(exposed, "reporting's exposure", 60)
    assert Decimal(before_claim["leverage"]) == (exposure / Decimal("1000000.00")).quantize(Decimal("0.000001"))
    assert before_claim["guarantees_issued"] == 1 and before_claim["claims_paid"] == 0

    # -- the lender claims; one fund manager validates, another approves the payment
    claim = call(
        "POST",
        "/api/v1/guarantees/claims",
        lender_key,
        json={"loan_id": loan["id"], "documents": [{"name": "demand.pdf", "kind": "demand_letter"}]},
    )
    default_date = due[12] + timedelta(days=90)
    assert claim["default_date"] == str(default_date)
    payout = min((outstanding[11] * XOF / 2).quantize(CENT, rounding=ROUND_HALF_EVEN), Decimal("125000.00"))
    assert claim["payout"] == {"amount": str(payout), "currency": "CAD"}
    call("POST", f"/api/v1/guarantees/claims/{claim['id']}/validate", maker, json={})
    call("POST", f"/api/v1/guarantees/claims/{claim['id']}/approve-payment", maker, 403, json={})
    assert (
        call("POST", f"/api/v1/guarantees/claims/{claim['id']}/approve-payment", checker, json={})["status"] == "paid"
    )

    # -- the lender pushes a recovery: the fund's share is half of it, in CAD
    raw = json.dumps(
        {
            "items": [
                {
                    "type": "recovery",
                    "transaction_id": "BA-REC-1",
                    "loan_id": loan["id"],
                    "amount": {"amount": "100000", "currency": "XOF"},
                    "value_date": str(TODAY),
                }
            ]
        }
    ).encode()
    signed = sign(secret, msg_id="msg_e2e_recovery", timestamp=datetime.now(UTC), body=raw)
    assert api.post(hook, content=raw, headers={**signed, "content-type": "application/json"}).status_code == 202
    share = cad(Decimal(100000) / 2)
    entries = until(
        lambda: [
            e for e in call("GET", "/api/v1/guarantees/capital/entries", maker)["items"] if e["kind"] == "recovery"
        ],
        "the recovery's share",
    )
    assert [e["amount"]["amount"] for e in entries] == [str(share)]
    capital = call("GET", "/api/v1/guarantees/capital", maker, params={"as_of": str(TODAY)})
    assert Decimal(capital["capital_available"]["amount"]) == Decimal("1000000.00") - payout + share

    # -- the reports, as a funder reads them, once reporting has caught up
    def report(name: str, on: date, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = call("GET", f"/api/v1/reporting/{name}", funder, params={"as_of": str(on), **params})
        return body

    statement = call("GET", f"{loan_path}/transactions", lender_key, params={"limit": 100})["items"]
    recovery = next(t for t in statement if t["external_id"] == "BA-REC-1")
    after_recovery = outstanding[11] - Decimal(recovery["allocation"]["principal"])
    until(lambda: report("guarantees", TODAY)["total"]["claims_paid"] == 1, "reporting's catching up", 60)
    late_6th = due[5] + timedelta(days=35)  # 35 days past due, everything before paid: PAR30, not PAR90
    cured = due[8] + timedelta(days=3)  # every due instalment paid
    for on, expected_outstanding, bucket, par30, par90 in (
        (late_6th, outstanding[4], "31-60", True, False),
        (cured, outstanding[8], "current", False, False),
        (TODAY, after_recovery, "91-180", True, True),
    ):
        total = report("portfolio", on)["total"]
        xof = next(c for c in total["by_currency"] if c["currency"] == "XOF")
        assert Decimal(xof["gross_loan_portfolio"]) == expected_outstanding, on
        assert Decimal(xof["par30"]) == (expected_outstanding if par30 else 0), on
        assert Decimal(xof["par90"]) == (expected_outstanding if par90 else 0), on
        assert total["cad"]["gross_loan_portfolio"] == str(cad(expected_outstanding)), on
        assert total["aging_loans"][bucket] == 1, on
    guarantees = report("guarantees", TODAY)["total"]
    assert Decimal(guarantees["exposure_cad"]) == 0  # paid out: nothing exposed any more
    assert Decimal(guarantees["claims_paid_cad"]) == payout
    assert Decimal(guarantees["capital_available_cad"]) == Decimal("1000000.00") - payout + share
    assert Decimal(guarantees["recoveries_cad"]) == share
    impact = report("impact", TODAY)["total"]
    assert impact["businesses_financed"]["value"] == 1
    assert (impact["members_total"]["value"], impact["members_women"]["value"]) == (412, 268)
    assert (impact["board_seats_total"]["value"], impact["board_seats_women"]["value"]) == (9, 5)
    assert impact["board_seats_women"]["iris"] == "OI8118"

    # -- the ICA was told of every status change of its application, signed with its endpoint's secret
    def told() -> list[tuple[str, str]] | None:
        moves = [Webhook(endpoint["secret"]).verify(body, headers)["data"] for headers, body in receiver.received]
        moves = [m for m in moves if m["application_id"] == draft["id"]]
        if not moves or moves[-1]["to_status"] != "approved":
            return None
        return sorted((m["from_status"], m["to_status"]) for m in moves)

    transitions = call("GET", f"{app_path}/transitions", ica_key)
    changes = sorted((t["from_status"], t["to_status"]) for t in transitions if t["from_status"] is not None)
    assert until(told, "the ICA's notifications", 60) == changes
    assert ("committee", "approved") in changes and len(changes) == 5
