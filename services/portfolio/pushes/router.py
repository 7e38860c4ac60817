"""Lenders' signed data pushes (Standard Webhooks), received through the gateway at /webhooks/lenders/{id}.

The push is verified over its raw bytes against the lender's valid secrets (two during a rotation, ±5 minutes),
then stored as received, in one transaction, before the 2xx: an accepted push is never lost. A retried push
(the same `webhook-id`) is acknowledged again without being stored twice. Applying its items (repayments,
recoveries, loan notices; each idempotent by the lender's transaction id) is asynchronous.
"""

import json
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.portfolio.lenders.models import Lender
from services.portfolio.lenders.service import valid_secrets
from services.portfolio.pushes.models import LenderPush
from shared.auth import CurrentPrincipal, Role
from shared.db import SessionDep, TransactionalRoute
from shared.problems import Forbidden, NotFound, Problem, Unauthorized, UnprocessableContent, problem_responses
from shared.webhooks.secrets import WebhookRejected, verify

webhooks = APIRouter(
    prefix="/webhooks/lenders", tags=["lender pushes (signed webhooks)"], route_class=TransactionalRoute
)
router = APIRouter(
    prefix="/api/v1/portfolio/lenders", tags=["lender pushes (signed webhooks)"], route_class=TransactionalRoute
)
MAX_PUSH_BYTES = 5 * 1024 * 1024
MAX_ITEMS = 10_000
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


class PushReceipt(BaseModel):
    push_id: uuid.UUID
    webhook_id: str
    items: int
    status: str
    received_at: datetime
    duplicate: bool


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
async def receive_push(lender_id: uuid.UUID, request: Request, session: SessionDep) -> JSONResponse:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_PUSH_BYTES:
            raise Problem(f"a push may be at most {MAX_PUSH_BYTES} bytes", status=413, slug="body-too-large")
    body = bytes(raw)
    lender = await session.get(Lender, lender_id)
    secrets = [s.secret for s in await valid_secrets(session, lender_id)] if lender is not None else []
    if not secrets:
        raise Unauthorized("the signature is not valid for this lender")  # unknown lender: the same answer
    try:
        webhook_id = verify(secrets[:2], request.headers, body)
    except WebhookRejected as exc:
        raise Unauthorized(
            f"the push was refused: {exc.reason.value}", slug="webhook-rejected", reason=exc.reason.value
        ) from None
    try:
        payload = json.loads(body)
        items = payload["items"]
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise UnprocessableContent(
            'a push is a JSON object with an "items" list', errors=[{"pointer": "#/items", "detail": "required list"}]
        ) from None
    if len(items) > MAX_ITEMS:
        raise UnprocessableContent(f"a push may carry at most {MAX_ITEMS} items; split it")
    new_id = await session.scalar(
        insert(LenderPush)
        .values(id=uuid.uuid4(), lender_id=lender_id, webhook_id=webhook_id, raw_body=body, item_count=len(items))
        .on_conflict_do_nothing(constraint="uq_lender_pushes_webhook_id")
        .returning(LenderPush.id)
    )
    push = await session.scalar(
        select(LenderPush).where(LenderPush.lender_id == lender_id, LenderPush.webhook_id == webhook_id)
    )
    assert push is not None
    receipt = PushReceipt(
        push_id=push.id,
        webhook_id=webhook_id,
        items=push.item_count,
        status=push.status,
        received_at=push.received_at,
        duplicate=new_id is None,
    )
    return JSONResponse(receipt.model_dump(mode="json"), status_code=202 if new_id is not None else 200)


class PushOut(BaseModel):
    model_config = {"from_attributes": True}

    id: uuid.UUID
    webhook_id: str
    item_count: int
    status: str
    received_at: datetime
    processed_at: datetime | None


@router.get(
    "/{lender_id}/pushes",
    response_model=list[PushOut],
    summary="Reconciliation: the pushes received from a lender, newest first (the lender itself, or staff)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_pushes(
    lender_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PushOut]:
    if principal.role == Role.lender:
        if principal.organization_id != lender_id:
            raise NotFound(f"no lender {lender_id}")
    elif principal.role not in (Role.admin, Role.analyst, Role.committee, Role.fund_manager):
        raise Forbidden(f"role {principal.role.value!r} has no access to lenders' pushes")
    query = (
        select(LenderPush)
        .where(LenderPush.lender_id == lender_id)
        .order_by(LenderPush.received_at.desc(), LenderPush.id)
        .limit(limit)
    )
    return [PushOut.model_validate(p) for p in (await session.scalars(query)).all()]
