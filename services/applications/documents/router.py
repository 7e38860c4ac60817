import base64
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from services.applications.access import Reader, ica_scope
from services.applications.documents import service
from services.applications.documents.service import ALLOWED, Kind
from services.applications.partners.service import get_business
from services.applications.pipeline.service import get_application
from shared.auth import Principal, Role
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.problems import Forbidden, problem_responses

router = APIRouter(prefix="/api/v1/applications", tags=["documents"], route_class=IdempotentRoute)
UPLOADERS = frozenset({Role.admin, Role.analyst, Role.ica})
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the document's bytes, with its Content-Type; at most APPLICATIONS_DOCUMENTS_MAX_BYTES",
        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in ALLOWED},
    }
}


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    business_id: uuid.UUID
    application_id: uuid.UUID | None
    kind: Kind
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_at: datetime


def _uploader(principal: Principal) -> None:
    if principal.role not in UPLOADERS:
        raise Forbidden(f"role {principal.role.value!r} may not upload documents")


async def _upload(
    request: Request,
    session: SessionDep,
    principal: Principal,
    *,
    ica_id: uuid.UUID,
    business_id: uuid.UUID,
    application_id: uuid.UUID | None,
    kind: Kind,
    filename: str,
    content_type: str,
) -> DocumentOut:
    limit: int = request.app.state.settings.documents_max_bytes
    content = await service.read_limited(request.stream(), limit)
    media = service.check_upload(content_type, filename, content)
    document = await service.store(
        session,
        ica_id=ica_id,
        business_id=business_id,
        application_id=application_id,
        kind=kind,
        filename=filename,
        content_type=media,
        content=content,
        uploaded_by=principal.key_id,
    )
    return DocumentOut.model_validate(document)


@router.post(
    "/businesses/{business_id}/documents",
    status_code=201,
    response_model=DocumentOut,
    summary="Attach a document to a partner business (bylaws, statements, minutes...)",
    openapi_extra=UPLOAD_BODY,
    responses=problem_responses(401, 403, 404, 413, 422),
)
async def upload_business_document(
    business_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Reader,
    kind: Kind,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    content_type: Annotated[str, Header()] = "",
) -> DocumentOut:
    _uploader(principal)
    business = await get_business(session, business_id, scope=ica_scope(principal))
    return await _upload(
        request,
        session,
        principal,
        ica_id=business.ica_id,
        business_id=business.id,
        application_id=None,
        kind=kind,
        filename=filename,
        content_type=content_type,
    )


@router.post(
    "/applications/{application_id}/documents",
    status_code=201,
    response_model=DocumentOut,
    summary="Attach a document to an application",
    openapi_extra=UPLOAD_BODY,
    responses=problem_responses(401, 403, 404, 413, 422),
)
async def upload_application_document(
    application_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Reader,
    kind: Kind,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    content_type: Annotated[str, Header()] = "",
) -> DocumentOut:
    _uploader(principal)
    application = await get_application(session, application_id, scope=ica_scope(principal))
    return await _upload(
        request,
        session,
        principal,
        ica_id=application.ica_id,
        business_id=application.business_id,
        application_id=application.id,
        kind=kind,
        filename=filename,
        content_type=content_type,
    )


@router.get(
    "/businesses/{business_id}/documents",
    response_model=list[DocumentOut],
    summary="A business's documents (its applications' included)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_business_documents(business_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[DocumentOut]:
    business = await get_business(session, business_id, scope=ica_scope(principal))
    return [DocumentOut.model_validate(d) for d in await service.list_documents(session, business_id=business.id)]


@router.get(
    "/applications/{application_id}/documents",
    response_model=list[DocumentOut],
    summary="An application's documents",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_application_documents(
    application_id: uuid.UUID, session: SessionDep, principal: Reader
) -> list[DocumentOut]:
    application = await get_application(session, application_id, scope=ica_scope(principal))
    return [DocumentOut.model_validate(d) for d in await service.list_documents(session, application_id=application.id)]


@router.get(
    "/documents/{document_id}",
    summary="Download a document (its SHA-256 in `Repr-Digest` and `ETag`)",
    response_class=Response,
    responses={200: {"content": {m: {} for m in ALLOWED}}, **problem_responses(401, 403, 404, 422)},
)
async def download_document(document_id: uuid.UUID, session: SessionDep, principal: Reader) -> Response:
    document = await service.get_document(session, document_id, scope=ica_scope(principal))
    content = await service.content_of(session, document)
    digest = base64.b64encode(bytes.fromhex(document.sha256)).decode()
    return Response(
        content,
        media_type=document.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename)}",
            "ETag": f'"{document.sha256}"',
            "Repr-Digest": f"sha-256=:{digest}:",
            "X-Content-Type-Options": "nosniff",
        },
    )
