"""The portfolio's loan and FX events, kept as dated rows.

- Every loan event upserts the loan's dimensions (`loans`) and, when it carries `standing`, replaces the loan's
  standing from the first step's date on (`loan_standing`): the rows dated on or after it go, the new steps come
  in, and the step just before has its `valid_to` moved to the first new date. A report as of D reads the one step
  with on <= D < valid_to, so a later repayment (a later step) never changes a past date's figures.
- Money movements go to `loan_flows` by value date; a reversal marks the transaction it undoes.
- `fx.rate_recorded` keeps the day's closing rate (XOF and XAF derive from EUR when a report reads them).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import (
    FAR_FUTURE,
    PORTFOLIO_TABLES,
    fx_rates,
    guarantee_month_end_totals,
    guarantee_month_ends,
    guarantee_standing,
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
    PaymentV1,
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


@functools.lru_cache(maxsize=512)
def fund_region(alpha2: str) -> str:
    """The region the fund reports by: Africa (002), Asia (142), Latin America and the Caribbean (419); any other
    country falls under its own M49 region."""
    codes = country(alpha2).m49_codes
    return next((code for code in FUND_REGIONS if code in codes), country(alpha2).region)


def loan_row(loan: LoanFactsV1) -> dict[str, object]:
    """The `loans` columns every loan event's facts give (the extras aside)."""
    return {
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


async def upsert_loan(session: AsyncSession, loan: LoanFactsV1, **extra: object) -> None:
    values = loan_row(loan)
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
    # the last step written is the loan's latest (open-ended: every later one was replaced): its copy on the loan
    latest = steps[dates[-1]]
    await session.execute(
        update(loans)
        .where(loans.c.loan_id == loan_id)
        .values(
            latest_on=dates[-1],
            latest_outstanding=latest.outstanding_principal,
            latest_overdue_from=latest.overdue_from,
            latest_status=latest.status,
        )
    )


# The day totals of the flows (`flow_days`) of the value dates named, recomputed from `loan_flows`: by the reference
# load's bulk path and migration 0009, over every date. The projections keep them by adding what each flow changes
# (`FLOWS_SQL`, `REVERSE_SQL`): a recomputation read every flow of the day again for each page, and a busy day's
# flows (150,000 repayments pushed on one date) made that 200 ms a page and growing.
FLOW_DAYS_CLEAR_SQL = "DELETE FROM reporting.flow_days WHERE value_date = ANY(:days)"
_FLOW_SUMS = """
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'disbursed'), 0) AS disbursed,
       coalesce(sum(f.principal) FILTER (WHERE f.kind = 'repaid'), 0) AS repaid_principal,
       coalesce(sum(f.interest) FILTER (WHERE f.kind = 'repaid'), 0) AS repaid_interest,
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'written_off'), 0) AS written_off,
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'recovered'), 0) AS recovered"""
FLOW_DAYS_SQL = f"""
INSERT INTO reporting.flow_days
    (value_date, currency, disbursed, repaid_principal, repaid_interest, written_off, recovered)
SELECT f.value_date, l.currency,{_FLOW_SUMS}
FROM reporting.loan_flows f
JOIN reporting.loans l ON l.loan_id = f.loan_id
WHERE f.value_date = ANY(:days) AND NOT f.reversed
GROUP BY f.value_date, l.currency
"""  # noqa: S608 - fixed fragments only
_FLOW_COLUMNS_RETURNED = "RETURNING loan_id, kind, value_date, amount, principal, interest, recovered"
# New flows (a transaction already known adds nothing), added to their day's totals. Their loans' rows are written
# first: the currency is the loan's.
FLOWS_SQL = f"""
WITH f AS (
    INSERT INTO reporting.loan_flows (transaction_id, loan_id, kind, value_date, amount, principal, interest,
                                      recovered)
    SELECT * FROM unnest(CAST(:transaction_id AS uuid[]), CAST(:loan_id AS uuid[]), CAST(:kind AS text[]),
                         CAST(:value_date AS date[]), CAST(:amount AS numeric[]), CAST(:principal AS numeric[]),
                         CAST(:interest AS numeric[]), CAST(:recovered AS numeric[]))
    ON CONFLICT DO NOTHING
    {_FLOW_COLUMNS_RETURNED}
)
INSERT INTO reporting.flow_days AS d
    (value_date, currency, disbursed, repaid_principal, repaid_interest, written_off, recovered)
SELECT f.value_date, l.currency,{_FLOW_SUMS}
FROM f JOIN reporting.loans l ON l.loan_id = f.loan_id
GROUP BY f.value_date, l.currency
ON CONFLICT (value_date, currency) DO UPDATE SET
    disbursed = d.disbursed + excluded.disbursed, repaid_principal = d.repaid_principal + excluded.repaid_principal,
    repaid_interest = d.repaid_interest + excluded.repaid_interest, written_off = d.written_off + excluded.written_off,
    recovered = d.recovered + excluded.recovered
"""  # noqa: S608 - fixed fragments only
# Flows reversed (once: a flow already reversed is left alone), taken off their day's totals; answers the totals
# that came to nothing, which `FLOW_DAYS_DROP_SQL` removes when no flow of theirs is left (as a recomputation would).
REVERSE_SQL = f"""
WITH f AS (
    UPDATE reporting.loan_flows SET reversed = true
    WHERE transaction_id = ANY(CAST(:ids AS uuid[])) AND NOT reversed
    {_FLOW_COLUMNS_RETURNED}
), s AS (
    SELECT f.value_date, l.currency,{_FLOW_SUMS}
    FROM f JOIN reporting.loans l ON l.loan_id = f.loan_id
    GROUP BY f.value_date, l.currency
)
UPDATE reporting.flow_days d SET
    disbursed = d.disbursed - s.disbursed, repaid_principal = d.repaid_principal - s.repaid_principal,
    repaid_interest = d.repaid_interest - s.repaid_interest, written_off = d.written_off - s.written_off,
    recovered = d.recovered - s.recovered
FROM s WHERE d.value_date = s.value_date AND d.currency = s.currency
RETURNING d.value_date, d.currency,
          d.disbursed = 0 AND d.repaid_principal = 0 AND d.repaid_interest = 0 AND d.written_off = 0
          AND d.recovered = 0 AS nothing
"""  # noqa: S608 - fixed fragments only
FLOW_DAYS_DROP_SQL = """
DELETE FROM reporting.flow_days d
USING unnest(CAST(:days AS date[]), CAST(:currencies AS text[])) AS x(value_date, currency)
WHERE d.value_date = x.value_date AND d.currency = x.currency
  AND NOT EXISTS (SELECT 1 FROM reporting.loan_flows f JOIN reporting.loans l ON l.loan_id = f.loan_id
                  WHERE f.value_date = d.value_date AND l.currency = d.currency AND NOT f.reversed)
"""
FLOW_COLUMNS = ("transaction_id", "loan_id", "kind", "value_date", "amount", "principal", "interest", "recovered")


def flow_row(
    transaction_id: uuid.UUID,
    loan_id: uuid.UUID,
    kind: str,
    value_date: date,
    amount: str,
    principal: str | None = None,
    interest: str = "0",
    recovered: str = "0",
) -> dict[str, object]:
    """A `loan_flows` row (`FLOW_COLUMNS`) from an event's decimal strings; the principal is the amount unless said."""
    return {
        "transaction_id": transaction_id,
        "loan_id": loan_id,
        "kind": kind,
        "value_date": value_date,
        "amount": Decimal(amount),
        "principal": Decimal(amount if principal is None else principal),
        "interest": Decimal(interest),
        "recovered": Decimal(recovered),
    }


async def write_flows(session: AsyncSession, flows: list[dict[str, object]]) -> None:
    """Records new flows (their loans' rows written already) and adds them to their day's totals."""
    if flows:
        await session.execute(text(FLOWS_SQL), {c: [f[c] for f in flows] for c in FLOW_COLUMNS})


async def reverse_flows(session: AsyncSession, transaction_ids: Iterable[uuid.UUID]) -> None:
    """Marks flows reversed and takes them off their day's totals."""
    ids = list(transaction_ids)
    if not ids:
        return
    emptied = [(r.value_date, r.currency) for r in await session.execute(text(REVERSE_SQL), {"ids": ids}) if r.nothing]
    if emptied:
        days, currencies = zip(*emptied, strict=True)
        await session.execute(text(FLOW_DAYS_DROP_SQL), {"days": list(days), "currencies": list(currencies)})


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
    flow: dict[str, object] | None = None  # the flow this event records (written once its loan's row is)

    if event.type == "loan.opened":
        extra["principal"] = event.parse(LoanOpenedV1).principal
    elif event.type == "loan.disbursed":
        disbursed = event.parse(LoanDisbursedV1)
        flow = flow_row(disbursed.transaction_id, facts.loan_id, "disbursed", disbursed.value_date, disbursed.amount)
        first = await session.scalar(select(loans.c.first_disbursed_on).where(loans.c.loan_id == facts.loan_id))
        extra["first_disbursed_on"] = min(first, disbursed.value_date) if first else disbursed.value_date
    elif event.type in ("loan.repayment_applied", "loan.recovery_received"):
        paid = event.parse(RepaymentAppliedV1 if event.type == "loan.repayment_applied" else RecoveryReceivedV1)
        flow = flow_row(
            paid.transaction_id,
            facts.loan_id,
            "repaid" if event.type == "loan.repayment_applied" else "recovered",
            paid.value_date,
            paid.amount,
            principal=paid.allocation.principal,
            interest=paid.allocation.interest,
            recovered=paid.allocation.recovered,
        )
    elif event.type == "loan.written_off":
        written_off = event.parse(LoanWrittenOffV1)
        extra["written_off_on"] = written_off.value_date
        extra["written_off_principal"] = written_off.written_off_principal
        amount = written_off.written_off_principal
        flow = flow_row(
            uuid.uuid5(facts.loan_id, "written_off"), facts.loan_id, "written_off", written_off.value_date, amount
        )
    await upsert_loan(session, facts, **extra)
    if flow is not None:
        await write_flows(session, [flow])
    if event.type == "loan.repayment_reversed":
        await reverse_flows(session, [event.parse(RepaymentReversedV1).transaction_id])
    await replace_standing(session, facts.loan_id, facts.standing)
    if event.type == "loan.disbursed":  # the business may be financed from an earlier date
        await impact.refresh(session, [facts.business_id])
    if facts.standing:
        await impact.refresh_glp(session, [facts.loan_id])
    if facts.standing:  # the month ends from the first step replaced on
        await exposure.refresh(session, loans=[facts.loan_id], from_day=min(step.on for step in facts.standing))


# ------------------------------------------------------------------------------------------- a page at a time
# The same rows as `on_portfolio_event` on each event in feed order, in a fixed number of statements per page: the
# loans upserted once (the last facts win), each loan's standing replacements composed here and written with one
# delete, one update and one insert, the flows in one insert and the reversals in one update (each adding to or
# taking from its day's totals), impact and month ends recomputed once for what the page touched. What it does not
# compose (a rate, a flow whose transaction a reversal earlier in the page named) flushes what is pending and goes
# through `on_portfolio_event`.
# each column's value when the loan is already stored; the row is rewritten only when one of them changes (a
# repayment of interest only changes none: rewriting the same row would add a row version and an entry in each of
# the table's indexes, for nothing)
_LOAN_UPDATES = {
    **{c: f"excluded.{c}" for c in ("application_id", "lender_id", "business_id", "ica_id", "country", "region")},
    "currency": "excluded.currency",
    "status": "excluded.status",
    "principal": "coalesce(excluded.principal, l.principal)",
    "first_disbursed_on": "least(l.first_disbursed_on, excluded.first_disbursed_on)",
    "written_off_on": "coalesce(excluded.written_off_on, l.written_off_on)",
    "written_off_principal": "coalesce(excluded.written_off_principal, l.written_off_principal)",
    # the latest standing step's copy: from the page's steps when it replaced the loan's standing, else kept
    **{
        c: f"CASE WHEN excluded.latest_on IS NULL THEN l.{c} ELSE excluded.{c} END"
        for c in ("latest_on", "latest_outstanding", "latest_overdue_from", "latest_status")
    },
}
UPSERT_LOANS_SQL = f"""
INSERT INTO reporting.loans AS l (loan_id, {", ".join(_LOAN_UPDATES)})
SELECT * FROM unnest(CAST(:loan_id AS uuid[]), CAST(:application_id AS uuid[]), CAST(:lender_id AS uuid[]),
                     CAST(:business_id AS uuid[]), CAST(:ica_id AS uuid[]), CAST(:country AS text[]),
                     CAST(:region AS text[]), CAST(:currency AS text[]), CAST(:status AS text[]),
                     CAST(:principal AS numeric[]), CAST(:first_disbursed_on AS date[]),
                     CAST(:written_off_on AS date[]), CAST(:written_off_principal AS numeric[]),
                     CAST(:latest_on AS date[]), CAST(:latest_outstanding AS numeric[]),
                     CAST(:latest_overdue_from AS date[]), CAST(:latest_status AS text[]))
ON CONFLICT (loan_id) DO UPDATE SET {", ".join(f"{c} = {e}" for c, e in _LOAN_UPDATES.items())}
WHERE ({", ".join(f"l.{c}" for c in _LOAN_UPDATES)}) IS DISTINCT FROM ({", ".join(_LOAN_UPDATES.values())})
"""  # noqa: S608 (the columns and expressions: the constants above)
# each loan's standing from its cut on replaced: the rows from the cut go, the row before it ends at the cut
STANDING_CLEAR_SQL = """
DELETE FROM reporting.loan_standing s USING unnest(CAST(:loan_id AS uuid[]), CAST(:cut AS date[])) AS c(loan_id, cut)
WHERE s.loan_id = c.loan_id AND s.on >= c.cut
"""
STANDING_BEFORE_SQL = """
UPDATE reporting.loan_standing s SET valid_to = c.cut
FROM unnest(CAST(:loan_id AS uuid[]), CAST(:cut AS date[])) AS c(loan_id, cut)
WHERE s.loan_id = c.loan_id AND s.valid_to <> c.cut  -- already ending there: no new row version
  AND s.on = (SELECT max(b.on) FROM reporting.loan_standing b WHERE b.loan_id = c.loan_id AND b.on < c.cut)
"""
# each loan's standing from its cut on, as stored
STANDING_FROM_SQL = """
SELECT s.loan_id, s.on, s.outstanding_principal, s.overdue_from, s.status
FROM reporting.loan_standing s
JOIN unnest(CAST(:loan_id AS uuid[]), CAST(:cut AS date[])) AS c(loan_id, cut) ON s.loan_id = c.loan_id AND s.on >= c.cut
"""
STANDING_INSERT_SQL = """
INSERT INTO reporting.loan_standing (loan_id, "on", valid_to, outstanding_principal, overdue_from, status)
SELECT * FROM unnest(CAST(:loan_id AS uuid[]), CAST(:on AS date[]), CAST(:valid_to AS date[]),
                     CAST(:outstanding_principal AS numeric[]), CAST(:overdue_from AS date[]), CAST(:status AS text[]))
"""
_CONTRACTS: dict[str, type[LoanFactsV1]] = {
    "loan.opened": LoanOpenedV1,
    "loan.disbursed": LoanDisbursedV1,
    "loan.repayment_applied": RepaymentAppliedV1,
    "loan.recovery_received": RecoveryReceivedV1,
    "loan.repayment_reversed": RepaymentReversedV1,
    "loan.written_off": LoanWrittenOffV1,
}
EXTRAS = ("principal", "first_disbursed_on", "written_off_on", "written_off_principal")


class _Page:
    """What a run of loan events comes to, kept until `write`."""

    def __init__(self) -> None:
        self.loans: dict[uuid.UUID, dict[str, object]] = {}  # loan → its row: the last facts, the extras merged
        self.steps: dict[uuid.UUID, dict[date, StandingV1]] = {}  # loan → its standing from its cut on
        self.cuts: dict[uuid.UUID, date] = {}  # loan → the earliest date a standing of the page replaced from
        self.flows: dict[uuid.UUID, dict[str, object]] = {}  # transaction → its flow (the first one said wins)
        self.reversed: set[uuid.UUID] = set()
        self.businesses: set[uuid.UUID] = set()

    def takes(self, event: EventEnvelope) -> bool:
        """Whether the event composes with what is pending: a loan event, and not a flow whose transaction a
        reversal earlier in the page named (the reversal must not reach it)."""
        if not event.type.startswith("loan."):
            return False
        if event.type in ("loan.disbursed", "loan.repayment_applied", "loan.recovery_received"):
            return uuid.UUID(str(event.payload["transaction_id"])) not in self.reversed
        if event.type == "loan.written_off":
            return uuid.uuid5(uuid.UUID(str(event.payload["loan_id"])), "written_off") not in self.reversed
        return True

    def add(self, event: EventEnvelope) -> None:
        facts = event.parse(_CONTRACTS.get(event.type, LoanFactsV1))  # validated once, as its own type
        loan_id = facts.loan_id
        row = self.loans.setdefault(loan_id, dict.fromkeys(EXTRAS))
        row.update(loan_row(facts))
        if isinstance(facts, LoanOpenedV1):
            row["principal"] = Decimal(facts.principal)
        elif isinstance(facts, LoanDisbursedV1):
            disbursed = facts
            self._flow(flow_row(disbursed.transaction_id, loan_id, "disbursed", disbursed.value_date, disbursed.amount))
            first = row["first_disbursed_on"]
            row["first_disbursed_on"] = (
                min(first, disbursed.value_date) if isinstance(first, date) else disbursed.value_date
            )
            self.businesses.add(facts.business_id)
        elif isinstance(facts, PaymentV1):
            paid = facts
            kind = "repaid" if event.type == "loan.repayment_applied" else "recovered"
            allocation = paid.allocation
            self._flow(
                flow_row(
                    paid.transaction_id,
                    loan_id,
                    kind,
                    paid.value_date,
                    paid.amount,
                    principal=allocation.principal,
                    interest=allocation.interest,
                    recovered=allocation.recovered,
                )
            )
        elif isinstance(facts, RepaymentReversedV1):
            self.reversed.add(facts.transaction_id)
        elif isinstance(facts, LoanWrittenOffV1):
            written_off = facts
            row["written_off_on"] = written_off.value_date
            row["written_off_principal"] = Decimal(written_off.written_off_principal)
            amount = written_off.written_off_principal
            self._flow(
                flow_row(uuid.uuid5(loan_id, "written_off"), loan_id, "written_off", written_off.value_date, amount)
            )
        if facts.standing:
            # this event's steps replace the loan's from their first date on, those of the page's earlier events too
            new = {step.on: step for step in facts.standing}
            first = min(new)
            kept = {on: step for on, step in self.steps.get(loan_id, {}).items() if on < first}
            self.steps[loan_id] = kept | new
            self.cuts[loan_id] = min(self.cuts.get(loan_id, first), first)

    def _flow(self, row: dict[str, object]) -> None:
        transaction_id = row["transaction_id"]
        assert isinstance(transaction_id, uuid.UUID)
        self.flows.setdefault(transaction_id, row)  # the first one said wins

    async def write(self, session: AsyncSession) -> None:
        if not self.loans:
            return
        rows = list(self.loans.values())
        for loan_id, row in self.loans.items():
            # the loan's latest step (open-ended: every later one was replaced), copied on its row by the upsert
            steps = self.steps.get(loan_id) if loan_id in self.cuts else None
            latest = steps[max(steps)] if steps else None
            row["latest_on"] = latest.on if latest else None
            row["latest_outstanding"] = Decimal(latest.outstanding_principal) if latest else None
            row["latest_overdue_from"] = latest.overdue_from if latest else None
            row["latest_status"] = latest.status if latest else None
        await session.execute(text(UPSERT_LOANS_SQL), {c: [r[c] for r in rows] for c in rows[0]})
        await write_flows(session, list(self.flows.values()))  # after their loans: a flow's currency is its loan's
        await reverse_flows(session, self.reversed)
        if self.cuts:
            await self._leave_unchanged(session)
        if self.cuts:
            await self._write_standing(session)
        if self.businesses:
            await impact.refresh(session, self.businesses)
        if self.cuts:
            await impact.refresh_glp(session, self.cuts)
            by_day: dict[date, list[uuid.UUID]] = {}
            for loan_id, cut in self.cuts.items():
                by_day.setdefault(cut, []).append(loan_id)
            for cut, loan_ids in sorted(by_day.items()):
                await exposure.refresh(session, loans=loan_ids, from_day=cut)

    async def _leave_unchanged(self, session: AsyncSession) -> None:
        """Drops from the page's replacements the loans whose standing from their cut on is stored as the page says
        it (the same steps on the same dates: a repayment of interest only on a day the loan already had a step,
        say): rewriting the same rows, and recomputing the impact and exposure figures they feed, would change
        nothing."""
        cut_loans = list(self.cuts)
        stored: dict[uuid.UUID, dict[date, tuple[object, ...]]] = {}
        for row in await session.execute(
            text(STANDING_FROM_SQL), {"loan_id": cut_loans, "cut": [self.cuts[i] for i in cut_loans]}
        ):
            stored.setdefault(row.loan_id, {})[row.on] = (row.outstanding_principal, row.overdue_from, row.status)
        for loan_id in cut_loans:
            said = {
                on: (Decimal(step.outstanding_principal), step.overdue_from, step.status)
                for on, step in self.steps[loan_id].items()
            }
            if said == stored.get(loan_id):
                del self.cuts[loan_id]

    async def _write_standing(self, session: AsyncSession) -> None:
        cut_loans = list(self.cuts)
        cuts = {"loan_id": cut_loans, "cut": [self.cuts[loan_id] for loan_id in cut_loans]}
        await session.execute(text(STANDING_CLEAR_SQL), cuts)
        await session.execute(text(STANDING_BEFORE_SQL), cuts)
        columns: dict[str, list[object]] = {
            c: [] for c in ("loan_id", "on", "valid_to", "outstanding_principal", "overdue_from", "status")
        }
        for loan_id in cut_loans:
            steps = self.steps[loan_id]
            dates = sorted(steps)
            for i, on in enumerate(dates):
                step = steps[on]
                columns["loan_id"].append(loan_id)
                columns["on"].append(on)
                columns["valid_to"].append(dates[i + 1] if i + 1 < len(dates) else END)
                columns["outstanding_principal"].append(Decimal(step.outstanding_principal))
                columns["overdue_from"].append(step.overdue_from)
                columns["status"].append(step.status)
        await session.execute(text(STANDING_INSERT_SQL), columns)


async def on_portfolio_events(session: AsyncSession, events: list[EventEnvelope]) -> None:
    """The batch handler: the same rows as `on_portfolio_event` on each of `events` in order (see `_Page`)."""
    page = _Page()
    for event in events:
        if page.takes(event):
            page.add(event)
            continue
        if event.type == "fx.rate_recorded" or event.type.startswith("loan."):
            await page.write(session)
            page = _Page()
            if page.takes(event):  # a flow a reversal earlier in the page named: it starts the next run
                page.add(event)
            else:
                await on_portfolio_event(session, event)
    await page.write(session)


async def reset_portfolio(session: AsyncSession, from_position: int) -> None:
    await reset_tables(
        session,
        from_position,
        (*PORTFOLIO_TABLES, guarantee_month_ends, guarantee_month_end_totals, guarantee_standing),
    )
    await impact.rebuild(session)  # no loan left: no business financed


async def reset_tables(session: AsyncSession, from_position: int, tables: tuple[Table, ...]) -> None:
    """A read model built from dated replacements cannot be rolled back to the middle of the feed: it is rebuilt
    from the start (position 0), its tables emptied and every event applied again."""
    if from_position != 0:
        raise Conflict("the reporting read model is rebuilt from the start: replay from position 0")
    for table in tables:
        await session.execute(delete(table))


SUBSCRIPTION = Subscription(
    SPEC.name, SPEC.producer, SPEC.types, on_portfolio_event, reset_portfolio, batch_handler=on_portfolio_events
)
