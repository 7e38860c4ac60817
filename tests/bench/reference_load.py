"""The reference load for the reports' benchmarks: 100,000 loans with their schedules and about 2 million
repayments, built by the fastest legitimate path.

1. Each loan's life is made with the portfolio's own pure functions: its schedule (`schedules.generator.generate`),
   its book (`loans.ledger.Book`, Fineract's allocation), and after every transaction in value-date order its
   standing (`ledger.standing_of`, what `Ledger.standing` announces for a change in value-date order). Borrowers
   pay on time, late (20-100 days), stop paying (defaults) or stop and are written off; several currencies with a
   daily FX history; businesses with dated impact facts; applications (approved, rejected, withdrawn, under
   review); guarantees on 40 % of the loans with claims on defaulted ones, the capital ledger, facilities.
2. Every event's payload is built exactly per its contract (`shared/contracts`), as the producers do.
3. The high-volume events (loans, businesses, applications: some 2.6 million) are folded into the rows the
   reporting handlers would write (`project`) and COPYed in; `tests/reporting/test_reference_load.py` proves on a
   sample, every behaviour included, that these rows equal what the handlers themselves write from the same
   events. The rest (guarantees, claims, capital, facilities, FX: some 60,000 events) go through the handlers.

`python -m tests.bench.reference_load` builds it in a scratch database and prints its size and time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from unittest import mock

from dateutil.relativedelta import relativedelta
from sqlalchemy import text

from services.portfolio.loans.ledger import Book, Due, Entry, Kind, Line, standing_of
from services.portfolio.schedules.generator import Frequency, Method, Terms, generate
from services.reporting.readmodel.applications import END_REPORTS_SQL, PERIODS_SQL
from services.reporting.readmodel.impact import REBUILD_SQL as IMPACT_REBUILD_SQL
from services.reporting.readmodel.portfolio import FLOW_DAYS_SQL, fund_region
from shared.events.contracts import EventEnvelope
from shared.money import format_amount

NOW = date(2026, 11, 27)  # the load's "today": the last value date of any transaction
FIRST = date(2021, 1, 1)  # the first disbursement
NAMESPACE = uuid.UUID("6f1d5c2e-0000-4000-8000-000000000000")
# country → currency, and a rough CAD value of one unit (to size the loans)
COUNTRIES = {
    "SN": "XOF",
    "ML": "XOF",
    "BF": "XOF",
    "CI": "XOF",
    "CM": "XAF",
    "HT": "HTG",
    "PE": "PEN",
    "BO": "BOB",
    "EC": "USD",
    "GT": "USD",
    "KH": "USD",
}
CAD_PER_UNIT = {"EUR": 1.50, "USD": 1.37, "HTG": 0.0104, "PEN": 0.36, "BOB": 0.198}
PEG = Decimal("655.957")
SECTORS = ("agriculture", "crafts", "services", "fishing", "processing", "retail")
LEGAL_FORMS = ("cooperative", "association", "mutual", "social_enterprise")
LENDERS = [uuid.uuid5(NAMESPACE, f"lender-{i}") for i in range(40)]
ICAS = [uuid.uuid5(NAMESPACE, f"ica-{i}") for i in range(25)]


def _id(kind: str, i: int, extra: str = "") -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}-{i}-{extra}")


PRODUCERS = {"loan": "portfolio", "fx_rate": "portfolio", "business": "applications", "application": "applications"}


@dataclass
class Event:
    """An event as the producer writes it, without the envelope's bookkeeping (`envelope()` adds it)."""

    type: str
    aggregate_type: str
    aggregate_id: str
    on: date  # occurred_at's UTC date
    payload: dict[str, Any]

    def envelope(self, seq: int) -> EventEnvelope:
        return EventEnvelope(
            event_id=uuid.uuid4(),
            type=self.type,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.aggregate_id,
            aggregate_seq=seq,
            occurred_at=datetime(self.on.year, self.on.month, self.on.day, 12, tzinfo=UTC),
            producer=PRODUCERS.get(self.aggregate_type, "guarantees"),
            payload=self.payload,
        )


# ------------------------------------------------------------------------------------------------ one loan
@dataclass
class LoanLife:
    """One loan's events, and what the guarantees side needs to know of it."""

    events: list[Event] = field(default_factory=list)
    business_events: list[Event] = field(default_factory=list)
    application_events: list[Event] = field(default_factory=list)
    loan_id: uuid.UUID | None = None
    lender_id: uuid.UUID | None = None
    business_id: uuid.UUID | None = None
    country: str = ""
    currency: str = ""
    principal: Decimal = Decimal(0)
    disbursed_on: date | None = None
    default_on: date | None = None  # 90 days after the oldest instalment left unpaid, when it stopped paying
    outstanding_at_default: Decimal = Decimal(0)
    guaranteed: bool = False


def _facts(rng: random.Random, reported_on: date, employees: int) -> dict[str, Any]:
    members = rng.randint(15, 800)
    board = rng.randint(3, 11)
    managers = rng.randint(1, 5)
    return {
        "reported_on": reported_on.isoformat(),
        "members_total": members,
        "members_women": rng.randint(0, members),
        "board_seats_total": board,
        "board_seats_women": rng.randint(0, board),
        "employees_total": employees,
        "employees_women": rng.randint(0, employees),
        "senior_managers_total": managers,
        "senior_managers_women": rng.randint(0, managers),
        "women_ownership_pct": rng.choice([None, rng.randint(0, 100)]),
        "general_assembly_last_12_months": rng.random() < 0.8,
        "board_elected_by_members": rng.random() < 0.85,
        "one_member_one_vote": rng.random() < 0.9,
        "environmental_practices": rng.sample(
            ["organic_farming", "reforestation", "water_management"], rng.randint(0, 2)
        ),
    }


def loan_life(i: int) -> LoanLife:
    """Loan number `i`: its business, its application, its schedule and every transaction until NOW."""
    rng = random.Random(i)
    life = LoanLife()
    country = rng.choice(list(COUNTRIES))
    currency = COUNTRIES[country]
    lender, ica = LENDERS[i % len(LENDERS)], ICAS[i % len(ICAS)]
    business = _id("business", i // 2 if i % 3 == 0 else i)  # a third of the borrowers take a second loan
    application, loan = _id("application", i), _id("loan", i)
    life.loan_id, life.lender_id, life.business_id, life.country, life.currency = (
        loan,
        lender,
        business,
        country,
        currency,
    )
    unit = CAD_PER_UNIT.get(currency, 1.50 / 655.957)
    cad_amount = rng.choice([5000, 8000, 12000, 20000, 30000, 50000, 80000, 120000])
    principal = Decimal(format_amount(Decimal(cad_amount / unit), currency))
    life.principal = principal
    term = rng.choice([12, 24, 24, 36, 36])
    disbursed_on = FIRST + timedelta(days=rng.randint(0, (NOW - FIRST).days - 60))
    life.disbursed_on = disbursed_on
    submitted_on = disbursed_on - timedelta(days=rng.randint(20, 60))
    approved_on = submitted_on + timedelta(days=rng.randint(5, 18))
    opened_on = approved_on

    # the business, as its ICA registered it, and a later yearly report
    snapshot = {
        "business_id": str(business),
        "ica_id": str(ica),
        "name": f"business {business.hex[:8]}",
        "legal_form": LEGAL_FORMS[business.int % len(LEGAL_FORMS)],
        "country": country,
        "sector": SECTORS[business.int % len(SECTORS)],
        "year_founded": 2005 + business.int % 15,
    }
    brng = random.Random(business.int)
    employees = brng.randint(2, 60)
    baseline = {**snapshot, "facts": _facts(brng, submitted_on - timedelta(days=10), employees)}
    life.business_events.append(Event("business.registered", "business", str(business), submitted_on, baseline))
    later = submitted_on + timedelta(days=365)
    if later <= NOW:
        update = {**snapshot, "facts": _facts(brng, later, max(0, employees + brng.randint(-3, 8)))}
        life.business_events.append(Event("business.updated", "business", str(business), later, update))

    # the application: submitted, screened, approved
    moved = {"application_id": str(application), "ica_id": str(ica), "business_id": str(business), "comment": None}
    asked = {"amount": format_amount(principal, currency), "currency": currency, "term_months": term}
    life.application_events += [
        Event(
            "application.submitted",
            "application",
            str(application),
            submitted_on,
            moved
            | {"from_status": "draft", "to_status": "submitted"}
            | asked
            | {"purpose": "equipment", "instruments": ["co_financing"], "lender_id": str(lender)},
        ),
        Event(
            "application.screened",
            "application",
            str(application),
            submitted_on,
            moved
            | {"from_status": "screening", "to_status": "under_review", "passed": True, "policy_version": 1}
            | {"criteria": []},
        ),
        Event(
            "application.approved",
            "application",
            str(application),
            approved_on,
            moved
            | {"from_status": "committee", "to_status": "approved", "policy_version": 1, "business": baseline}
            | {
                "terms": asked
                | {
                    "instruments": ["co_financing"],
                    "lender_id": str(lender),
                    "fund_share_pct": "40",
                    "guarantee_coverage_pct": None,
                    "conditions": [],
                }
            },
        ),
    ]

    # the loan: schedule by the portfolio's generator, book by its ledger
    terms = Terms(
        principal=principal,
        currency=currency,
        annual_rate=Decimal(rng.choice(["0.08", "0.10", "0.12", "0.14"])),
        term_months=term,
        frequency=Frequency.monthly,
        method=rng.choice([Method.annuity, Method.annuity, Method.equal_principal, Method.flat]),
        first_due_date=disbursed_on + relativedelta(months=1),
        grace_periods=rng.choice([0, 0, 0, 2]),
    )
    schedule = [Due(s.number, s.due_date, s.principal, s.interest) for s in generate(terms)]
    book = Book(lines=[Line(d) for d in schedule])
    shares = {"fund": Decimal("0.40"), "lender": Decimal("0.60")}
    facts = {
        "loan_id": str(loan),
        "application_id": str(application),
        "lender_id": str(lender),
        "business_id": str(business),
        "ica_id": str(ica),
        "country": country,
        "currency": currency,
    }

    def split(amount: Decimal) -> dict[str, str]:
        fund = (amount * shares["fund"]).quantize(Decimal(1).scaleb(-_minor(currency)), rounding=ROUND_HALF_EVEN)
        return {"fund": format_amount(fund, currency), "lender": format_amount(amount - fund, currency)}

    def announce(event_type: str, on: date, seq: int, standing: bool = True, **extra: Any) -> None:
        step = standing_of(book, on)
        status = step.status
        steps = []
        if standing:
            steps = [
                {
                    "on": step.on.isoformat(),
                    "outstanding_principal": format_amount(step.outstanding_principal, currency),
                    "overdue_from": step.overdue_from.isoformat() if step.overdue_from else None,
                    "status": step.status,
                }
            ]
        payload = facts | {
            "outstanding_principal": format_amount(book.outstanding_principal, currency),
            "status": status,
            "standing": steps,
        }
        life.events.append(Event(event_type, "loan", str(loan), on, payload | extra))

    announce(
        "loan.opened",
        opened_on,
        0,
        standing=False,
        principal=format_amount(principal, currency),
        term_months=term,
        instruments=["co_financing"],
        guarantee_coverage_pct=None,
        shares={"fund": "40", "lender": "60"},
    )
    seq = 1
    book.apply(Entry(seq, Kind.disbursement, principal, disbursed_on))
    announce(
        "loan.disbursed",
        disbursed_on,
        seq,
        transaction_id=str(_id("txn", i, "0")),
        amount=format_amount(principal, currency),
        value_date=disbursed_on.isoformat(),
        split=split(principal),
        disbursed_total=format_amount(principal, currency),
        schedule_version=1,
    )
    behaviour = rng.random()
    stop_after = len(schedule)
    delay = 0
    if behaviour < 0.15:  # a late payer
        delay = rng.randint(20, 100)
    elif behaviour < 0.27:  # stops paying
        stop_after = rng.randint(0, max(0, len(schedule) - 2))
        delay = rng.randint(0, 10)
    else:
        delay = rng.randint(-3, 5)
    written_off_on: date | None = None
    for n, due in enumerate(schedule):
        if n >= stop_after:
            life.default_on = due.due_date + timedelta(days=90)
            if behaviour < 0.20:  # these are written off 6 months after the default
                written_off_on = due.due_date + timedelta(days=270)
            break
        paid_on = max(disbursed_on, due.due_date + timedelta(days=delay + rng.randint(0, 5)))
        if paid_on > NOW:
            break
        seq += 1
        amount = due.principal + due.interest
        allocation = book.apply(Entry(seq, Kind.repayment, amount, paid_on))
        assert allocation is not None
        announce(
            "loan.repayment_applied",
            paid_on,
            seq,
            transaction_id=str(_id("txn", i, str(seq))),
            external_id=f"T{i}-{seq}",
            amount=format_amount(amount, currency),
            value_date=paid_on.isoformat(),
            allocation={
                name: format_amount(getattr(allocation, name), currency)
                for name in ("penalties", "fees", "interest", "principal", "credit", "recovered")
            },
            split=split(amount),
        )
        if book.fully_paid:
            announce("loan.repaid", paid_on, seq, standing=False, value_date=paid_on.isoformat())
    if life.default_on is not None:
        life.outstanding_at_default = book.outstanding_principal
    if written_off_on is not None and written_off_on <= NOW:
        seq += 1
        book.apply(Entry(seq, Kind.write_off, Decimal(0), written_off_on))
        announce(
            "loan.written_off",
            written_off_on,
            seq,
            value_date=written_off_on.isoformat(),
            written_off_principal=format_amount(book.written_off_principal, currency),
            reason="the cooperative stopped trading",
        )
    life.guaranteed = rng.random() < 0.40
    return life


def _minor(currency: str) -> int:
    return 0 if currency in ("XOF", "XAF") else 2


def other_applications(i: int) -> list[Event]:
    """Applications that did not become loans: rejected at screening or in committee, withdrawn, under review."""
    rng = random.Random(-i - 1)
    application, ica = _id("other-application", i), ICAS[i % len(ICAS)]
    business = _id("business", rng.randrange(0, 100_000))
    on = FIRST + timedelta(days=rng.randint(0, (NOW - FIRST).days))
    moved = {"application_id": str(application), "ica_id": str(ica), "business_id": str(business), "comment": None}
    submitted = Event(
        "application.submitted",
        "application",
        str(application),
        on,
        moved
        | {"from_status": "draft", "to_status": "submitted", "amount": "20000.00", "currency": "USD"}
        | {"term_months": 24, "purpose": "equipment", "instruments": ["co_financing"]}
        | {"lender_id": str(LENDERS[i % len(LENDERS)])},
    )
    fate = rng.random()
    if fate < 0.35:
        return [
            submitted,
            Event(
                "application.screened",
                "application",
                str(application),
                on,
                moved
                | {"from_status": "screening", "to_status": "rejected", "passed": False, "policy_version": 1}
                | {"criteria": []},
            ),
            Event(
                "application.rejected",
                "application",
                str(application),
                on,
                moved | {"from_status": "screening", "to_status": "rejected", "reasons": ["too young"]},
            ),
        ]
    screened = Event(
        "application.screened",
        "application",
        str(application),
        on,
        moved
        | {"from_status": "screening", "to_status": "under_review", "passed": True, "policy_version": 1}
        | {"criteria": []},
    )
    later = min(NOW, on + timedelta(days=rng.randint(3, 40)))
    if fate < 0.6:
        return [
            submitted,
            screened,
            Event(
                "application.withdrawn",
                "application",
                str(application),
                later,
                moved | {"from_status": "under_review", "to_status": "withdrawn"},
            ),
        ]
    if fate < 0.85:
        return [
            submitted,
            screened,
            Event(
                "application.rejected",
                "application",
                str(application),
                later,
                moved | {"from_status": "committee", "to_status": "rejected", "reasons": ["not viable"]},
            ),
        ]
    return [submitted, screened]


# -------------------------------------------------------------------------- the guarantees side and FX rates
def fx_events() -> list[Event]:
    """A closing rate every weekday from FIRST − 30 days to NOW, a slow random walk per currency."""
    rng = random.Random(7)
    found = []
    for currency, start in CAD_PER_UNIT.items():
        value, day = start, FIRST - timedelta(days=30)
        while day <= NOW:
            if day.weekday() < 5:
                value *= 1 + rng.uniform(-0.004, 0.004)
                payload = {
                    "currency": currency,
                    "rate_date": day.isoformat(),
                    "cad_per_unit": format(Decimal(value).quantize(Decimal("1e-6")), "f"),
                    "source": "BoC",
                }
                found.append(Event("fx.rate_recorded", "fx_rate", str(_id("fx", 0, currency)), day, payload))
            day += timedelta(days=1)
    return found


def guarantee_events(lives: list[LoanLife]) -> list[Event]:
    """Facilities (one per lender), capital contributions, a guarantee on each guaranteed loan (50 %, cap 60,000
    CAD) issued at its disbursement, a claim filed and paid on each guaranteed loan that defaulted."""
    found = [
        Event(
            "facility.terms_set",
            "facility",
            str(_id("facility", n)),
            FIRST - timedelta(days=60),
            {
                "facility_id": str(_id("facility", n)),
                "lender_id": str(lender),
                "version": 1,
                "coverage_pct": "50.00",
                "ceiling_cad": "6000000.00",
                "max_cover_per_loan_cad": "60000.00",
                "valid_from": (FIRST - timedelta(days=60)).isoformat(),
                "valid_to": "2030-12-31",
            },
        )
        for n, lender in enumerate(LENDERS)
    ]
    for year in range(2021, 2027):
        entry = _id("capital", year)
        on = date(year, 1, 1) - timedelta(days=31)
        payload = {
            "entry_id": str(entry),
            "kind": "contribution",
            "amount_cad": "20000000.00",
            "value_date": on.isoformat(),
        }
        found.append(Event("capital.entry_recorded", "capital_entry", str(entry), on, payload))
    for n, life in enumerate(lives):
        if not life.guaranteed:
            continue
        assert life.loan_id and life.lender_id and life.business_id and life.disbursed_on
        guarantee = _id("guarantee", n)
        rate = Decimal(str(CAD_PER_UNIT.get(life.currency, 1.5 / 655.957)))
        at_issue = min((life.principal * rate / 2).quantize(Decimal("0.01")), Decimal("60000.00"))
        facts = {
            "guarantee_id": str(guarantee),
            "loan_id": str(life.loan_id),
            "lender_id": str(life.lender_id),
            "business_id": str(life.business_id),
            "country": life.country,
            "currency": life.currency,
            "coverage_pct": "50.00",
            "cap_cad": "60000.00",
            "outstanding_principal": format_amount(life.principal, life.currency),
            "status": "active",
        }
        found.append(
            Event(
                "guarantee.issued",
                "guarantee",
                str(guarantee),
                life.disbursed_on,
                facts
                | {
                    "facility_id": str(_id("facility", LENDERS.index(life.lender_id))),
                    "facility_version": 1,
                    "policy_version": 1,
                    "exposure_cad_at_issue": format(at_issue, "f"),
                },
            )
        )
        if life.default_on is not None and life.default_on + timedelta(days=60) <= NOW:
            claim = _id("claim", n)
            payout = min((life.outstanding_at_default * rate / 2).quantize(Decimal("0.01")), Decimal("60000.00"))
            filed_on, paid_on = life.default_on + timedelta(days=20), life.default_on + timedelta(days=50)
            claim_facts = {
                "claim_id": str(claim),
                "guarantee_id": str(guarantee),
                "loan_id": str(life.loan_id),
                "lender_id": str(life.lender_id),
                "payout_cad": format(payout, "f"),
                "actor": "bench",
            }
            found += [
                Event(
                    "claim.filed",
                    "claim",
                    str(claim),
                    filed_on,
                    claim_facts
                    | {"status": "filed", "default_date": life.default_on.isoformat()}
                    | {"amount_in_default": format_amount(life.outstanding_at_default, life.currency)}
                    | {"currency": life.currency},
                ),
                Event(
                    "claim.paid",
                    "claim",
                    str(claim),
                    paid_on,
                    claim_facts | {"status": "paid", "paid_on": str(paid_on)},
                ),
                Event(
                    "capital.entry_recorded",
                    "capital_entry",
                    str(_id("capital-claim", n)),
                    paid_on,
                    {
                        "entry_id": str(_id("capital-claim", n)),
                        "kind": "claim_paid",
                        "amount_cad": format(-payout, "f"),
                        "value_date": paid_on.isoformat(),
                    },
                ),
            ]
    return found


# ------------------------------------------------------------------ the rows the reporting handlers write
@dataclass
class Rows:
    loans: list[tuple[Any, ...]] = field(default_factory=list)
    loan_standing: list[tuple[Any, ...]] = field(default_factory=list)
    loan_flows: list[tuple[Any, ...]] = field(default_factory=list)
    businesses: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)
    business_facts: dict[tuple[uuid.UUID, date], tuple[Any, ...]] = field(default_factory=dict)
    applications: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)
    application_moves: list[tuple[Any, ...]] = field(default_factory=list)


LOAN_COLUMNS = (
    "loan_id",
    "application_id",
    "lender_id",
    "business_id",
    "ica_id",
    "country",
    "region",
    "currency",
    "principal",
    "status",
    "first_disbursed_on",
    "written_off_on",
    "written_off_principal",
    "latest_on",
    "latest_outstanding",
    "latest_overdue_from",
    "latest_status",
)
STANDING_COLUMNS = ("loan_id", "on", "valid_to", "outstanding_principal", "overdue_from", "status")
FLOW_COLUMNS = (
    "transaction_id",
    "loan_id",
    "kind",
    "value_date",
    "amount",
    "principal",
    "interest",
    "recovered",
    "reversed",
)
BUSINESS_COLUMNS = ("business_id", "ica_id", "name", "legal_form", "country", "region", "sector", "year_founded")
FACT_COLUMNS = (
    "business_id",
    "reported_on",
    "members_total",
    "members_women",
    "board_seats_total",
    "board_seats_women",
    "employees_total",
    "employees_women",
    "senior_managers_total",
    "senior_managers_women",
    "women_ownership_pct",
    "general_assembly_last_12_months",
    "board_elected_by_members",
    "one_member_one_vote",
    "environmental_practices",
)
APPLICATION_COLUMNS = ("application_id", "ica_id", "business_id", "lender_id", "amount", "currency")
MOVE_COLUMNS = ("event_id", "application_id", "seq", "on", "from_status", "to_status")
END = date(9999, 12, 31)


def project_loan(events: list[Event], rows: Rows) -> None:
    """What `readmodel.portfolio.on_portfolio_event` writes for one loan's events, in order (the loan row upserted,
    each standing replacing the rows from its first date on, each flow once)."""
    loan: dict[str, Any] = {}
    standing: dict[date, tuple[Decimal, date | None, str]] = {}
    for event in events:
        p = event.payload
        loan.update(
            loan_id=uuid.UUID(p["loan_id"]),
            application_id=uuid.UUID(p["application_id"]),
            lender_id=uuid.UUID(p["lender_id"]),
            business_id=uuid.UUID(p["business_id"]),
            ica_id=uuid.UUID(p["ica_id"]),
            country=p["country"],
            region=fund_region(p["country"]),
            currency=p["currency"],
            status=p["status"],
        )
        if event.type == "loan.opened":
            loan["principal"] = Decimal(p["principal"])
        elif event.type == "loan.disbursed":
            value_date = date.fromisoformat(p["value_date"])
            first = loan.get("first_disbursed_on")
            loan["first_disbursed_on"] = min(first, value_date) if first else value_date
            amount = Decimal(p["amount"])
            rows.loan_flows.append(
                (
                    uuid.UUID(p["transaction_id"]),
                    loan["loan_id"],
                    "disbursed",
                    value_date,
                    amount,
                    amount,
                    Decimal(0),
                    Decimal(0),
                    False,
                )
            )
        elif event.type in ("loan.repayment_applied", "loan.recovery_received"):
            a = p["allocation"]
            rows.loan_flows.append(
                (
                    uuid.UUID(p["transaction_id"]),
                    loan["loan_id"],
                    "repaid" if event.type == "loan.repayment_applied" else "recovered",
                    date.fromisoformat(p["value_date"]),
                    Decimal(p["amount"]),
                    Decimal(a["principal"]),
                    Decimal(a["interest"]),
                    Decimal(a["recovered"]),
                    False,
                )
            )
        elif event.type == "loan.written_off":
            value_date, amount = date.fromisoformat(p["value_date"]), Decimal(p["written_off_principal"])
            loan["written_off_on"], loan["written_off_principal"] = value_date, amount
            rows.loan_flows.append(
                (
                    uuid.uuid5(loan["loan_id"], "written_off"),
                    loan["loan_id"],
                    "written_off",
                    value_date,
                    amount,
                    amount,
                    Decimal(0),
                    Decimal(0),
                    False,
                )
            )
        steps = {date.fromisoformat(s["on"]): s for s in p.get("standing", [])}
        if steps:
            first_new = min(steps)
            standing = {on: v for on, v in standing.items() if on < first_new}
            for on, s in steps.items():
                overdue = date.fromisoformat(s["overdue_from"]) if s["overdue_from"] else None
                standing[on] = (Decimal(s["outstanding_principal"]), overdue, s["status"])
    dates = sorted(standing)
    if dates:  # its latest step's copy on the loan (`readmodel.portfolio`)
        loan["latest_on"] = dates[-1]
        loan["latest_outstanding"], loan["latest_overdue_from"], loan["latest_status"] = standing[dates[-1]]
    rows.loans.append(tuple(loan.get(c) for c in LOAN_COLUMNS))
    for n, on in enumerate(dates):
        outstanding, overdue, status = standing[on]
        valid_to = dates[n + 1] if n + 1 < len(dates) else END
        rows.loan_standing.append((loan["loan_id"], on, valid_to, outstanding, overdue, status))


def project_business(event: Event, rows: Rows) -> None:
    """`readmodel.applications.keep_business`: the latest snapshot, each dated report (same date: replaced)."""
    p = event.payload
    business = uuid.UUID(p["business_id"])
    rows.businesses[business] = (
        business,
        uuid.UUID(p["ica_id"]),
        p["name"],
        p["legal_form"],
        p["country"],
        fund_region(p["country"]),
        p["sector"],
        p["year_founded"],
    )
    f = p["facts"]
    reported_on = date.fromisoformat(f["reported_on"])
    rows.business_facts[(business, reported_on)] = (business, reported_on, *tuple(f[c] for c in FACT_COLUMNS[2:]))


def project_application(event: Event, seq: int, event_id: uuid.UUID, rows: Rows) -> None:
    """`readmodel.applications.on_applications_event` for an application's move."""
    p = event.payload
    application = uuid.UUID(p["application_id"])
    known = rows.applications.get(application, (application, None, None, None, None, None))
    ica, business = uuid.UUID(p["ica_id"]), uuid.UUID(p["business_id"])
    lender, amount, currency = known[3], known[4], known[5]
    if event.type == "application.submitted":
        lender, amount, currency = uuid.UUID(p["lender_id"]), Decimal(p["amount"]), p["currency"]
    elif event.type == "application.approved":
        t = p["terms"]
        lender, amount, currency = uuid.UUID(t["lender_id"]), Decimal(t["amount"]), t["currency"]
        project_business(
            Event("business.updated", "business", p["business"]["business_id"], event.on, p["business"]), rows
        )
    rows.applications[application] = (application, ica, business, lender, amount, currency)
    rows.application_moves.append((event_id, application, seq, event.on, p["from_status"], p["to_status"]))


def build(first: int, count: int) -> tuple[Rows, list[LoanLife]]:
    """Loans `first` .. `first + count - 1` as read-model rows (and what the guarantees side needs of them)."""
    rows = Rows()
    lives = []
    for i in range(first, first + count):
        life = loan_life(i)
        project_loan(life.events, rows)
        for event in life.business_events:
            project_business(event, rows)
        for seq, event in enumerate(life.application_events, 1):
            project_application(event, seq, uuid.uuid4(), rows)
        life.events = life.business_events = life.application_events = []  # the rows hold them now
        lives.append(life)
    return rows, lives


def build_others(first: int, count: int) -> Rows:
    rows = Rows()
    for i in range(first, first + count):
        for seq, event in enumerate(other_applications(i), 1):
            project_application(event, seq, uuid.uuid4(), rows)
    return rows


# -------------------------------------------------------------------------------------------- loading
async def copy_rows(connection: Any, rows: Rows) -> dict[str, int]:
    """COPY the rows in (asyncpg connection). Businesses and their facts are upserted (a business financed twice
    comes in two chunks), as the handler does."""
    await connection.copy_records_to_table("loans", schema_name="reporting", columns=LOAN_COLUMNS, records=rows.loans)
    await connection.copy_records_to_table(
        "loan_standing", schema_name="reporting", columns=STANDING_COLUMNS, records=rows.loan_standing
    )
    await connection.copy_records_to_table(
        "loan_flows", schema_name="reporting", columns=FLOW_COLUMNS, records=rows.loan_flows
    )
    await connection.copy_records_to_table(
        "application_moves", schema_name="reporting", columns=MOVE_COLUMNS, records=rows.application_moves
    )
    for table, columns, records, key in (
        ("businesses", BUSINESS_COLUMNS, list(rows.businesses.values()), "business_id"),
        ("business_facts", FACT_COLUMNS, list(rows.business_facts.values()), "business_id, reported_on"),
        ("applications", APPLICATION_COLUMNS, list(rows.applications.values()), "application_id"),
    ):
        await connection.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS load_{table} (LIKE reporting.{table} INCLUDING DEFAULTS)"
        )
        await connection.execute(f"TRUNCATE load_{table}")
        await connection.copy_records_to_table(f"load_{table}", columns=columns, records=records)
        names = ", ".join(f'"{c}"' for c in columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in key.split(", "))
        await connection.execute(
            f"INSERT INTO reporting.{table} ({names}) SELECT {names} FROM load_{table}"  # noqa: S608 - fixed names
            f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )
    # each report in force until the next one, each business's earliest (`readmodel.applications.END_REPORTS_SQL`)
    await connection.execute(END_REPORTS_SQL.replace(":ids", "$1"), list(rows.businesses))
    # each move's end and each application's first submission and decision (`readmodel.applications.PERIODS_SQL`)
    await connection.execute(PERIODS_SQL.replace(":ids", "$1"), list({move[1] for move in rows.application_moves}))
    return {
        "loans": len(rows.loans),
        "loan_standing": len(rows.loan_standing),
        "loan_flows": len(rows.loan_flows),
        "application_moves": len(rows.application_moves),
    }


async def derive_rows(connection: Any) -> None:
    """Once every chunk is in: the rows the handlers derive over many loans at once, each day's flows per currency
    (`readmodel.portfolio.FLOW_DAYS_SQL`, over every date) and the impact totals by date (`readmodel.impact`, every
    business)."""
    await connection.execute(FLOW_DAYS_SQL.replace("f.value_date = ANY(:days) AND ", ""))
    for sql in IMPACT_REBUILD_SQL:
        await connection.execute(sql)


async def apply_through_handlers(session: Any, events: list[Event]) -> None:
    """The events through the projections' own handlers, in one transaction; the month-end exposures
    (`readmodel.exposure`) recomputed once for every guarantee at the end rather than refreshed by each event:
    the same rows (tests/reporting/test_preaggregates.py checks the refreshes against a full recomputation), and
    each refresh inside this one long transaction would scan the month ends written so far (no statistics yet),
    some 0.5 s an event by the end."""
    from services.reporting.readmodel import exposure
    from services.reporting.readmodel.guarantees import on_guarantees_event
    from services.reporting.readmodel.portfolio import on_portfolio_event

    async def later(*_args: Any, **_kwargs: Any) -> None:
        return None

    seqs: dict[str, int] = {}
    recompute = exposure.refresh
    with mock.patch.object(exposure, "refresh", later), mock.patch.object(exposure, "refresh_for_rate", later):
        for event in events:
            seqs[event.aggregate_id] = seqs.get(event.aggregate_id, 0) + 1
            envelope = event.envelope(seqs[event.aggregate_id])
            handler = on_portfolio_event if event.type.startswith("fx.") else on_guarantees_event
            await handler(session, envelope)
    await session.execute(text("ANALYZE reporting.guarantees"))
    await session.execute(text("ANALYZE reporting.claims"))
    await session.execute(text("ANALYZE reporting.fx_rates"))
    await recompute(session, everyone=True)


def _chunk(args: tuple[int, int]) -> tuple[Rows, list[LoanLife]]:
    return build(*args)


def _other_chunk(args: tuple[int, int]) -> Rows:
    return build_others(*args)


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(0, total, size):
        yield first, min(size, total - first)


async def load(
    url: str, loans: int = 100_000, other_applications_count: int = 30_000, workers: int = 2
) -> dict[str, Any]:
    """Build the reference load into the (migrated, empty) database at `url`; answers its size and time."""
    import asyncpg

    from shared.db import create_engine, make_sessionmaker
    from shared.events.outbox import asyncpg_dsn

    started = time.perf_counter()
    sizes: dict[str, int] = {}
    lives: list[LoanLife] = []
    connection = await asyncpg.connect(**asyncpg_dsn(url))
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for rows, chunk_lives in pool.imap(_chunk, chunks(loans, 2000)):
                async with connection.transaction():
                    for name, n in (await copy_rows(connection, rows)).items():
                        sizes[name] = sizes.get(name, 0) + n
                lives += chunk_lives
            for rows in pool.imap(_other_chunk, chunks(other_applications_count, 5000)):
                rows_other = rows
                async with connection.transaction():
                    sizes["application_moves"] += (await copy_rows(connection, rows_other))["application_moves"]
        await derive_rows(connection)
        sizes["businesses"] = int(await connection.fetchval("SELECT count(*) FROM reporting.businesses"))
        sizes["business_facts"] = int(await connection.fetchval("SELECT count(*) FROM reporting.business_facts"))
        sizes["applications"] = int(await connection.fetchval("SELECT count(*) FROM reporting.applications"))
    finally:
        await connection.close()
    engine = create_engine(url, pool_size=1, max_overflow=0)
    others = fx_events() + guarantee_events(lives)
    async with make_sessionmaker(engine)() as session:
        await apply_through_handlers(session, others)
        await session.commit()
    await engine.dispose()
    sizes["handled_events"] = len(others)
    connection = await asyncpg.connect(**asyncpg_dsn(url))
    try:
        sizes["repayments"] = int(
            await connection.fetchval("SELECT count(*) FROM reporting.loan_flows WHERE kind = 'repaid'")
        )
        sizes["guarantees"] = int(await connection.fetchval("SELECT count(*) FROM reporting.guarantees"))
        sizes["claims"] = int(await connection.fetchval("SELECT count(*) FROM reporting.claims"))
        sizes["fx_rates"] = int(await connection.fetchval("SELECT count(*) FROM reporting.fx_rates"))
        # what autovacuum does after a load: statistics, and the visibility map the index-only scans need
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return {"sizes": sizes, "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    import sys

    from tests.bench.harness import scratch_database

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with scratch_database() as database_url:
        print(asyncio.run(load(database_url, loans=count, other_applications_count=count * 3 // 10)))
