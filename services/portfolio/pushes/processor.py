"""Applying stored pushes: every item applied, counted as a duplicate, or rejected alone with its reason.

A push is claimed with `FOR UPDATE SKIP LOCKED` (so several processes share the work and none applies a push
twice), and all of its items are applied in one database transaction with the loans they touch locked in id
order: either the whole push's outcome is recorded, or nothing is and the push is taken again. Each item is
idempotent by the lender's transaction id, across pushes and against the staff API: the same id again with the
same content is a `duplicate` (counted once); with a different content it is rejected (`transaction_id_reused`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, any_, bindparam, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from services.portfolio.db import events as event_tables
from services.portfolio.loans.ledger import Kind
from services.portfolio.loans.models import Transaction
from services.portfolio.loans.operations import Refused, disburse, pay
from services.portfolio.loans.service import Ledger, Ledgers
from services.portfolio.pushes.models import LenderPush, PushItem
from shared.background import log_failure, running
from shared.db import copy_rows, make_sessionmaker
from shared.events.outbox import batched

log = logging.getLogger("services.portfolio.pushes")

ITEM_KINDS = {"repayment": Kind.repayment, "recovery": Kind.recovery, "disbursement": Kind.disbursement}
ITEM_TYPES = (*ITEM_KINDS, "notice")
_AMOUNT_RE = re.compile(r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,8})?$")
MAX_ATTEMPTS = 5
YIELD_EVERY_ITEMS = 25


class Rejection(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class Item:
    index: int
    type: str | None = None
    transaction_id: str | None = None
    loan_ref: str | None = None
    loan_id: uuid.UUID | None = None
    amount: Decimal | None = None
    currency: str | None = None
    value_date: date | None = None
    message: str | None = None
    rejection: Rejection | None = None
    outcome: dict[str, Any] = field(default_factory=dict)


def parse_item(index: int, raw: Any) -> Item:
    """Reads what can be read of an item; the first problem found is its rejection."""
    item = Item(index)
    try:
        if not isinstance(raw, dict):
            raise Rejection("invalid_item", "an item is a JSON object")
        kind = raw.get("type")
        item.type = kind if isinstance(kind, str) else None
        txn = raw.get("transaction_id")
        item.transaction_id = txn[:100] if isinstance(txn, str) else None
        ref = raw.get("loan_id")
        item.loan_ref = str(ref)[:100] if ref is not None else None
        if kind not in ITEM_TYPES:
            raise Rejection("invalid_item", f"type must be one of {', '.join(ITEM_TYPES)}")
        if not isinstance(txn, str) or not 1 <= len(txn) <= 100:
            raise Rejection("invalid_item", "transaction_id is required: the lender's own id, 1 to 100 characters")
        try:
            item.loan_id = uuid.UUID(str(ref))
        except ValueError:
            raise Rejection("unknown_loan", f"no loan {item.loan_ref!r}") from None
        if kind == "notice":
            message = raw.get("message")
            if not isinstance(message, str) or not message.strip():
                raise Rejection("invalid_item", "a notice carries a message")
            item.message = message[:2000]
            return item
        money = raw.get("amount")
        if not isinstance(money, dict) or not isinstance(money.get("amount"), str):
            raise Rejection("invalid_item", 'amount is {"amount": "<decimal string>", "currency": "<ISO 4217>"}')
        if not _AMOUNT_RE.fullmatch(money["amount"]):
            raise Rejection("invalid_item", f'amount {money["amount"]!r} is not a decimal string like "1250.50"')
        item.amount, item.currency = Decimal(money["amount"]), str(money.get("currency"))
        try:
            item.value_date = date.fromisoformat(raw.get("value_date"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise Rejection("invalid_item", "value_date is required, as YYYY-MM-DD") from None
    except Rejection as exc:
        item.rejection = exc
    return item


def _same(txn: Transaction, item: Item, kind: Kind) -> bool:
    return (
        txn.kind == kind.value
        and txn.loan_id == item.loan_id
        and txn.amount == item.amount
        and txn.currency == item.currency
        and txn.value_date == item.value_date
    )


async def apply_pushes(session: AsyncSession, pushes: list[LenderPush], *, now: datetime | None = None) -> None:
    """Applies every item of claimed pushes, in the order given, and records each outcome; marks them processed.
    Several pushes share one read of the loans they touch and one write of their events."""
    parsed = [
        (push, [parse_item(i, raw) for i, raw in enumerate(json.loads(push.raw_body)["items"])]) for push in pushes
    ]
    wanted = {i.loan_id for _, items in parsed for i in items if i.rejection is None and i.loan_id is not None}
    ledgers: dict[uuid.UUID, Ledger] = await Ledgers.open(session, wanted, detached=True)
    ids = {i.transaction_id for _, items in parsed for i in items if i.rejection is None and i.type != "notice"}
    lenders = {push.lender_id for push in pushes}
    known: dict[tuple[uuid.UUID, str], Transaction] = {}
    if ids:
        for txn in (
            await session.scalars(
                select(Transaction).where(
                    Transaction.lender_id
                    == any_(bindparam("lenders", list(lenders), type_=ARRAY(PG_UUID(as_uuid=True)))),
                    Transaction.external_id == any_(bindparam("ids", list(ids), type_=ARRAY(String()))),
                )
            )
        ).all():
            assert txn.external_id is not None
            known[(txn.lender_id, txn.external_id)] = txn
    notices: dict[uuid.UUID, set[str]] = {}  # per lender, shared by its pushes in this batch
    for lender in lenders:
        own = [i.transaction_id for p, items in parsed if p.lender_id == lender for i in items if i.type == "notice"]
        notices[lender] = await _notices_seen(session, lender, own)
    # the events: written together, with their feed positions, as the transaction's last work (`sequenced` holds
    # the feed's head from then until the commit)
    async with batched(session, event_tables, sequenced=True):
        for push, items in parsed:
            await _apply_items(session, push, items, ledgers, known, notices[push.lender_id])
        await Ledgers.write(session, ledgers.values())
        await session.flush()
        await _record_outcomes(session, parsed, now or datetime.now(UTC))


async def _record_outcomes(session: AsyncSession, parsed: list[tuple[LenderPush, list[Item]]], stamp: datetime) -> None:
    """Each item's outcome, and each push's counts, `processed`."""
    rows: list[tuple[Any, ...]] = []
    for push, items in parsed:
        counts = {"applied": 0, "duplicate": 0, "rejected": 0}
        for item in items:
            status = "rejected" if item.rejection is not None else item.outcome["status"]
            counts[status] += 1
            rows.append(
                (
                    push.id,
                    item.index,
                    item.type,
                    item.transaction_id,
                    item.loan_ref,
                    status,
                    item.rejection.reason if item.rejection else None,
                    item.rejection.detail if item.rejection else item.message,
                    item.outcome.get("loan_transaction_id"),
                )
            )
        outcome = {"status": "processed", "processed_at": stamp, "applied": counts["applied"]}
        outcome.update(duplicates=counts["duplicate"], rejected=counts["rejected"])
        for name, value in outcome.items():
            # written below in one statement for all the pushes (an ORM flush updated them one by one, ~100 us
            # each); the objects say the same, without being marked for a flush
            set_committed_value(push, name, value)
    if rows:
        await copy_rows(session, "portfolio", "lender_push_items", _ITEM_COLUMNS, rows)
    await session.execute(
        text(
            """
            UPDATE portfolio.lender_pushes AS p
            SET status = 'processed', processed_at = :stamp, applied = v.applied, duplicates = v.duplicates,
                rejected = v.rejected
            FROM unnest(CAST(:ids AS uuid[]), CAST(:applied AS int[]), CAST(:duplicates AS int[]),
                        CAST(:rejected AS int[])) AS v(id, applied, duplicates, rejected)
            WHERE p.id = v.id
            """
        ),
        {
            "stamp": stamp,
            "ids": [push.id for push, _ in parsed],
            "applied": [push.applied for push, _ in parsed],
            "duplicates": [push.duplicates for push, _ in parsed],
            "rejected": [push.rejected for push, _ in parsed],
        },
    )
    await session.flush()


_ITEM_COLUMNS = (
    "push_id",
    "index",
    "type",
    "transaction_id",
    "loan_id",
    "status",
    "reason",
    "detail",
    "loan_transaction_id",
)


async def apply_push(session: AsyncSession, push: LenderPush, *, now: datetime | None = None) -> None:
    await apply_pushes(session, [push], now=now)


async def _apply_items(
    session: AsyncSession,
    push: LenderPush,
    items: list[Item],
    ledgers: dict[uuid.UUID, Ledger],
    known: dict[tuple[uuid.UUID, str], Transaction],
    notices_seen: set[str],
) -> None:
    for item in items:
        if item.index % YIELD_EVERY_ITEMS == 0:
            # let this process answer requests meanwhile (pushes received, above all): a batch of thousands of
            # items is a second of CPU, which would otherwise hold the event loop and every request waiting on it
            await asyncio.sleep(0)
        if item.rejection is not None:
            continue
        assert item.loan_id is not None and item.transaction_id is not None
        ledger = ledgers.get(item.loan_id)
        try:
            if ledger is None:
                raise Rejection("unknown_loan", f"no loan {item.loan_id}")
            if ledger.loan.lender_id != push.lender_id:
                raise Rejection("foreign_loan", f"loan {item.loan_id} is another lender's")
            if item.type == "notice":
                if item.transaction_id in notices_seen:
                    item.outcome = {"status": "duplicate"}
                else:
                    notices_seen.add(item.transaction_id)
                    item.outcome = {"status": "applied"}
                continue
            kind = ITEM_KINDS[item.type or ""]
            assert item.amount is not None and item.currency is not None and item.value_date is not None
            earlier = known.get((push.lender_id, item.transaction_id))
            if earlier is not None:
                if not _same(earlier, item, kind):
                    raise Rejection(
                        "transaction_id_reused",
                        f"transaction id {item.transaction_id!r} was already used for another {earlier.kind}"
                        f" ({earlier.amount.normalize():f} {earlier.currency} on {earlier.value_date})",
                    )
                item.outcome = {"status": "duplicate", "loan_transaction_id": earlier.id}
                continue
            if kind == Kind.disbursement:
                txn = await disburse(
                    session,
                    ledger,
                    amount=item.amount,
                    currency=item.currency,
                    value_date=item.value_date,
                    actor=None,
                    source="push",
                    external_id=item.transaction_id,
                    push_id=push.id,
                )
            else:
                txn = await pay(
                    session,
                    ledger,
                    kind=kind,
                    amount=item.amount,
                    currency=item.currency,
                    value_date=item.value_date,
                    actor=None,
                    source="push",
                    external_id=item.transaction_id,
                    push_id=push.id,
                )
            known[(push.lender_id, item.transaction_id)] = txn
            item.outcome = {"status": "applied", "loan_transaction_id": txn.id}
        except Refused as exc:
            item.rejection = Rejection(exc.reason, exc.detail)
        except Rejection as exc:
            item.rejection = exc


async def _notices_seen(session: AsyncSession, lender_id: uuid.UUID, ids: list[str | None]) -> set[str]:
    wanted = [i for i in ids if i]
    if not wanted:
        return set()
    rows = await session.scalars(
        select(PushItem.transaction_id)
        .join(LenderPush, LenderPush.id == PushItem.push_id)
        .where(
            LenderPush.lender_id == lender_id,
            PushItem.type == "notice",
            PushItem.status == "applied",
            PushItem.transaction_id.in_(wanted),
        )
    )
    return {r for r in rows.all() if r}


async def _in_lender_order(session: AsyncSession, claimed: list[LenderPush]) -> list[LenderPush]:
    """A lender's pushes are applied in the order received (whether an item applies can depend on an earlier
    push: a disbursement before the repayments). Of the claimed pushes, keeps for each lender only those with no
    older push of that lender still waiting outside this claim (held by another process, or being retried)."""
    if not claimed:
        return claimed
    mine = {p.id for p in claimed}
    newest = max((p.received_at, p.id) for p in claimed)
    waiting = await session.execute(
        select(LenderPush.id, LenderPush.lender_id)
        .where(
            LenderPush.status == "received",
            LenderPush.lender_id
            == any_(bindparam("lenders", list({p.lender_id for p in claimed}), type_=ARRAY(PG_UUID(as_uuid=True)))),
            tuple_(LenderPush.received_at, LenderPush.id) <= tuple_(literal(newest[0]), literal(newest[1])),
        )
        .order_by(LenderPush.lender_id, LenderPush.received_at, LenderPush.id)
    )
    allowed: set[uuid.UUID] = set()
    blocked: set[uuid.UUID] = set()
    for push_id, lender_id in waiting.all():
        if lender_id in blocked:
            continue
        if push_id in mine:
            allowed.add(push_id)
        else:
            blocked.add(lender_id)  # an older push of this lender is not ours: ours wait for it
    return [p for p in claimed if p.id in allowed]


async def process_next(
    session: AsyncSession,
    *,
    max_pushes: int = 1,
    max_items: int = 5000,
    claimed_hook: Callable[[list[uuid.UUID], bool], None] | None = None,
) -> list[uuid.UUID]:
    """Claims the oldest received pushes no one else is applying (up to `max_pushes`, and `max_items` items
    beyond the first), applies them; answers their ids (none when idle). The caller commits. `claimed_hook` is
    told the pushes claimed, and whether more may be waiting behind them (the claim was cut by a limit)."""
    claimed = (
        await session.scalars(
            select(LenderPush)
            .where(LenderPush.status == "received")
            .order_by(LenderPush.received_at, LenderPush.id)
            .limit(max_pushes)
            .with_for_update(skip_locked=True)
        )
    ).all()
    backlog = len(claimed) == max_pushes  # more may be waiting behind these
    claimed = await _in_lender_order(session, list(claimed))
    pushes: list[LenderPush] = []
    items = 0
    for push in claimed:
        if pushes and items + push.item_count > max_items:
            backlog = True
            break  # left for the next round (still locked by this transaction, so no one else takes it meanwhile)
        pushes.append(push)
        items += push.item_count
    if not pushes:
        return []
    if claimed_hook is not None:
        claimed_hook([p.id for p in pushes], backlog)
    await apply_pushes(session, pushes)
    return [p.id for p in pushes]


@dataclass
class Processor:
    """Applies stored pushes in the background: woken when this process stores a push, and polling every
    `poll_seconds` for the pushes other processes stored (or that a crash left behind)."""

    engine: AsyncEngine | None
    poll_seconds: float = 0.5
    batch_pushes: int = 500  # pushes applied together in one transaction (a backlog of single items: cheaper each)
    batch_items: int = 5000  # ... up to about this many items
    linger_seconds: float = 0.05  # after a wake-up, before applying
    sessionmaker: async_sessionmaker[AsyncSession] | None = None  # default: sessions on `engine`
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _current: list[uuid.UUID] = field(default_factory=list)
    _backlog: bool = False

    def wake(self) -> None:
        self._wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with running(self.run(), name="lender-push-processor"):
            yield

    async def drain(self) -> int:
        """Applies pushes, several at a time, until a batch was not cut by its limits (it took every push it could:
        a push another process holds, or one waiting behind another of its lender's, is left); answers how many.
        What arrives while that batch is applied waits for the next wake-up or poll, and is applied together: a
        batch's statements cost nearly as much for a few pushes as for hundreds (single-item pushes, measured
        in-process: 480-565 us of the applier's CPU a push in batches of 55, about 380 in batches of 250).
        When a batch fails (a fault, not an item's rejection), its pushes are tried one by one, so one bad push
        cannot hold the others back; a push that fails alone is tried again behind the others, and set aside as
        `failed` after `MAX_ATTEMPTS`, for staff to look at (the lender's later pushes wait for it meanwhile, so
        that they apply in order). None is ever dropped."""
        sessionmaker = self.sessionmaker or make_sessionmaker(self.engine)
        done = 0
        while True:
            self._current = []
            try:
                async with sessionmaker() as session, session.begin():
                    claimed = await process_next(
                        session, max_pushes=self.batch_pushes, max_items=self.batch_items, claimed_hook=self._claimed
                    )
                if not claimed:
                    return done
                done += len(claimed)
                if not self._backlog:
                    return done  # caught up
            except Exception as exc:
                failed = list(self._current)
                if not failed:
                    raise
                if len(failed) > 1:
                    log.warning("applying %d lender pushes together failed; applying them one by one", len(failed))
                    stopped: set[uuid.UUID] = set()  # lenders whose push failed: their later ones wait, in order
                    for push_id in failed:
                        done += await self._alone(sessionmaker, push_id, stopped)
                    continue
                await self._set_aside(sessionmaker, failed[0], exc)

    async def _alone(
        self, sessionmaker: async_sessionmaker[AsyncSession], push_id: uuid.UUID, stopped: set[uuid.UUID]
    ) -> int:
        lender_id: uuid.UUID | None = None
        try:
            async with sessionmaker() as session, session.begin():
                push = await session.scalar(
                    select(LenderPush)
                    .where(LenderPush.id == push_id, LenderPush.status == "received")
                    .with_for_update(skip_locked=True)
                )
                if push is None or push.lender_id in stopped:
                    return 0
                lender_id = push.lender_id
                await apply_pushes(session, [push])
                return 1
        except Exception as exc:
            if lender_id is not None:
                stopped.add(lender_id)
            await self._set_aside(sessionmaker, push_id, exc)
            return 0

    @staticmethod
    async def _set_aside(sessionmaker: async_sessionmaker[AsyncSession], push_id: uuid.UUID, exc: Exception) -> None:
        log.error("applying lender push %s failed: %s", push_id, exc, exc_info=exc)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(LenderPush)
                .where(LenderPush.id == push_id, LenderPush.status == "received")
                .values(
                    attempts=LenderPush.attempts + 1,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    status=text(f"CASE WHEN attempts + 1 >= {MAX_ATTEMPTS} THEN 'failed' ELSE status END"),
                )
            )

    def _claimed(self, push_ids: list[uuid.UUID], backlog: bool) -> None:
        self._current, self._backlog = push_ids, backlog

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away, say: the push stays received and is taken again
                log_failure(log, "applying lender pushes failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            # let a burst gather: many small pushes are applied together, at a fraction of the cost each
            await asyncio.sleep(self.linger_seconds)
