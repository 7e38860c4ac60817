"""Documents: type and size limits, SHA-256, downloadable only by those who may see what they belong to."""

from __future__ import annotations

import base64
import hashlib
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.applications.conftest import APPS, FakePeers, as_role, draft, setup_ica
from tests.support import assert_problem

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


async def upload(
    api: httpx.AsyncClient, url: str, headers: dict[str, str], content: bytes, content_type: str, **params: str
) -> httpx.Response:
    query = {"kind": "bylaws", "filename": "statuts coopérative.pdf", **params}
    return await api.post(url, params=query, content=content, headers={**headers, "Content-Type": content_type})


async def test_a_document_is_stored_with_its_sha256_and_downloaded_intact(
    api: httpx.AsyncClient, peers: FakePeers
) -> None:
    ica, business_id = await setup_ica(api)
    stored = await upload(
        api, f"/api/v1/applications/businesses/{business_id}/documents", ica.headers, PDF, "application/pdf"
    )
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["sha256"] == hashlib.sha256(PDF).hexdigest() and body["size_bytes"] == len(PDF)
    assert body["filename"] == "statuts coopérative.pdf" and body["kind"] == "bylaws"
    download = await api.get(f"/api/v1/applications/documents/{body['id']}", headers=ica.headers)
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["repr-digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(PDF).digest()).decode()}:"
    assert "attachment" in download.headers["content-disposition"]
    # staff may read it; another ICA may not even know it exists; a funder has no access
    assert (await api.get(f"/api/v1/applications/documents/{body['id']}", headers=as_role(Role.analyst))).content == PDF
    assert_problem(
        await api.get(f"/api/v1/applications/documents/{body['id']}", headers=as_role(Role.ica, uuid.uuid4())), 404
    )
    assert_problem(await api.get(f"/api/v1/applications/documents/{body['id']}", headers=as_role(Role.funder)), 403)
    listed = (await api.get(f"/api/v1/applications/businesses/{business_id}/documents", headers=ica.headers)).json()
    assert [d["id"] for d in listed] == [body["id"]]


async def test_application_documents_follow_the_application(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    csv = b"year,revenue\n2025,18500000\n"
    stored = await upload(
        api,
        f"{APPS}/{aid}/documents",
        ica.headers,
        csv,
        "text/csv; charset=utf-8",
        kind="financial_statements",
        filename="2025.csv",
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["application_id"] == aid and stored.json()["content_type"] == "text/csv"
    other = as_role(Role.ica, uuid.uuid4())
    assert_problem(await upload(api, f"{APPS}/{aid}/documents", other, csv, "text/csv"), 404)
    assert_problem(await api.get(f"{APPS}/{aid}/documents", headers=other), 404)
    assert len((await api.get(f"{APPS}/{aid}/documents", headers=ica.headers)).json()) == 1


async def test_wrong_types_spoofed_content_and_oversize_are_refused_and_nothing_is_stored(
    api: httpx.AsyncClient, peers: FakePeers, connection: AsyncConnection
) -> None:
    ica, business_id = await setup_ica(api)
    url = f"/api/v1/applications/businesses/{business_id}/documents"
    assert_problem(await upload(api, url, ica.headers, b"MZ\x90\x00binary", "application/x-msdownload"), 422)
    assert_problem(await upload(api, url, ica.headers, b"MZ\x90\x00binary", "application/pdf"), 422)  # not a PDF
    assert_problem(await upload(api, url, ica.headers, b"\xff\xfe\x00bad", "text/csv"), 422)
    assert_problem(await upload(api, url, ica.headers, b"", "application/pdf"), 422)
    assert_problem(await upload(api, url, ica.headers, PDF, "application/pdf", filename="../../etc/passwd"), 422)
    assert_problem(await upload(api, url, ica.headers, PDF, "application/pdf", kind="selfie"), 422)
    api._transport.app.state.settings.documents_max_bytes = 1000  # type: ignore[attr-defined]
    assert_problem(await upload(api, url, ica.headers, PDF + b"0" * 1000, "application/pdf"), 413)
    assert_problem(await upload(api, url, as_role(Role.committee), PDF, "application/pdf"), 403)
    count = await connection.scalar(
        text("SELECT count(*) FROM applications.documents WHERE business_id = :b"), {"b": business_id}
    )
    assert count == 0
