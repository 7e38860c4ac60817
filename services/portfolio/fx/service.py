"""FX rates (DOMAIN.md, Money): a dated table of CAD per unit. Stocks convert at the closing rate of their as-of
date, flows at the rate of their own date; a missing rate falls back to the latest earlier one (and says it is
stale); a currency with no rate at all is reported as such, never counted as zero. XOF and XAF are pegged at
655.957 per EUR, so they derive exactly from the EUR rate and are never entered themselves. Each rate recorded is
announced (`fx.rate_recorded`), for the reports' read models."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.portfolio.db import events as event_tables
from services.portfolio.fx.models import FxRate
from shared.contracts.portfolio import FxRateRecordedV1
from shared.events.outbox import publish
from shared.money import PEGGED_TO_EUR, minor_units, round_money
from shared.problems import Conflict, UnprocessableContent


@dataclass(frozen=True)
class Rate:
    currency: str
    cad_per_unit: Decimal
    rate_date: date
    stale: bool
    source: str


def check_rate(currency: str, cad_per_unit: Decimal) -> None:
    if currency == "CAD":
        raise ValueError("CAD is the reporting currency: its rate is 1")
    if currency in PEGGED_TO_EUR:
        raise ValueError(f"{currency} derives from the EUR rate at the fixed peg of {PEGGED_TO_EUR[currency]} per EUR")
    minor_units(currency)
    if not cad_per_unit.is_finite() or cad_per_unit <= 0:
        raise ValueError("cad_per_unit must be a positive number")


async def record_rate(
    session: AsyncSession,
    *,
    currency: str,
    rate_date: date,
    cad_per_unit: Decimal,
    source: str,
    actor: uuid.UUID | None,
) -> tuple[FxRate, bool]:
    """Answers the rate and whether it is new. The same rate again is a no-op; a different one for the same day
    is a 409 (history is not overwritten)."""
    inserted = await session.scalar(
        insert(FxRate)
        .values(currency=currency, rate_date=rate_date, cad_per_unit=cad_per_unit, source=source, recorded_by=actor)
        .on_conflict_do_nothing(constraint="uq_fx_rates_currency_date")
        .returning(FxRate.id)
    )
    existing = await session.scalar(select(FxRate).where(FxRate.currency == currency, FxRate.rate_date == rate_date))
    assert existing is not None
    if inserted is None and existing.cad_per_unit != cad_per_unit:
        raise Conflict(
            f"a different {currency} rate is already recorded for {rate_date}: {existing.cad_per_unit}",
            slug="fx-rate-exists",
            recorded=format(existing.cad_per_unit.normalize(), "f"),
        )
    if inserted is not None:
        await publish(
            session,
            event_tables,
            event_type="fx.rate_recorded",
            aggregate_type="fx_rate",
            aggregate_id=currency,
            payload=FxRateRecordedV1(
                currency=currency,
                rate_date=rate_date,
                cad_per_unit=format(cad_per_unit.normalize(), "f"),
                source=source,
            ),
        )
    return existing, inserted is not None


async def rate_on(session: AsyncSession, currency: str, on: date) -> Rate | None:
    """The closing rate of `on`, else the latest earlier one (stale); None when the currency has none."""
    if currency == "CAD":
        return Rate("CAD", Decimal(1), on, False, "identity")
    if currency in PEGGED_TO_EUR:
        eur = await rate_on(session, "EUR", on)
        if eur is None:
            return None
        return Rate(
            currency, eur.cad_per_unit / PEGGED_TO_EUR[currency], eur.rate_date, eur.stale, f"EUR peg ({eur.source})"
        )
    row = await session.scalar(
        select(FxRate)
        .where(FxRate.currency == currency, FxRate.rate_date <= on)
        .order_by(FxRate.rate_date.desc())
        .limit(1)
    )
    if row is None:
        return None
    return Rate(currency, row.cad_per_unit, row.rate_date, row.rate_date < on, row.source)


def to_cad(amount: Decimal, rate: Rate) -> Decimal:
    return round_money(amount * rate.cad_per_unit, "CAD")


def parse_csv(text: str) -> list[tuple[date, str, Decimal, str]]:
    """`date,currency,cad_per_unit,source` lines (a header line is optional). All or nothing: every bad line is
    reported with its number."""
    rows: list[tuple[date, str, Decimal, str]] = []
    errors: list[dict[str, str]] = []
    try:
        # newline="": the csv module reads line ends itself (a lone CR in a field is data, not an error)
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise UnprocessableContent(f"the CSV cannot be read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line or (number == 1 and line[0].strip().lower() == "date"):
            continue
        try:
            if len(line) != 4:
                raise ValueError("expected 4 fields: date,currency,cad_per_unit,source")
            day = date.fromisoformat(line[0].strip())
            currency = line[1].strip()
            try:
                value = Decimal(line[2].strip())
            except InvalidOperation:
                raise ValueError(f"{line[2]!r} is not a number") from None
            check_rate(currency, value)
            source = line[3].strip()
            if not source:
                raise ValueError("the source is required")
            rows.append((day, currency, value, source[:100]))
        except ValueError as exc:
            errors.append({"pointer": f"#/lines/{number}", "detail": str(exc)})
    if errors:
        raise UnprocessableContent(f"{len(errors)} line(s) are invalid; nothing was imported", errors=errors)
    return rows
