"""The ledger as pure functions: buckets, and money conserved by allocation whatever the payments."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.portfolio.loans.ledger import Due, Entry, Kind, bucket, replay, restore, snapshot
from services.portfolio.schedules.generator import Frequency, Method, Terms, generate


@pytest.mark.parametrize(
    ("dpd", "name"),
    [
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "91-180"),
        (180, "91-180"),
        (181, "over-180"),
        (4000, "over-180"),
    ],
)
def test_aging_buckets(dpd: int, name: str) -> None:
    assert bucket(dpd) == name


def test_a_negative_days_past_due_is_a_bug() -> None:
    with pytest.raises(ValueError, match="negative"):
        bucket(-1)


SCHEDULE = [
    Due(i.number, i.due_date, i.principal, i.interest)
    for i in generate(
        Terms(Decimal("10000.00"), "CAD", Decimal("0.12"), 12, Frequency.monthly, Method.annuity, date(2025, 2, 15))
    )
]
DISBURSED = Entry(0, Kind.disbursement, Decimal("10000.00"), date(2025, 1, 15))

payments = st.lists(
    st.tuples(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("4000"), places=2),
        st.integers(min_value=0, max_value=500),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(payments, st.data())
def test_money_is_conserved_and_dropping_a_payment_is_replaying_without_it(
    paid: list[tuple[Decimal, int]], data: st.DataObject
) -> None:
    entries = [DISBURSED] + [
        Entry(i + 1, Kind.repayment, amount, date(2025, 1, 15) + timedelta(days=day))
        for i, (amount, day) in enumerate(paid)
    ]
    book = replay(SCHEDULE, entries)
    total_in = sum((amount for amount, _ in paid), Decimal(0))
    allocated = sum((a.total for a in book.allocations.values()), Decimal(0))
    assert allocated == total_in  # every cent is somewhere: charges, interest, principal or credit
    assert book.principal_paid + book.outstanding_principal == Decimal("10000.00")
    assert book.outstanding_principal >= 0 and book.credit >= 0
    assert book.credit == max(Decimal(0), total_in - Decimal("10661.86"))
    # a reversal is the book without that payment: the same as if it had never been made
    dropped = data.draw(st.integers(min_value=1, max_value=len(paid)))
    without = [e for e in entries if e.seq != dropped]
    again = replay(SCHEDULE, without)
    on = date(2026, 6, 1)
    assert again.days_past_due(on) >= book.days_past_due(on)
    assert again.outstanding_principal >= book.outstanding_principal


@settings(max_examples=200, deadline=None)
@given(payments, st.integers(min_value=0, max_value=25))
def test_continuing_from_a_snapshot_is_replaying_the_whole_history(paid: list[tuple[Decimal, int]], cut: int) -> None:
    entries = [
        DISBURSED,
        *sorted(
            (
                Entry(i + 1, Kind.repayment, amount, date(2025, 1, 15) + timedelta(days=day))
                for i, (amount, day) in enumerate(paid)
            ),
            key=lambda e: (e.value_date, e.seq),
        ),
    ]
    cut = min(cut, len(entries))
    resumed = restore(snapshot(replay(SCHEDULE, entries[:cut])))
    for entry in entries[cut:]:
        resumed.apply(entry)
    whole = replay(SCHEDULE, entries)
    assert snapshot(resumed) == snapshot(whole)
    assert resumed.days_past_due(date(2025, 9, 1)) == whole.days_past_due(date(2025, 9, 1))
