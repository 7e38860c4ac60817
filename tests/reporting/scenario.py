"""The fixed scenario the reporting tests compute by hand: four loans, three currencies (one with no rate), four
businesses with dated impact facts, seven applications — crafted exactly as the producers' contracts say.

Loans (DPD as of D = D − overdue_from when overdue_from < D):
  A  SN XOF  lender L1, ICA I1, business B1   20,000 EUR worth (13,119,140 XOF), disbursed 2026-01-15
       02-15 paid to 11,807,226 (18,000 EUR), next due 03-15 unpaid;  07-10 paid to 10,495,312 (16,000 EUR),
       oldest unpaid then due 05-15
  B  HT HTG  lender L2, ICA I2, business B2   1,000,000.00 HTG disbursed 2026-02-01, first due 03-01 never paid
  C  PE USD  lender L1, ICA I1, business B3   50,000.00 USD disbursed 2026-01-10, paid monthly to 35,000.00 on
       04-10 (next due 05-10 unpaid), written off 2026-08-31
  D  SN XOF  lender L2, ICA I2, business B4   opened 03-20, 6,559,570 XOF (10,000 EUR) disbursed 04-01, first
       due 07-01, repaid in full 09-15
Rates: EUR 1.45, USD 1.30 (01-01); EUR 1.50 (03-31), 1.60 (06-30), none on 09-30 (stale); USD 1.35, 1.40, 1.38; HTG never (missing).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shared.events.contracts import EventEnvelope

D1, D2, D3 = date(2026, 3, 31), date(2026, 6, 30), date(2026, 9, 30)
L1, L2 = uuid.UUID(int=0xA1), uuid.UUID(int=0xA2)
I1, I2 = uuid.UUID(int=0xB1), uuid.UUID(int=0xB2)
B1, B2, B3, B4 = (uuid.UUID(int=0xC0 + i) for i in range(1, 5))
LOAN_A, LOAN_B, LOAN_C, LOAN_D = (uuid.UUID(int=0xD0 + i) for i in range(1, 5))
APPS = [uuid.UUID(int=0xE0 + i) for i in range(1, 8)]

_seq: dict[str, int] = {}


def envelope(event_type: str, aggregate_type: str, aggregate_id: uuid.UUID, payload: dict[str, Any], at: date) -> Any:
    key = f"{aggregate_type}:{aggregate_id}"
    _seq[key] = _seq.get(key, 0) + 1
    return EventEnvelope(
        event_id=uuid.uuid4(),
        type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        aggregate_seq=_seq[key],
        occurred_at=datetime(at.year, at.month, at.day, 15, 0, tzinfo=UTC),
        producer=event_type.split(".")[0] if aggregate_type != "loan" else "portfolio",
        payload=payload,
    )


LOANS: dict[uuid.UUID, dict[str, Any]] = {
    LOAN_A: {"lender": L1, "ica": I1, "business": B1, "country": "SN", "currency": "XOF"},
    LOAN_B: {"lender": L2, "ica": I2, "business": B2, "country": "HT", "currency": "HTG"},
    LOAN_C: {"lender": L1, "ica": I1, "business": B3, "country": "PE", "currency": "USD"},
    LOAN_D: {"lender": L2, "ica": I2, "business": B4, "country": "SN", "currency": "XOF"},
}


def step(on: str, outstanding: str, overdue_from: str | None, status: str = "active") -> dict[str, Any]:
    return {"on": on, "outstanding_principal": outstanding, "overdue_from": overdue_from, "status": status}


def loan_event(
    event_type: str, loan: uuid.UUID, at: str, standing: list[dict[str, Any]], status: str = "active", **extra: Any
) -> EventEnvelope:
    spec = LOANS[loan]
    payload = {
        "loan_id": str(loan),
        "application_id": str(uuid.UUID(int=loan.int + 0x100)),
        "lender_id": str(spec["lender"]),
        "business_id": str(spec["business"]),
        "ica_id": str(spec["ica"]),
        "country": spec["country"],
        "currency": spec["currency"],
        "outstanding_principal": standing[-1]["outstanding_principal"] if standing else "0",
        "status": status,
        "standing": standing,
        **extra,
    }
    envelope_: EventEnvelope = envelope(event_type, "loan", loan, payload, date.fromisoformat(at))
    return envelope_


def opened(loan: uuid.UUID, at: str, principal: str) -> EventEnvelope:
    return loan_event(
        "loan.opened",
        loan,
        at,
        [step(at, "0", None, "pending_disbursement")],
        status="pending_disbursement",
        principal=principal,
        term_months=24,
        instruments=["co_financing"],
        guarantee_coverage_pct=None,
        shares={"lender": "100"},
    )


def disbursed(loan: uuid.UUID, at: str, amount: str, first_due: str) -> EventEnvelope:
    return loan_event(
        "loan.disbursed",
        loan,
        at,
        [step(at, amount, first_due)],
        transaction_id=str(uuid.uuid4()),
        amount=amount,
        value_date=at,
        split={"lender": amount},
        disbursed_total=amount,
        schedule_version=1,
    )


def paid(principal: str, interest: str) -> dict[str, str]:
    """A repayment's allocation, as its event says it: interest and principal, nothing else."""
    return {
        "penalties": "0",
        "fees": "0",
        "interest": interest,
        "principal": principal,
        "credit": "0",
        "recovered": "0",
    }


def repaid(
    loan: uuid.UUID, at: str, principal: str, interest: str, outstanding: str, overdue_from: str | None, status: str
) -> EventEnvelope:
    total = str(Decimal(principal) + Decimal(interest))
    return loan_event(
        "loan.repayment_applied",
        loan,
        at,
        [step(at, outstanding, overdue_from, status)],
        status=status,
        transaction_id=str(uuid.uuid4()),
        external_id=None,
        amount=total,
        value_date=at,
        allocation=paid(principal, interest),
        split={"lender": total},
    )


def rate(currency: str, on: date, cad_per_unit: str) -> EventEnvelope:
    payload = {"currency": currency, "rate_date": on.isoformat(), "cad_per_unit": cad_per_unit, "source": "BoC"}
    return envelope("fx.rate_recorded", "fx_rate", uuid.uuid5(uuid.NAMESPACE_URL, currency), payload, on)


def reversal(loan: uuid.UUID, repayment: EventEnvelope, reason: str) -> EventEnvelope:
    """The reversal of an earlier repayment of `loan` (it undoes that transaction, same value date)."""
    return loan_event(
        "loan.repayment_reversed",
        loan,
        repayment.payload["value_date"],
        [],
        transaction_id=repayment.payload["transaction_id"],
        kind="repayment",
        amount=repayment.payload["amount"],
        value_date=repayment.payload["value_date"],
        reason=reason,
    )


def portfolio_events() -> list[EventEnvelope]:
    """In feed order. A's repayment of 07-10 comes last, so a test can look at D2 before and after it."""
    return [
        rate("EUR", date(2026, 1, 1), "1.45"),
        rate("USD", date(2026, 1, 1), "1.30"),
        rate("EUR", D1, "1.50"),
        rate("USD", D1, "1.35"),
        opened(LOAN_C, "2026-01-05", "50000.00"),
        disbursed(LOAN_C, "2026-01-10", "50000.00", "2026-02-10"),
        opened(LOAN_A, "2026-01-10", "13119140"),
        disbursed(LOAN_A, "2026-01-15", "13119140", "2026-02-15"),
        opened(LOAN_B, "2026-01-20", "1000000.00"),
        disbursed(LOAN_B, "2026-02-01", "1000000.00", "2026-03-01"),
        repaid(LOAN_C, "2026-02-10", "5000.00", "500.00", "45000.00", "2026-03-10", "active"),
        repaid(LOAN_A, "2026-02-15", "1311914", "131191", "11807226", "2026-03-15", "active"),
        repaid(LOAN_C, "2026-03-10", "5000.00", "450.00", "40000.00", "2026-04-10", "active"),
        opened(LOAN_D, "2026-03-20", "6559570"),
        disbursed(LOAN_D, "2026-04-01", "6559570", "2026-07-01"),
        repaid(LOAN_C, "2026-04-10", "5000.00", "400.00", "35000.00", "2026-05-10", "active"),
        rate("EUR", D2, "1.60"),
        rate("USD", D2, "1.40"),
        loan_event(
            "loan.written_off",
            LOAN_C,
            "2026-08-31",
            [step("2026-08-31", "0", None, "written_off")],
            status="written_off",
            value_date="2026-08-31",
            written_off_principal="35000.00",
            reason="the cooperative stopped trading",
        ),
        repaid(LOAN_D, "2026-09-15", "6559570", "0", "0", None, "repaid"),
        loan_event("loan.repaid", LOAN_D, "2026-09-15", [], status="repaid", value_date="2026-09-15"),
        rate("USD", D3, "1.38"),
        # paid late: 2 instalments (03-15, 04-15) on 07-10; the oldest unpaid is now due 05-15
        repaid(LOAN_A, "2026-07-10", "1311914", "200000", "10495312", "2026-05-15", "active"),
    ]


def facts(reported_on: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "reported_on": reported_on,
        "members_total": 0,
        "members_women": 0,
        "board_seats_total": 0,
        "board_seats_women": 0,
        "employees_total": 0,
        "employees_women": 0,
        "senior_managers_total": 0,
        "senior_managers_women": 0,
        "women_ownership_pct": None,
        "general_assembly_last_12_months": True,
        "board_elected_by_members": True,
        "one_member_one_vote": True,
        "environmental_practices": [],
    }
    return base | overrides


BUSINESSES: dict[uuid.UUID, dict[str, Any]] = {
    B1: {"ica": I1, "country": "SN", "legal_form": "cooperative", "sector": "agriculture"},
    B2: {"ica": I2, "country": "HT", "legal_form": "association", "sector": "crafts"},
    B3: {"ica": I1, "country": "PE", "legal_form": "cooperative", "sector": "agriculture"},
    B4: {"ica": I2, "country": "SN", "legal_form": "cooperative", "sector": "services"},
}


def business(event_type: str, business_id: uuid.UUID, business_facts: dict[str, Any]) -> EventEnvelope:
    spec = BUSINESSES[business_id]
    payload = {
        "business_id": str(business_id),
        "ica_id": str(spec["ica"]),
        "name": f"business {business_id.int:x}",
        "legal_form": spec["legal_form"],
        "country": spec["country"],
        "sector": spec["sector"],
        "year_founded": 2015,
        "facts": business_facts,
    }
    return envelope(event_type, "business", business_id, payload, date.fromisoformat(business_facts["reported_on"]))


B1_2025 = facts(
    "2025-12-01",
    members_total=120,
    members_women=70,
    board_seats_total=7,
    board_seats_women=4,
    employees_total=10,
    employees_women=4,
    senior_managers_total=2,
    senior_managers_women=1,
    women_ownership_pct=58,
    environmental_practices=["organic_farming"],
)
B1_2026 = B1_2025 | {
    "reported_on": "2026-05-01",
    "members_total": 130,
    "members_women": 75,
    "employees_total": 14,
    "employees_women": 6,
}
B2_2026 = facts(
    "2026-01-10",
    members_total=40,
    members_women=10,
    board_seats_total=5,
    board_seats_women=1,
    employees_total=6,
    employees_women=2,
    senior_managers_total=2,
    board_elected_by_members=False,
)
B3_2025 = facts(
    "2025-11-01",
    members_total=300,
    members_women=90,
    board_seats_total=9,
    board_seats_women=3,
    employees_total=20,
    employees_women=5,
    senior_managers_total=3,
    women_ownership_pct=30,
    environmental_practices=["reforestation", "water_management"],
)
B3_2026 = B3_2025 | {"reported_on": "2026-07-01", "employees_total": 18}
B4_2026 = facts(
    "2026-03-01",
    members_total=60,
    members_women=20,
    board_seats_total=6,
    board_seats_women=1,
    employees_total=8,
    employees_women=3,
    senior_managers_total=2,
    women_ownership_pct=20,
    general_assembly_last_12_months=False,
)


def application_event(
    event_type: str, app: int, at: str, from_status: str | None, to_status: str, **extra: Any
) -> EventEnvelope:
    """Applications 1..7: odd ones by ICA I1 (lender L1), even ones by I2 (L2)."""
    ica, lender = (I1, L1) if app % 2 else (I2, L2)
    business_id = {1: B1, 2: B2, 3: B3, 4: B4, 5: B1, 6: B2, 7: B3}[app]
    payload = {
        "application_id": str(APPS[app - 1]),
        "ica_id": str(ica),
        "business_id": str(business_id),
        "from_status": from_status,
        "to_status": to_status,
        **extra,
    }
    if event_type == "application.submitted":
        payload |= {
            "amount": "20000.00",
            "currency": "USD",
            "term_months": 24,
            "purpose": "equipment",
            "instruments": ["co_financing"],
            "lender_id": str(lender),
        }
    return envelope(event_type, "application", APPS[app - 1], payload, date.fromisoformat(at))


def approved(app: int, at: str, from_status: str, snapshot: dict[str, Any]) -> EventEnvelope:
    lender = L1 if app % 2 else L2
    terms = {
        "amount": "20000.00",
        "currency": "USD",
        "term_months": 24,
        "instruments": ["co_financing"],
        "lender_id": str(lender),
        "fund_share_pct": "40",
        "guarantee_coverage_pct": None,
        "conditions": [],
    }
    return application_event(
        "application.approved", app, at, from_status, "approved", terms=terms, policy_version=1, business=snapshot
    )


def applications_events() -> list[EventEnvelope]:
    """Decisions (days from first submission): app1 20 approved, app2 20 approved, app3 30 approved,
    app4 42 approved (returned once), app5 10 rejected; app6 withdrawn; app7 still under review."""
    b1 = business("business.registered", B1, B1_2025)
    b3 = business("business.registered", B3, B3_2025)
    return [
        b3,
        application_event("application.submitted", 3, "2025-11-01", "draft", "submitted"),
        b1,
        application_event("application.submitted", 1, "2025-12-01", "draft", "submitted"),
        approved(3, "2025-12-01", "committee", b3.payload),
        approved(1, "2025-12-21", "committee", b1.payload),
        application_event("application.submitted", 2, "2026-01-05", "draft", "submitted"),
        business("business.registered", B2, B2_2026),
        approved(2, "2026-01-25", "committee", business("business.updated", B2, B2_2026).payload),
        application_event("application.submitted", 4, "2026-02-01", "draft", "submitted"),
        application_event("application.returned", 4, "2026-02-10", "screening", "returned"),
        application_event("application.submitted", 4, "2026-02-20", "returned", "submitted"),
        business("business.registered", B4, B4_2026),
        approved(4, "2026-03-15", "committee", business("business.updated", B4, B4_2026).payload),
        application_event("application.submitted", 5, "2026-04-01", "draft", "submitted"),
        application_event("application.rejected", 5, "2026-04-11", "screening", "rejected", reasons=["too young"]),
        business("business.updated", B1, B1_2026),
        application_event("application.submitted", 6, "2026-05-01", "draft", "submitted"),
        application_event("application.withdrawn", 6, "2026-05-05", "submitted", "withdrawn"),
        application_event("application.submitted", 7, "2026-06-01", "draft", "submitted"),
        application_event(
            "application.screened",
            7,
            "2026-06-02",
            "submitted",
            "under_review",
            passed=True,
            policy_version=1,
            criteria=[],
        ),
        business("business.updated", B3, B3_2026),
    ]


G_A, G_C, G_D = uuid.UUID(int=0xF1), uuid.UUID(int=0xF3), uuid.UUID(int=0xF4)
CLAIM_C = uuid.UUID(int=0xF5)


def guarantee_event(event_type: str, guarantee: uuid.UUID, loan: uuid.UUID, at: str, **extra: Any) -> EventEnvelope:
    spec = LOANS[loan]
    coverage, cap = {G_A: ("50.00", "12000.00"), G_C: ("60.00", "50000.00"), G_D: ("50.00", "100000.00")}[guarantee]
    payload = {
        "guarantee_id": str(guarantee),
        "loan_id": str(loan),
        "lender_id": str(spec["lender"]),
        "business_id": str(spec["business"]),
        "country": spec["country"],
        "currency": spec["currency"],
        "coverage_pct": coverage,
        "cap_cad": cap,
        "outstanding_principal": "0",
        "status": "active",
        **extra,
    }
    return envelope(event_type, "guarantee", guarantee, payload, date.fromisoformat(at))


def issued(guarantee: uuid.UUID, loan: uuid.UUID, at: str, exposure: str) -> EventEnvelope:
    return guarantee_event(
        "guarantee.issued",
        guarantee,
        loan,
        at,
        facility_id=str(uuid.uuid4()),
        facility_version=1,
        policy_version=1,
        exposure_cad_at_issue=exposure,
    )


def claim_event(event_type: str, at: str, status: str, **extra: Any) -> EventEnvelope:
    payload = {
        "claim_id": str(CLAIM_C),
        "guarantee_id": str(G_C),
        "loan_id": str(LOAN_C),
        "lender_id": str(L1),
        "status": status,
        "payout_cad": "29400.00",
        "actor": "someone@fund",
        **extra,
    }
    return envelope(event_type, "claim", CLAIM_C, payload, date.fromisoformat(at))


def capital(kind: str, amount: str, on: str) -> EventEnvelope:
    entry = uuid.uuid4()
    payload = {"entry_id": str(entry), "kind": kind, "amount_cad": amount, "value_date": on}
    return envelope("capital.entry_recorded", "capital_entry", entry, payload, date.fromisoformat(on))


def guarantees_events() -> list[EventEnvelope]:
    """G_A on A: 50 %, cap 12,000.00, issued 01-15 (at issue min(0.5 × 29,000, 12,000) = 12,000.00); G_C on C:
    60 %, cap 50,000.00, issued 01-10 (0.6 × 65,000 = 39,000.00), claim filed 07-20 and paid 08-20 (29,400.00 =
    0.6 × 35,000 USD × 1.40), 3,000.00 recovered 09-10; G_D on D: 50 %, issued 04-01 (0.5 × 15,000 = 7,500.00),
    released when D is repaid. Capital: 100,000.00 on 01-01, − 29,400.00 on 08-20, + 3,000.00 on 09-10."""
    return [
        capital("contribution", "100000.00", "2026-01-01"),
        issued(G_C, LOAN_C, "2026-01-10", "39000.00"),
        issued(G_A, LOAN_A, "2026-01-15", "12000.00"),
        issued(G_D, LOAN_D, "2026-04-01", "7500.00"),
        guarantee_event("guarantee.exposure_changed", G_C, LOAN_C, "2026-04-10", previous_outstanding="40000.00"),
        claim_event(
            "claim.filed",
            "2026-07-20",
            "filed",
            default_date="2026-07-10",
            amount_in_default="35000.00",
            currency="USD",
        ),
        claim_event("claim.validated", "2026-08-01", "validated"),
        claim_event("claim.paid", "2026-08-20", "paid", paid_on="2026-08-20"),
        guarantee_event(
            "guarantee.exposure_changed", G_C, LOAN_C, "2026-08-20", status="paid", previous_outstanding="0"
        ),
        capital("claim_paid", "-29400.00", "2026-08-20"),
        envelope(
            "recovery.shared",
            "claim",
            CLAIM_C,
            {
                "claim_id": str(CLAIM_C),
                "guarantee_id": str(G_C),
                "loan_id": str(LOAN_C),
                "amount": "5000.00",
                "currency": "USD",
                "value_date": "2026-09-10",
                "fund_share_cad": "3000.00",
                "recouped_cad": "3000.00",
                "payout_cad": "29400.00",
            },
            date(2026, 9, 10),
        ),
        capital("recovery", "3000.00", "2026-09-10"),
        guarantee_event("guarantee.released", G_D, LOAN_D, "2026-09-15", status="released"),
    ]
