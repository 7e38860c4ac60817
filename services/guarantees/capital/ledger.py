"""Every capital entry is recorded through here, so each one is announced (`capital.entry_recorded`) in the same
transaction: the reporting service computes leverage from the ledger without reading this schema."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.capital.models import CapitalEntry
from services.guarantees.db import events as event_tables
from shared.contracts.guarantees import CapitalEntryRecordedV1
from shared.events.outbox import publish


async def record_entry(session: AsyncSession, entry: CapitalEntry) -> None:
    session.add(entry)
    await session.flush()
    await publish(
        session,
        event_tables,
        event_type="capital.entry_recorded",
        aggregate_type="capital_entry",
        aggregate_id=str(entry.id),
        payload=CapitalEntryRecordedV1(
            entry_id=entry.id, kind=entry.kind, amount_cad=format(entry.amount_cad, "f"), value_date=entry.value_date
        ),
    )
