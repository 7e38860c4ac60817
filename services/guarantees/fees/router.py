"""Guarantee fees (DOMAIN.md, Guarantees): they accrue on the guaranteed outstanding × the facility's annual fee
rate × days ÷ 365, and are invoiced per lender per quarter (per currency: the loan's). The guaranteed outstanding
of a day is coverage × the loan's outstanding principal at the end of that day, as the portfolio's books stood;
the fee of a guarantee is summed exactly over the days and rounded once to the currency's minor units.
Invoicing a quarter again invoices nothing twice. A paid invoice is `fee_income` in the capital ledger, in CAD at
the payment date's rate."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.guarantees.capital.ledger import record_entry
from services.guarantees.capital.models import CapitalEntry
from services.guarantees.claims.models import Claim
from services.guarantees.db import events as event_tables
from services.guarantees.facilities.models import FacilityTerms
from services.guarantees.fees.models import FeeInvoice
from services.guarantees.issuance.models import Guarantee
from shared.auth import STAFF_ROLES, CurrentPrincipal, Principal, Role, require_roles
from shared.contracts.guarantees import FeeInvoicedV1
from shared.db import SessionDep
from shared.events.outbox import publish
from shared.idempotency import IdempotentRoute
from shared.money import Money, format_amount, round_money
from shared.peers import InternalClient
from shared.problems import Conflict, Forbidden, NotFound, ServiceUnavailable, UnprocessableContent, problem_responses

router = APIRouter(prefix="/api/v1/guarantees/fees", tags=["fees"], route_class=IdempotentRoute)
MANAGERS = require_roles(Role.admin, Role.fund_manager)
ANNOUNCES = (FeeInvoicedV1,)
Quarter = Annotated[str, StringConstraints(pattern=r"^(19|2\d)\d{2}-Q[1-4]$")]  # 1900-Q1 … 2999-Q4


class InvoiceRun(BaseModel):
    quarter: Quarter = Field(examples=["2026-Q3"])


class InvoiceOut(BaseModel):
    model_config = {"from_attributes": True}

    id: uuid.UUID
    lender_id: uuid.UUID
    quarter: str
    period_from: date
    period_to: date
    amount: Money
    lines: list[dict[str, Any]]
    status: str
    issued_at: datetime
    paid_on: date | None


def _out(invoice: FeeInvoice) -> InvoiceOut:
    return InvoiceOut(
        id=invoice.id,
        lender_id=invoice.lender_id,
        quarter=invoice.quarter,
        period_from=invoice.period_from,
        period_to=invoice.period_to,
        amount=Money.of(invoice.amount, invoice.currency),
        lines=invoice.lines,
        status=invoice.status,
        issued_at=invoice.issued_at,
        paid_on=invoice.paid_on,
    )


def quarter_bounds(quarter: str) -> tuple[date, date]:
    match = re.fullmatch(r"(\d{4})-Q([1-4])", quarter)
    assert match is not None
    start = date(int(match[1]), 3 * int(match[2]) - 2, 1)
    return start, start + relativedelta(months=3) - timedelta(days=1)


def daily_sum(steps: list[list[str]], start: date, end: date) -> tuple[Decimal, int]:
    """Σ over the days of [start, end] of the balance at the end of each day, from a step function whose first
    step is on `start`; and the number of days."""
    total, days = Decimal(0), 0
    points = [(date.fromisoformat(d), Decimal(b)) for d, b in steps] or [(start, Decimal(0))]
    for k, (since, balance) in enumerate(points):
        until = points[k + 1][0] - timedelta(days=1) if k + 1 < len(points) else end
        n = (min(until, end) - max(since, start)).days + 1
        if n > 0:
            total += balance * n
            days += n
    return total, days


@router.post(
    "/invoices",
    status_code=201,
    response_model=list[InvoiceOut],
    summary="Invoice a quarter's guarantee fees, per lender and currency (admin, fund manager); idempotent",
    responses=problem_responses(401, 403, 422, 503),
)
async def invoice_quarter(
    body: InvoiceRun, request: Request, session: SessionDep, principal: Principal = MANAGERS
) -> list[InvoiceOut]:
    start, end = quarter_bounds(body.quarter)
    if end >= datetime.now(UTC).date():
        raise UnprocessableContent(
            f"{body.quarter} is not over yet", errors=[{"pointer": "#/quarter", "detail": "not over"}]
        )
    paid_claims: dict[uuid.UUID, date] = {
        guarantee_id: paid_on
        for guarantee_id, paid_on in (
            await session.execute(select(Claim.guarantee_id, Claim.paid_on).where(Claim.status == "paid"))
        ).all()
        if paid_on is not None
    }
    rows = (
        await session.scalars(select(Guarantee).where(Guarantee.status != "refused", Guarantee.issued_on <= end))
    ).all()
    # the last day a guarantee earns a fee: its claim's payment day, or the day before it expired
    ends = {g.id: paid_claims[g.id] for g in rows if g.id in paid_claims}
    ends.update({g.id: g.expired_on - timedelta(days=1) for g in rows if g.expired_on is not None})
    guarantees = [g for g in rows if g.id not in ends or ends[g.id] >= start]
    if not guarantees:
        return []
    fx: InternalClient = request.app.state.peers
    history = (
        await fx.post(
            "portfolio",
            "/internal/loans/outstanding-history",
            {"loan_ids": [str(g.loan_id) for g in guarantees], "from": start.isoformat(), "to": end.isoformat()},
        )
    ).json()["loans"]
    invoices: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for g in guarantees:
        terms = await session.get(FacilityTerms, (g.facility_id, g.facility_version))
        assert terms is not None
        first = max(start, g.issued_on)
        last = min(end, ends[g.id]) if g.id in ends else end
        steps = history.get(str(g.loan_id), {}).get("steps", [])
        balance_days, days = daily_sum(steps, first, last) if first <= last else (Decimal(0), 0)
        exact = balance_days * g.coverage_pct / 100 * terms.fee_rate_pct / 100 / 365
        fee = round_money(exact, g.currency)
        entry = invoices.setdefault((g.lender_id, g.currency), {"amount": Decimal(0), "lines": []})
        entry["amount"] += fee
        entry["lines"].append(
            {
                "guarantee_id": str(g.id),
                "loan_id": str(g.loan_id),
                "days": days,
                "coverage_pct": format(g.coverage_pct, "f"),
                "fee_rate_pct": format(terms.fee_rate_pct, "f"),
                "fee": format_amount(fee, g.currency),
            }
        )
    created: list[FeeInvoice] = []
    for (lender_id, currency), entry in sorted(invoices.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        invoice_id = await session.scalar(
            insert(FeeInvoice)
            .values(
                id=uuid.uuid4(),
                lender_id=lender_id,
                quarter=body.quarter,
                period_from=start,
                period_to=end,
                currency=currency,
                amount=entry["amount"],
                lines=entry["lines"],
            )
            .on_conflict_do_nothing(constraint="uq_fee_invoices_quarter")
            .returning(FeeInvoice.id)
        )
        if invoice_id is None:
            continue  # invoiced already: nothing twice
        invoice = await session.get(FeeInvoice, invoice_id)
        assert invoice is not None
        await publish(
            session,
            event_tables,
            event_type="fee.invoiced",
            aggregate_type="fee_invoice",
            aggregate_id=str(invoice.id),
            payload={
                "invoice_id": str(invoice.id),
                "lender_id": str(lender_id),
                "quarter": body.quarter,
                "currency": currency,
                "amount": format_amount(entry["amount"], currency),
            },
        )
        created.append(invoice)
    await session.flush()
    for invoice in created:
        await session.refresh(invoice)
    return [_out(i) for i in created]


@router.post(
    "/invoices/{invoice_id}/paid",
    response_model=InvoiceOut,
    summary="Record an invoice as paid: fee income in the capital ledger (admin, fund manager)",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def mark_paid(
    invoice_id: uuid.UUID, request: Request, session: SessionDep, principal: Principal = MANAGERS
) -> InvoiceOut:
    invoice = await session.get(FeeInvoice, invoice_id, with_for_update=True)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    if invoice.status == "paid":
        raise Conflict(f"invoice {invoice_id} was paid on {invoice.paid_on}", slug="invoice-paid")
    today = datetime.now(UTC).date()
    fx: InternalClient = request.app.state.peers
    equivalent = await fx.cad_equivalent(invoice.amount, invoice.currency, today)
    if equivalent is None:
        raise ServiceUnavailable(f"no {invoice.currency} rate is recorded: the fee income cannot be measured")
    invoice.status, invoice.paid_on = "paid", today
    if equivalent.amount_cad:
        await record_entry(
            session,
            CapitalEntry(
                id=uuid.uuid4(),
                kind="fee_income",
                amount_cad=equivalent.amount_cad,
                value_date=today,
                reference=f"fee invoice {invoice.id}",
                comment=f"{invoice.quarter}: {format_amount(invoice.amount, invoice.currency)} {invoice.currency}",
                recorded_by=principal.key_id,
            ),
        )
    await session.flush()
    return _out(invoice)


@router.get(
    "/invoices",
    response_model=list[InvoiceOut],
    summary="Fee invoices (a lender: its own)",
    responses=problem_responses(401, 403),
)
async def list_invoices(session: SessionDep, principal: CurrentPrincipal) -> list[InvoiceOut]:
    query = select(FeeInvoice).order_by(FeeInvoice.period_from.desc(), FeeInvoice.lender_id)
    if principal.role == Role.lender:
        query = query.where(FeeInvoice.lender_id == principal.organization_id)
    elif principal.role not in (*STAFF_ROLES, Role.funder):
        raise Forbidden(f"role {principal.role.value!r} has no access to fee invoices")
    return [_out(i) for i in (await session.scalars(query.limit(1000))).all()]
