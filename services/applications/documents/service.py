"""Documents (statements, bylaws, minutes, ...): size and type limits, SHA-256, readable only by who may see
the business or application they belong to. Stored in PostgreSQL, in the same transaction as their metadata."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.documents.models import Document, DocumentContent
from shared.problems import NotFound, Problem, UnprocessableContent


class Kind(StrEnum):
    financial_statements = "financial_statements"
    bylaws = "bylaws"
    general_assembly_minutes = "general_assembly_minutes"
    business_plan = "business_plan"
    lender_letter = "lender_letter"
    support_plan = "support_plan"
    other = "other"


ZIP = b"PK\x03\x04"
# content type -> what its first bytes must be (None: text, checked as UTF-8)
ALLOWED: dict[str, tuple[bytes, ...] | None] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "text/csv": None,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (ZIP,),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (ZIP,),
    "application/vnd.oasis.opendocument.spreadsheet": (ZIP,),
    "application/vnd.oasis.opendocument.text": (ZIP,),
}
_FILENAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise Problem(f"a document may be at most {limit} bytes", status=413, slug="body-too-large")
        parts.append(chunk)
    return b"".join(parts)


def check_upload(content_type: str, filename: str, content: bytes) -> str:
    """The normalized content type, or a 422 saying what is wrong (nothing is stored)."""
    media = content_type.split(";")[0].strip().lower()
    if media not in ALLOWED:
        raise UnprocessableContent(
            f"documents of type {media or '(none)'} are not accepted; send one of: {', '.join(sorted(ALLOWED))}",
            errors=[{"parameter": "content-type", "in": "header", "detail": "type not accepted"}],
        )
    if not _FILENAME.fullmatch(filename):
        raise UnprocessableContent(
            "the filename must be 1-255 characters without slashes or control characters",
            errors=[{"parameter": "filename", "in": "query", "detail": "invalid filename"}],
        )
    if not content:
        raise UnprocessableContent("the document is empty", errors=[{"pointer": "#", "detail": "empty body"}])
    signatures = ALLOWED[media]
    if signatures is None:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise UnprocessableContent(f"a {media} document must be UTF-8 text") from None
    elif not any(content.startswith(s) for s in signatures):
        raise UnprocessableContent(f"the content is not a {media} document (its first bytes do not match)")
    return media


async def store(
    session: AsyncSession,
    *,
    ica_id: uuid.UUID,
    business_id: uuid.UUID,
    application_id: uuid.UUID | None,
    kind: Kind,
    filename: str,
    content_type: str,
    content: bytes,
    uploaded_by: uuid.UUID,
) -> Document:
    document = Document(
        id=uuid.uuid4(),
        ica_id=ica_id,
        business_id=business_id,
        application_id=application_id,
        kind=kind.value,
        filename=filename,
        content_type=content_type,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        uploaded_by=uploaded_by,
    )
    session.add(document)
    await session.flush()
    session.add(DocumentContent(document_id=document.id, content=content))
    await session.flush()
    return document


async def list_documents(
    session: AsyncSession, *, business_id: uuid.UUID | None = None, application_id: uuid.UUID | None = None
) -> list[Document]:
    query = select(Document).order_by(Document.uploaded_at, Document.id)
    if application_id is not None:
        query = query.where(Document.application_id == application_id)
    elif business_id is not None:
        query = query.where(Document.business_id == business_id)
    return list((await session.scalars(query)).all())


async def get_document(session: AsyncSession, document_id: uuid.UUID, *, scope: uuid.UUID | None) -> Document:
    document = await session.get(Document, document_id)
    if document is None or (scope is not None and document.ica_id != scope):
        raise NotFound(f"no document {document_id}")
    return document


async def content_of(session: AsyncSession, document: Document) -> bytes:
    row = await session.get(DocumentContent, document.id)
    assert row is not None
    return row.content
