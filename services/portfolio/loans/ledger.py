"""A loan's books as a pure function of its schedule and its transactions (DOMAIN.md, Portfolio).

The state of a loan on date D is never read from a running total that could drift: it is recomputed by replaying
every transaction with a value date on or before D (reversed ones excluded) against the schedule version in force
on D. So a reversal restores the exact prior state by construction, a backdated repayment lands where it belongs,
and "how did this loan stand on D" has one answer.

Allocation (Fineract's default order): oldest instalment first; within it penalties → fees → interest →
principal; an excess pays the next instalments in order; beyond the whole loan it is held as a credit.

Days past due on D: D − the due date of the oldest instalment with unpaid principal or interest whose due date is
before D (a due date of D itself is not yet overdue); 0 when there is none.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

ZERO = Decimal(0)


class Kind(StrEnum):
    disbursement = "disbursement"
    repayment = "repayment"
    recovery = "recovery"
    fee = "fee"  # a fee charged on an instalment
    penalty = "penalty"  # a penalty charged on an instalment
    write_off = "write_off"


PAYMENTS = frozenset({Kind.repayment, Kind.recovery})


class Due(NamedTuple):
    """One instalment of a schedule version (a named tuple, not a frozen dataclass: a loan's book restores dozens of
    them for each push that touches it, and a frozen dataclass sets each field through `object.__setattr__`)."""

    number: int
    due_date: date
    principal: Decimal
    interest: Decimal


@dataclass(frozen=True)
class Entry:
    """A transaction as the ledger sees it. `seq` orders entries of the same value date (recording order)."""

    seq: int
    kind: Kind
    amount: Decimal
    value_date: date
    instalment: int | None = None  # for fees and penalties: the instalment they are charged on


@dataclass(frozen=True)
class Allocation:
    penalties: Decimal = ZERO
    fees: Decimal = ZERO
    interest: Decimal = ZERO
    principal: Decimal = ZERO
    credit: Decimal = ZERO  # the overpayment beyond the whole loan
    recovered: Decimal = ZERO  # money in after a write-off: recovers what was written off

    @property
    def total(self) -> Decimal:
        return self.penalties + self.fees + self.interest + self.principal + self.credit + self.recovered


@dataclass(slots=True)
class Line:
    """An instalment with what has been charged and paid on it."""

    due: Due
    fees: Decimal = ZERO
    penalties: Decimal = ZERO
    paid_principal: Decimal = ZERO
    paid_interest: Decimal = ZERO
    paid_fees: Decimal = ZERO
    paid_penalties: Decimal = ZERO
    paid_on: date | None = None  # the value date that completed it

    @property
    def unpaid_principal(self) -> Decimal:
        return self.due.principal - self.paid_principal

    @property
    def unpaid_interest(self) -> Decimal:
        return self.due.interest - self.paid_interest

    @property
    def unpaid_fees(self) -> Decimal:
        return self.fees - self.paid_fees

    @property
    def unpaid_penalties(self) -> Decimal:
        return self.penalties - self.paid_penalties

    @property
    def unpaid(self) -> Decimal:
        return self.unpaid_principal + self.unpaid_interest + self.unpaid_fees + self.unpaid_penalties

    @property
    def settled(self) -> bool:
        return self.unpaid == 0

    def pay(self, amount: Decimal) -> tuple[Decimal, Allocation]:
        """Pays what it can in penalties → fees → interest → principal order; answers the rest and the parts."""
        parts = []
        for unpaid in (self.unpaid_penalties, self.unpaid_fees, self.unpaid_interest, self.unpaid_principal):
            take = min(amount, unpaid)
            parts.append(take)
            amount -= take
        self.paid_penalties += parts[0]
        self.paid_fees += parts[1]
        self.paid_interest += parts[2]
        self.paid_principal += parts[3]
        return amount, Allocation(penalties=parts[0], fees=parts[1], interest=parts[2], principal=parts[3])


@dataclass
class Book:
    """The loan's state after replaying entries in (value date, seq) order."""

    lines: list[Line]
    disbursed: Decimal = ZERO
    credit: Decimal = ZERO
    written_off_principal: Decimal = ZERO
    written_off_on: date | None = None
    recovered_after_write_off: Decimal = ZERO
    last_value_date: date | None = None
    first_disbursed_on: date | None = None
    allocations: dict[int, Allocation] = field(default_factory=dict)
    # the sum of the lines' paid principal, kept until `apply` pays a line (read several times a change, over every
    # instalment of the schedule)
    _principal_paid: Decimal | None = field(default=None, repr=False, compare=False)

    @property
    def principal_paid(self) -> Decimal:
        if self._principal_paid is None:
            self._principal_paid = sum((line.paid_principal for line in self.lines), ZERO)
        return self._principal_paid

    @property
    def interest_paid(self) -> Decimal:
        return sum((line.paid_interest for line in self.lines), ZERO)

    @property
    def outstanding_principal(self) -> Decimal:
        """Disbursed principal not yet repaid nor written off (past due and future alike)."""
        return self.disbursed - self.principal_paid - self.written_off_principal

    @property
    def fully_paid(self) -> bool:
        return self.disbursed > 0 and self.written_off_on is None and all(line.settled for line in self.lines)

    def overdue(self, on: date) -> list[Line]:
        """Instalments due before `on` with principal or interest unpaid."""
        return [
            line
            for line in self.lines
            if line.due.due_date < on and (line.unpaid_principal > 0 or line.unpaid_interest > 0)
        ]

    def days_past_due(self, on: date) -> int:
        if self.written_off_on is not None and self.written_off_on <= on:
            # a written-off loan's arrears stop growing at the write-off: it left the portfolio that day
            on = self.written_off_on
        late = self.overdue(on)
        return (on - late[0].due.due_date).days if late else 0

    def apply(self, entry: Entry) -> Allocation | None:
        self._principal_paid = None  # a payment pays lines
        if self.last_value_date is None or entry.value_date > self.last_value_date:
            self.last_value_date = entry.value_date
        if entry.kind == Kind.disbursement:
            if self.first_disbursed_on is None or entry.value_date < self.first_disbursed_on:
                self.first_disbursed_on = entry.value_date
            self.disbursed += entry.amount
            return None
        if entry.kind in (Kind.fee, Kind.penalty):
            line = self._line(entry.instalment)
            if entry.kind == Kind.fee:
                line.fees += entry.amount
            else:
                line.penalties += entry.amount
            return None
        if entry.kind == Kind.write_off:
            self.written_off_principal = self.disbursed - self.principal_paid
            self.written_off_on = entry.value_date
            return None
        assert entry.kind in PAYMENTS
        if self.written_off_on is not None:
            # after a write-off, money in is a recovery of what was written off; the schedule is closed
            self.recovered_after_write_off += entry.amount
            allocation = Allocation(recovered=entry.amount)
            self.allocations[entry.seq] = allocation
            return allocation
        rest, totals = entry.amount, Allocation()
        for line in self.lines:
            if rest == 0:
                break
            if line.settled:
                continue
            rest, part = line.pay(rest)
            if line.settled:
                line.paid_on = entry.value_date
            totals = Allocation(
                penalties=totals.penalties + part.penalties,
                fees=totals.fees + part.fees,
                interest=totals.interest + part.interest,
                principal=totals.principal + part.principal,
            )
        allocation = Allocation(totals.penalties, totals.fees, totals.interest, totals.principal, credit=rest)
        self.credit += rest
        self.allocations[entry.seq] = allocation
        return allocation

    def _line(self, number: int | None) -> Line:
        for line in self.lines:
            if line.due.number == number:
                return line
        raise ValueError(f"no instalment {number}")


def snapshot(book: Book) -> dict[str, Any]:
    """The book as JSON, its schedule included, to continue from without reading the schedule or replaying the
    history (the allocations of past payments are not kept: the transactions have them)."""

    def day(value: date | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "disbursed": str(book.disbursed),
        "credit": str(book.credit),
        "written_off_principal": str(book.written_off_principal),
        "written_off_on": day(book.written_off_on),
        "recovered": str(book.recovered_after_write_off),
        "last_value_date": day(book.last_value_date),
        "first_disbursed_on": day(book.first_disbursed_on),
        "lines": [
            [
                line.due.number,
                line.due.due_date.isoformat(),
                str(line.due.principal),
                str(line.due.interest),
                str(line.fees),
                str(line.penalties),
                str(line.paid_principal),
                str(line.paid_interest),
                str(line.paid_fees),
                str(line.paid_penalties),
                day(line.paid_on),
            ]
            for line in book.lines
        ],
    }


def restore(data: dict[str, Any]) -> Book:
    """The book a snapshot describes, schedule included."""
    if len(_DECIMALS) >= _INTERNED_AT_MOST:
        _DECIMALS.clear()
    if len(_DAYS) >= _INTERNED_AT_MOST:
        _DAYS.clear()
    amount, day = _DECIMALS, _DAYS
    lines = [
        Line(
            Due(row[0], day[row[1]], amount[row[2]], amount[row[3]]),
            amount[row[4]],
            amount[row[5]],
            amount[row[6]],
            amount[row[7]],
            amount[row[8]],
            amount[row[9]],
            day[row[10]] if row[10] else None,
        )
        for row in data["lines"]
    ]
    return Book(
        lines=lines,
        disbursed=amount[data["disbursed"]],
        credit=amount[data["credit"]],
        written_off_principal=amount[data["written_off_principal"]],
        written_off_on=_day(data["written_off_on"]),
        recovered_after_write_off=amount[data["recovered"]],
        last_value_date=_day(data["last_value_date"]),
        first_disbursed_on=_day(data["first_disbursed_on"]),
    )


class _Interned(dict[str, Any]):
    """Values parsed from their text once, looked up after (a miss parses and keeps it)."""

    def __init__(self, parse: Callable[[str], Any]) -> None:
        super().__init__()
        self.parse = parse

    def __missing__(self, text: str) -> Any:
        value = self[text] = self.parse(text)
        return value


# Restoring a book is on the path of every item of a lender's push: the same texts (zeros, a schedule's instalments
# and due dates) are parsed once and their values shared, which is safe as Decimals and dates are immutable.
_DECIMALS = _Interned(Decimal)
_DAYS = _Interned(date.fromisoformat)
_INTERNED_AT_MOST = 100_000


def _day(text: str | None) -> date | None:
    return _DAYS[text] if text else None


def replay(schedule: Sequence[Due], entries: Iterable[Entry], *, on: date | None = None) -> Book:
    """The book after every entry with a value date on or before `on` (all of them when `on` is None)."""
    book = Book(lines=[Line(due) for due in sorted(schedule, key=lambda d: d.number)])
    for entry in sorted(entries, key=lambda e: (e.value_date, e.seq)):
        if on is None or entry.value_date <= on:
            book.apply(entry)
    return book


@dataclass(frozen=True)
class Standing:
    """How a loan stood from `on` until its next transaction (`shared.contracts.portfolio.StandingV1`)."""

    on: date
    outstanding_principal: Decimal
    overdue_from: date | None  # due date of the oldest instalment with principal or interest unpaid, due or not
    status: str


def standing_of(book: Book, on: date) -> Standing:
    """The standing of a book holding every entry with a value date on or before `on`, and none after."""
    unpaid = next((line for line in book.lines if line.unpaid_principal > 0 or line.unpaid_interest > 0), None)
    if book.written_off_on is not None:
        status = "written_off"
    elif book.disbursed == 0:
        status = "pending_disbursement"
    elif book.fully_paid:
        status = "repaid"
    else:
        status = "active"
    return Standing(on, book.outstanding_principal, unpaid.due.due_date if unpaid else None, status)


def standings(schedule: Sequence[Due], entries: Iterable[Entry], *, since: date) -> list[Standing]:
    """The loan's standing on `since`, then at each later value date: what changed from `since` on."""
    book = Book(lines=[Line(due) for due in sorted(schedule, key=lambda d: d.number)])
    steps: list[Standing] = []
    for value_date, group in itertools.groupby(
        sorted(entries, key=lambda e: (e.value_date, e.seq)), key=lambda e: e.value_date
    ):
        if value_date > since and not steps:
            steps.append(standing_of(book, since))
        for entry in group:
            book.apply(entry)
        if value_date >= since:
            steps.append(standing_of(book, value_date))
    if not steps:
        steps.append(standing_of(book, since))
    return steps


BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("current", 0, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("over-180", 181, None),
)


def bucket(dpd: int) -> str:
    """The arrears aging bucket of a number of days past due."""
    for name, low, high in BUCKETS:
        if dpd >= low and (high is None or dpd <= high):
            return name
    raise ValueError(f"days past due cannot be negative: {dpd}")
