"""The portfolio's loan and FX events, kept as dated rows.

- Every loan event upserts the loan's dimensions (`loans`) and, when it carries `standing`, replaces the loan's
  standing from the first step's date on (`loan_standing`): the rows dated on or after it go, the new steps come
  in, and the step just before has its `valid_to` moved to the first new date. A report as of D reads the one step
  with on <= D < valid_to, so a later repayment (a later step) never changes a past date's figures.
- Money movements go to `loan_flows` by value date; a reversal marks the transaction it undoes.
- `fx.rate_recorded` keeps the day's closing rate (XOF and XAF derive from EUR when a report reads them).
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import (
    FAR_FUTURE,
    PORTFOLIO_TABLES,
    fx_rates,
    guarantee_month_end_totals,
    guarantee_month_ends,
    loan_flows,
    loan_standing,
    loans,
)
from services.reporting.readmodel import exposure, impact
from shared.contracts.portfolio import (
    FxRateRecordedV1,
    LoanDisbursedV1,
    LoanFactsV1,
    LoanOpenedV1,
    LoanWrittenOffV1,
    RecoveryReceivedV1,
    RepaymentAppliedV1,
    RepaymentReversedV1,
    StandingV1,
)
from shared.countries import country
from shared.events.consumer import Subscription
from shared.events.contracts import EventEnvelope
from shared.events.topology import SUBSCRIPTIONS
from shared.problems import Conflict

SPEC = next(s for s in SUBSCRIPTIONS if s.consumer == "reporting" and s.name == "portfolio-read-model")
END = date.fromisoformat(FAR_FUTURE)
FUND_REGIONS = ("002", "142", "419")  # Africa, Asia, Latin America and the Caribbean


def fund_region(alpha2: str) -> str:
    """The region the fund reports by: Africa (002), Asia (142), Latin America and the Caribbean (419); any other
    country falls under its own M49 region."""
    codes = country(alpha2).m49_codes
    return next((code for code in FUND_REGIONS if code in codes), country(alpha2).region)


async def upsert_loan(session: AsyncSession, loan: LoanFactsV1, **extra: object) -> None:
    values = {
        "loan_id": loan.loan_id,
        "application_id": loan.application_id,
        "lender_id": loan.lender_id,
        "business_id": loan.business_id,
        "ica_id": loan.ica_id,
        "country": loan.country,
        "region": fund_region(loan.country),
        "currency": loan.currency,
        "status": loan.status,
    }
    changes = {k: v for k, v in values.items() if k != "loan_id"} | extra
    await session.execute(
        insert(loans).values(**values, **extra).on_conflict_do_update(index_elements=[loans.c.loan_id], set_=changes)
    )


async def replace_standing(session: AsyncSession, loan_id: uuid.UUID, standing: list[StandingV1]) -> None:
    if not standing:
        return
    steps = {step.on: step for step in standing}  # one step a date: the last one said wins
    dates = sorted(steps)
    first = dates[0]
    await session.execute(delete(loan_standing).where(loan_standing.c.loan_id == loan_id, loan_standing.c.on >= first))
    # the step before the new ones now ends where they begin
    before = (
        select(func.max(loan_standing.c.on))
        .where(loan_standing.c.loan_id == loan_id, loan_standing.c.on < first)
        .scalar_subquery()
    )
    await session.execute(
        update(loan_standing)
        .where(loan_standing.c.loan_id == loan_id, loan_standing.c.on == before)
        .values(valid_to=first)
    )
    await session.execute(
        insert(loan_standing),
        [
            {
                "loan_id": loan_id,
                "on": on,
                "valid_to": dates[i + 1] if i + 1 < len(dates) else END,
                "outstanding_principal": steps[on].outstanding_principal,
                "overdue_from": steps[on].overdue_from,
                "status": steps[on].status,
            }
            for i, on in enumerate(dates)
        ],
    )


# The day totals of the flows (`flow_days`) of the value dates named, recomputed from `loan_flows`: run after each
# flow event for its date, and by the reference load's bulk path (and migration 0009) over every date.
FLOW_DAYS_CLEAR_SQL = "DELETE FROM reporting.flow_days WHERE value_date = ANY(:days)"
FLOW_DAYS_SQL = """
INSERT INTO reporting.flow_days
    (value_date, currency, disbursed, repaid_principal, repaid_interest, written_off, recovered)
SELECT f.value_date, l.currency,
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'disbursed'), 0),
       coalesce(sum(f.principal) FILTER (WHERE f.kind = 'repaid'), 0),
       coalesce(sum(f.interest) FILTER (WHERE f.kind = 'repaid'), 0),
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'written_off'), 0),
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'recovered'), 0)
FROM reporting.loan_flows f
JOIN reporting.loans l ON l.loan_id = f.loan_id
WHERE f.value_date = ANY(:days) AND NOT f.reversed
GROUP BY f.value_date, l.currency
"""


async def record_flow(session: AsyncSession, **row: object) -> None:
    await session.execute(insert(loan_flows).values(**row).on_conflict_do_nothing())


async def on_portfolio_event(session: AsyncSession, event: EventEnvelope) -> None:
    if event.type == "fx.rate_recorded":
        rate = event.parse(FxRateRecordedV1)
        horizon = await session.scalar(select(func.max(fx_rates.c.rate_date)))
        recorded = await session.scalar(
            insert(fx_rates)
            .values(
                currency=rate.currency, rate_date=rate.rate_date, cad_per_unit=rate.cad_per_unit, source=rate.source
            )
            .on_conflict_do_nothing()  # a recorded rate is never changed
            .returning(fx_rates.c.rate_date)
        )
        if recorded is not None:
            await exposure.refresh_for_rate(session, rate.currency, rate.rate_date, horizon)
        return
    if not event.type.startswith("loan."):
        return
    facts = event.parse(LoanFactsV1)
    extra: dict[str, object] = {}
    flow_day: date | None = None  # the value date of a flow this event records or undoes
    if event.type == "loan.opened":
        extra["principal"] = event.parse(LoanOpenedV1).principal
    elif event.type == "loan.disbursed":
        disbursed = event.parse(LoanDisbursedV1)
        await record_flow(
            session,
            transaction_id=disbursed.transaction_id,
            loan_id=facts.loan_id,
            kind="disbursed",
            value_date=disbursed.value_date,
            amount=disbursed.amount,
            principal=disbursed.amount,
        )
        flow_day = disbursed.value_date
        first = await session.scalar(select(loans.c.first_disbursed_on).where(loans.c.loan_id == facts.loan_id))
        extra["first_disbursed_on"] = min(first, disbursed.value_date) if first else disbursed.value_date
    elif event.type in ("loan.repayment_applied", "loan.recovery_received"):
        paid = event.parse(RepaymentAppliedV1 if event.type == "loan.repayment_applied" else RecoveryReceivedV1)
        await record_flow(
            session,
            transaction_id=paid.transaction_id,
            loan_id=facts.loan_id,
            kind="repaid" if event.type == "loan.repayment_applied" else "recovered",
            value_date=paid.value_date,
            amount=paid.amount,
            principal=paid.allocation.principal,
            interest=paid.allocation.interest,
            recovered=paid.allocation.recovered,
        )
        flow_day = paid.value_date
    elif event.type == "loan.repayment_reversed":
        reversed_ = event.parse(RepaymentReversedV1)
        undone = await session.scalar(
            update(loan_flows)
            .where(loan_flows.c.transaction_id == reversed_.transaction_id)
            .values(reversed=True)
            .returning(loan_flows.c.value_date)
        )
        if undone is not None:
            flow_day = undone
    elif event.type == "loan.written_off":
        written_off = event.parse(LoanWrittenOffV1)
        extra["written_off_on"] = written_off.value_date
        extra["written_off_principal"] = written_off.written_off_principal
        await record_flow(
            session,
            transaction_id=uuid.uuid5(facts.loan_id, "written_off"),
            loan_id=facts.loan_id,
            kind="written_off",
            value_date=written_off.value_date,
            amount=written_off.written_off_principal,
            principal=written_off.written_off_principal,
        )
        flow_day = written_off.value_date
    await upsert_loan(session, facts, **extra)
    await replace_standing(session, facts.loan_id, facts.standing)
    if flow_day is not None:
        await session.execute(text(FLOW_DAYS_CLEAR_SQL), {"days": [flow_day]})
        await session.execute(text(FLOW_DAYS_SQL), {"days": [flow_day]})
    if event.type == "loan.disbursed":  # the business may be financed from an earlier date
        await impact.refresh(session, [facts.business_id])
    if facts.standing:
        await impact.refresh_glp(session, [facts.loan_id])
    if facts.standing:  # the month ends from the first step replaced on
        await exposure.refresh(session, loans=[facts.loan_id], from_day=min(step.on for step in facts.standing))


async def reset_portfolio(session: AsyncSession, from_position: int) -> None:
    await reset_tables(session, from_position, (*PORTFOLIO_TABLES, guarantee_month_ends, guarantee_month_end_totals))
    await impact.rebuild(session)  # no loan left: no business financed


async def reset_tables(session: AsyncSession, from_position: int, tables: tuple[Table, ...]) -> None:
    """A read model built from dated replacements cannot be rolled back to the middle of the feed: it is rebuilt
    from the start (position 0), its tables emptied and every event applied again."""
    if from_position != 0:
        raise Conflict("the reporting read model is rebuilt from the start: replay from position 0")
    for table in tables:
        await session.execute(delete(table))


SUBSCRIPTION = Subscription(SPEC.name, SPEC.producer, SPEC.types, on_portfolio_event, reset_portfolio)
