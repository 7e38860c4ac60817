"""The demo's plan: the counts the issue asks for, every state at any scale, determinism, exact repayments."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest

from deploy.demo.__main__ import parse
from deploy.demo.data import COUNTRIES_BY_CURRENCY, CURRENCY_OF
from deploy.demo.plan import (
    FATE_COUNTS,
    Behaviour,
    Fate,
    Instalment,
    LoanPlan,
    make_plan,
    payments,
    split_amount,
)

TODAY = date(2026, 11, 28)


def test_full_scale_has_the_counts_the_issue_asks_for() -> None:
    plan = make_plan(seed=1, scale=1.0, today=TODAY)
    assert len(plan.icas) == 30 and len(plan.businesses) == 300 and len(plan.applications) == 400
    assert len(plan.loans) == 250 and len(plan.lenders) == 20
    assert {b.country for b in plan.businesses} == set(CURRENCY_OF) and len(CURRENCY_OF) == 25
    assert {spec.currency for spec in plan.lenders} == set(COUNTRIES_BY_CURRENCY) and len(COUNTRIES_BY_CURRENCY) == 8
    assert Counter(a.fate for a in plan.applications) == FATE_COUNTS
    behaviours = Counter(a.loan.behaviour for a in plan.loans if a.loan)
    assert behaviours[Behaviour.restructured] == 1 and behaviours[Behaviour.late] > 30
    assert sum(n for b, n in behaviours.items() if b.written_off) >= 3
    # three years of history: the oldest disbursement, and FX rates before it (XOF comes from EUR, not the CSV)
    oldest = min(a.loan.disbursed_on for a in plan.loans if a.loan)
    assert TODAY - oldest > timedelta(days=3 * 365 - 60)
    first_rate = date.fromisoformat(plan.fx_csv.splitlines()[1].split(",")[0])
    assert first_rate < oldest and "XOF" not in plan.fx_csv and set(plan.latest_rates) >= set(COUNTRIES_BY_CURRENCY)


def test_every_state_and_every_special_case_survives_a_tiny_scale() -> None:
    plan = make_plan(seed=1, scale=0.02, today=TODAY)
    assert {a.fate for a in plan.applications} == set(Fate)
    behaviours = {a.loan.behaviour for a in plan.loans if a.loan}
    assert {Behaviour.restructured, Behaviour.claim_paid_written_off, Behaviour.expired} <= behaviours
    assert len(plan.applications) < 40


def test_the_same_seed_gives_the_same_dataset() -> None:
    first, again = make_plan(seed=7, scale=0.3, today=TODAY), make_plan(seed=7, scale=0.3, today=TODAY)
    assert first == again
    assert make_plan(seed=8, scale=0.3, today=TODAY).applications != first.applications


def test_guaranteed_defaults_fall_inside_the_claim_window() -> None:
    plan = make_plan(seed=3, scale=1.0, today=TODAY)
    for a in plan.loans:
        assert a.loan is not None
        if a.loan.behaviour.claims:
            assert "guarantee" in a.instruments and a.loan.stop_target is not None
            # the trigger (90 days) is reached, and the deadline (12 months after the default) is not past
            assert TODAY - timedelta(days=300) < a.loan.stop_target < TODAY - timedelta(days=120)
        if a.loan.behaviour is Behaviour.expired:
            assert a.loan.stop_target is not None and a.loan.stop_target < TODAY - timedelta(days=90 + 366 + 31)


def schedule(start: date, n: int, amount: str) -> list[Instalment]:
    return [Instalment(k, start + timedelta(days=30 * k), Decimal(amount)) for k in range(1, n + 1)]


def loan(behaviour: Behaviour, disbursed: date, stop: date | None = None) -> LoanPlan:
    return LoanPlan(behaviour, disbursed, 10, "monthly", "annuity", 0, None, stop, None)


def test_an_on_time_borrower_pays_every_instalment_due_exactly() -> None:
    start = TODAY - timedelta(days=400)
    lines = schedule(start, 24, "104941")
    paid = payments(loan(Behaviour.on_time, start), lines, "XOF", TODAY, random.Random(1))
    due = [i for i in lines if i.due_date <= TODAY]
    assert sum(p.amount for p in paid) == sum(i.total_due for i in due)
    assert all(p.value_date <= TODAY for p in paid) and paid == sorted(paid, key=lambda p: p.value_date)


def test_a_late_borrower_pays_later_in_exact_parts_and_a_defaulter_stops() -> None:
    start = TODAY - timedelta(days=700)
    lines = schedule(start, 36, "1250.55")
    late = payments(loan(Behaviour.late, start), lines, "USD", TODAY, random.Random(2))
    assert all(p.amount == p.amount.quantize(Decimal("0.01")) and p.amount > 0 for p in late)
    assert sum(p.amount for p in late) <= sum(i.total_due for i in lines if i.due_date <= TODAY)
    assert late[0].value_date > lines[0].due_date
    stop = TODAY - timedelta(days=200)
    stopped = payments(loan(Behaviour.defaulted, start, stop), lines, "USD", TODAY, random.Random(3))
    assert max(p.value_date for p in stopped) < stop + timedelta(days=31 + 20)


def test_split_amount_is_exact_in_the_currency_units() -> None:
    assert split_amount(Decimal("1001"), "XOF", 0.5) == (Decimal(500), Decimal(501))
    first, rest = split_amount(Decimal("0.02"), "USD", 0.99)
    assert first + rest == Decimal("0.02") and first > 0 and rest > 0


def test_the_command_needs_an_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FISIQ_ADMIN_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BOOTSTRAP_ADMIN_KEY", raising=False)
    with pytest.raises(SystemExit):
        parse([])
    assert parse(["--admin-key", "fsk_x", "--scale", "0.1"]).scale == 0.1
