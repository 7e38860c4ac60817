"""Recoveries after a payout (DOMAIN.md, Guarantees): the fund's share = coverage × each recovery, in CAD at its
date, until the payout is recouped — never beyond. Each share is a `recovery` entry of the capital ledger and a
`recovery.shared` event; a recovery is counted once (keyed by the loan event or staff entry it came from)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.capital.ledger import record_entry
from services.guarantees.capital.models import CapitalEntry
from services.guarantees.claims.models import Claim, Recovery
from services.guarantees.db import events as event_tables
from services.guarantees.issuance.models import Guarantee
from services.guarantees.limits import new_exposure
from shared.contracts.guarantees import RecoverySharedV1
from shared.events.outbox import publish
from shared.money import format_amount
from shared.peers import InternalClient
from shared.problems import ServiceUnavailable

ANNOUNCES = (RecoverySharedV1,)


async def share_recovery(
    session: AsyncSession,
    fx: InternalClient,
    guarantee: Guarantee,
    *,
    amount: Decimal,
    value_date: date,
    source: str,
    actor: uuid.UUID | None = None,
) -> Recovery | None:
    """Records the fund's share of a recovery on a guarantee whose claim was paid; None when there is no paid
    claim, when this recovery was already counted, or when the payout is already recouped."""
    claim = await session.scalar(
        select(Claim).where(Claim.guarantee_id == guarantee.id, Claim.status == "paid").with_for_update()
    )
    if claim is None:
        return None
    recouped = await session.scalar(select(func.sum(Recovery.fund_share_cad)).where(Recovery.claim_id == claim.id))
    remaining = claim.payout_cad - Decimal(recouped or 0)
    if remaining <= 0:
        return None
    equivalent = await fx.cad_equivalent(Decimal(1), guarantee.currency, value_date)
    if equivalent is None:
        raise ServiceUnavailable(f"no {guarantee.currency} rate is recorded: the recovery cannot be shared yet")
    share = new_exposure(amount * equivalent.rate, guarantee.coverage_pct, remaining)
    created = await session.scalar(
        insert(Recovery)
        .values(
            id=uuid.uuid4(),
            claim_id=claim.id,
            source=source,
            amount=amount,
            value_date=value_date,
            rate=equivalent.rate,
            fund_share_cad=share,
        )
        .on_conflict_do_nothing(index_elements=[Recovery.source])
        .returning(Recovery.id)
    )
    if created is None:
        return None
    await record_entry(
        session,
        CapitalEntry(
            id=uuid.uuid4(),
            kind="recovery",
            amount_cad=share,
            value_date=value_date,
            reference=f"claim {claim.id}",
            comment=f"{format_amount(amount, guarantee.currency)} {guarantee.currency} recovered; source {source}",
            recorded_by=actor,
        ),
    )
    await session.flush()
    await publish(
        session,
        event_tables,
        event_type="recovery.shared",
        aggregate_type="claim",
        aggregate_id=str(claim.id),
        payload={
            "claim_id": str(claim.id),
            "guarantee_id": str(guarantee.id),
            "loan_id": str(guarantee.loan_id),
            "amount": format_amount(amount, guarantee.currency),
            "currency": guarantee.currency,
            "value_date": value_date.isoformat(),
            "fund_share_cad": format(share, "f"),
            "recouped_cad": format(claim.payout_cad - remaining + share, "f"),
            "payout_cad": format(claim.payout_cad, "f"),
        },
    )
    return await session.get(Recovery, created)
