"""Lenders' signed data pushes (Standard Webhooks), received through the gateway at /webhooks/lenders/{id}, and
the lenders' reconciliation of what became of them.

Receiving is the hot path: `receive.PushReceiver` answers it in front of the routing; the route here documents it
(and serves the same `accept()` should a request reach it). Applying the items is asynchronous (`processor.py`).
"""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.portfolio.pushes.models import LenderPush, PushItem
from services.portfolio.pushes.receive import PushReceipt, accept, read_body
from shared.auth import STAFF_ROLES, CurrentPrincipal, Principal, Role
from shared.db import SessionDep, TransactionalRoute
from shared.pagination import Page, keyset, page_of
from shared.problems import Forbidden, NotFound, problem_responses

webhooks = APIRouter(prefix="/webhooks/lenders", tags=["lender pushes (signed webhooks)"])
router = APIRouter(
    prefix="/api/v1/portfolio/lenders", tags=["lender pushes (signed webhooks)"], route_class=TransactionalRoute
)
PUSH_EXAMPLE = {
    "items": [
        {
            "type": "repayment",
            "transaction_id": "CMS-2026-11-27-000172",
            "loan_id": "f3b0c1d2-0000-4000-8000-000000000001",
            "amount": {"amount": "250000", "currency": "XOF"},
            "value_date": "2026-11-27",
        }
    ]
}


@webhooks.post(
    "/{lender_id}",
    status_code=202,
    response_model=PushReceipt,
    summary="A lender pushes repayments, recoveries and loan notices (Standard Webhooks signature, no API key)",
    openapi_extra={
        "security": [],
        "requestBody": {"required": True, "content": {"application/json": {"example": PUSH_EXAMPLE}}},
        "parameters": [
            {"name": n, "in": "header", "required": True, "schema": {"type": "string"}}
            for n in ("webhook-id", "webhook-timestamp", "webhook-signature")
        ],
    },
    responses={
        200: {"description": "a retry of a push already received", "model": PushReceipt},
        **problem_responses(401, 413, 422),
    },
)
async def receive_push(lender_id: uuid.UUID, request: Request) -> Response:
    body = await read_body(request.receive)
    status, receipt = await accept(request.app.state, lender_id, request.headers, body or b"")
    return Response(receipt, status_code=status, media_type="application/json")


class PushOut(BaseModel):
    model_config = {"from_attributes": True}

    id: uuid.UUID
    webhook_id: str
    item_count: int
    status: str = Field(
        description="received: stored, items not yet applied; processed: every item applied, duplicate or"
        " rejected; failed: could not be applied after repeated faults (staff are alerted)"
    )
    received_at: datetime
    processed_at: datetime | None
    applied: int
    duplicates: int
    rejected: int


class ItemOut(BaseModel):
    model_config = {"from_attributes": True}

    index: int = Field(description="the item's position in the push, from 0")
    type: str | None
    transaction_id: str | None = Field(description="the lender's transaction id")
    loan_id: str | None
    status: str = Field(description="applied | duplicate (already counted) | rejected")
    reason: str | None = Field(
        description="why it was rejected: invalid_item, unknown_loan, foreign_loan, wrong_currency,"
        " negative_amount, too_many_decimals, future_value_date, before_disbursement, loan_not_disbursed,"
        " loan_written_off, loan_not_open, terms_not_set, over_disbursement, transaction_id_reused, ..."
    )
    detail: str | None
    loan_transaction_id: uuid.UUID | None = Field(description="the transaction it became (applied or duplicate)")


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_index: int | None = Field(description="pass as `after` for the next page; null on the last page")


def _lender_scope(principal: Principal, lender_id: uuid.UUID) -> None:
    if principal.role == Role.lender:
        if principal.organization_id != lender_id:
            raise NotFound(f"no lender {lender_id}")
    elif principal.role not in STAFF_ROLES:
        raise Forbidden(f"role {principal.role.value!r} has no access to lenders' pushes")


@router.get(
    "/{lender_id}/pushes",
    response_model=Page[PushOut],
    summary="Reconciliation: the pushes received from a lender, newest first (the lender itself, or staff)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_pushes(
    lender_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[Literal["received", "processed", "failed"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[PushOut]:
    _lender_scope(principal, lender_id)
    query = select(LenderPush).where(LenderPush.lender_id == lender_id)
    if status is not None:
        query = query.where(LenderPush.status == status)
    rows = (
        await session.scalars(keyset(query, LenderPush.received_at, LenderPush.id, cursor=cursor, limit=limit))
    ).all()
    items, next_cursor = page_of(rows, limit, at="received_at")
    return Page[PushOut](items=[PushOut.model_validate(p) for p in items], next_cursor=next_cursor)


async def _push(session: SessionDep, lender_id: uuid.UUID, push_id: uuid.UUID) -> LenderPush:
    push = await session.get(LenderPush, push_id)
    if push is None or push.lender_id != lender_id:
        raise NotFound(f"no push {push_id} from lender {lender_id}")
    return push


@router.get(
    "/{lender_id}/pushes/{push_id}",
    response_model=PushOut,
    summary="Reconciliation: one push, with how many items were applied, duplicates and rejected",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_push(
    lender_id: uuid.UUID, push_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> PushOut:
    _lender_scope(principal, lender_id)
    return PushOut.model_validate(await _push(session, lender_id, push_id))


@router.get(
    "/{lender_id}/pushes/{push_id}/items",
    response_model=ItemPage,
    summary="Reconciliation: what became of each item of a push (filter `status=rejected` for the rejections)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_items(
    lender_id: uuid.UUID,
    push_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[Literal["applied", "duplicate", "rejected"] | None, Query()] = None,
    after: Annotated[int | None, Query(ge=0, description="the last index of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ItemPage:
    _lender_scope(principal, lender_id)
    await _push(session, lender_id, push_id)
    query = select(PushItem).where(PushItem.push_id == push_id).order_by(PushItem.index).limit(limit + 1)
    if status is not None:
        query = query.where(PushItem.status == status)
    if after is not None:
        query = query.where(PushItem.index > after)
    rows = (await session.scalars(query)).all()
    items = [ItemOut.model_validate(r) for r in rows[:limit]]
    return ItemPage(items=items, next_index=items[-1].index if len(rows) > limit and items else None)


class TransactionTrace(BaseModel):
    transaction_id: str
    items: list[ItemOut] = Field(description="every push item that carried this transaction id, oldest first")
    push_ids: list[uuid.UUID]


@router.get(
    "/{lender_id}/transactions/{transaction_id}",
    response_model=TransactionTrace,
    summary="Reconciliation: what became of the lender's transaction id, in every push that carried it",
    responses=problem_responses(401, 403, 404, 422),
)
async def trace_transaction(
    lender_id: uuid.UUID,
    transaction_id: Annotated[str, Path(min_length=1, max_length=100)],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> TransactionTrace:
    _lender_scope(principal, lender_id)
    rows = (
        await session.execute(
            select(PushItem, LenderPush.id)
            .join(LenderPush, LenderPush.id == PushItem.push_id)
            .where(LenderPush.lender_id == lender_id, PushItem.transaction_id == transaction_id)
            .order_by(LenderPush.received_at, PushItem.index)
        )
    ).all()
    if not rows:
        raise NotFound(f"no push from lender {lender_id} carried transaction {transaction_id!r} (or not yet applied)")
    return TransactionTrace(
        transaction_id=transaction_id,
        items=[ItemOut.model_validate(item) for item, _ in rows],
        push_ids=[push_id for _, push_id in rows],
    )
