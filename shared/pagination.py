"""Cursor (keyset) pagination: stable under inserts, no OFFSET scans. A page is `{items, next_cursor}`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Select, and_, or_

from shared.problems import UnprocessableContent

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None = Field(None, description="pass as `cursor` to get the next page; null on the last page")


def _bounded(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timestamp must carry its timezone, e.g. 2026-11-27T00:00:00Z")
    if not 1900 <= value.year <= 9000:
        raise ValueError("a timestamp must fall between the years 1900 and 9000")
    return value


# a query parameter that is a moment: timezone-aware and within a sane range (else a 422, never a 500)
Moment = Annotated[datetime, AfterValidator(_bounded)]


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return _bounded(datetime.fromisoformat(created_at)), uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UnprocessableContent(
            "the cursor is not one this API gave out",
            errors=[{"parameter": "cursor", "in": "query", "detail": "invalid cursor"}],
        ) from exc


def keyset(
    query: Select[Any],
    created_at: Any,  # a datetime column (or ORM attribute)
    row_id: Any,  # the table's UUID primary key
    *,
    cursor: str | None,
    limit: int,
    order: Literal["asc", "desc"] = "desc",
) -> Select[Any]:
    """Order by (created_at, id) and continue after the cursor; fetches one extra row to know if more exist."""
    if cursor:
        at, last = decode_cursor(cursor)
        if order == "desc":
            query = query.where(or_(created_at < at, and_(created_at == at, row_id < last)))
        else:
            query = query.where(or_(created_at > at, and_(created_at == at, row_id > last)))
    if order == "desc":
        query = query.order_by(created_at.desc(), row_id.desc())
    else:
        query = query.order_by(created_at.asc(), row_id.asc())
    return query.limit(limit + 1)


def page_of(rows: Sequence[Any], limit: int, *, at: str = "created_at") -> tuple[list[Any], str | None]:
    """The page's rows and the cursor after its last one (None when there is nothing more). `at` names the
    timestamp attribute the query was ordered by."""
    items = list(rows[:limit])
    if len(rows) > limit and items:
        last = items[-1]
        return items, encode_cursor(getattr(last, at), last.id)
    return items, None
