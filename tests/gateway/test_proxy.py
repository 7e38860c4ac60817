"""The gateway as the one door: forwarding, principals, request ids, rate limits, failures of upstreams."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from tests.conftest import INTERNAL_SECRET
from tests.support import Upstream, assert_problem, bearer, free_port, gateway_client, insert_key, service_app, serving

ORG = uuid.UUID("0b7f2c1e-8f4a-4c55-9d1e-5a6b7c8d9e0f")


async def test_each_service_answers_through_the_gateway_with_the_callers_principal(
    connection: AsyncConnection, engine: AsyncEngine
) -> None:
    lender = await insert_key(connection, Role.lender, ORG, holder="lena@banque.example")
    servers = {
        name: Upstream(service_app(name, engine)) for name in ("applications", "portfolio", "guarantees", "reporting")
    }
    for server in servers.values():
        await server.start()
    try:
        async with gateway_client(connection, {n: s.url for n, s in servers.items()}) as client:
            for name in servers:
                response = await client.get(f"/api/v1/{name}/whoami", headers=bearer(lender))
                assert response.status_code == 200, response.text
                assert response.json()["role"] == "lender"
                assert response.json()["organization_id"] == str(ORG)
                assert response.json()["holder"] == "lena@banque.example"
    finally:
        for server in servers.values():
            await server.stop()


async def test_a_service_refuses_forged_principal_headers_sent_straight_to_its_port(engine: AsyncEngine) -> None:
    fake = Principal(key_id=uuid.uuid4(), role=Role.admin)
    async with serving(service_app("portfolio", engine)) as server, httpx.AsyncClient(base_url=server.url) as direct:
        assert_problem(await direct.get("/api/v1/portfolio/whoami"), 401)
        # a hand-made header
        assert_problem(await direct.get("/api/v1/portfolio/whoami", headers={PRINCIPAL_HEADER: "admin"}), 401)
        # a token signed with another secret
        forged = mint_principal_token(fake, secret="x" * 48, audience="portfolio")
        assert_problem(await direct.get("/api/v1/portfolio/whoami", headers={PRINCIPAL_HEADER: forged}), 401)
        # a genuine token minted for another service is not accepted here
        other = mint_principal_token(fake, secret=INTERNAL_SECRET, audience="reporting")
        assert_problem(await direct.get("/api/v1/portfolio/whoami", headers={PRINCIPAL_HEADER: other}), 401)
        # an expired one neither
        expired = jwt.encode(
            {"iss": "fisiq-gateway", "aud": "portfolio", "sub": str(fake.key_id), "role": "admin", "iat": 1, "exp": 2},
            INTERNAL_SECRET,
            algorithm="HS256",
        )
        assert_problem(await direct.get("/api/v1/portfolio/whoami", headers={PRINCIPAL_HEADER: expired}), 401)
        # the genuine one works: the refusals above are about the signature, not the route
        genuine = mint_principal_token(fake, secret=INTERNAL_SECRET, audience="portfolio")
        assert (await direct.get("/api/v1/portfolio/whoami", headers={PRINCIPAL_HEADER: genuine})).json()[
            "role"
        ] == "admin"


def echo_app() -> FastAPI:
    """A stand-in upstream that reports what it received (and can be slow or stream)."""
    app = FastAPI()

    @app.api_route("/api/v1/reporting/echo", methods=["GET", "POST", "PUT"])
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "query": request.url.query,
                "headers": {k: v for k, v in request.headers.items()},
                "body_len": len(body),
                "body_head": body[:20].decode(errors="replace"),
            },
            headers={"Connection": "close, x-secret-hop", "X-Upstream": "yes", "Set-Cookie": "a=b"},
        )

    @app.post("/webhooks/lenders/{lender_id}")
    async def webhook(lender_id: str, request: Request) -> dict[str, Any]:
        return {"lender_id": lender_id, "principal": request.headers.get(PRINCIPAL_HEADER)}

    @app.get("/api/v1/reporting/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(3)
        return {"late": "yes"}

    @app.get("/api/v1/reporting/big")
    async def big() -> StreamingResponse:
        async def chunks() -> Any:
            for _ in range(40):
                yield b"x" * 65536

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return app


async def test_forwarding_sets_forwarded_headers_strips_secrets_and_hop_by_hop(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    async with serving(echo_app()) as upstream, gateway_client(connection, {"reporting": upstream.url}) as client:
        response = await client.post(
            "/api/v1/reporting/echo?as_of=2026-10-31&x=%2F",
            content=b'{"hello": "world"}',
            headers={
                **bearer(key),
                "Content-Type": "application/json",
                "X-Request-ID": "partner-trace-42",
                "Keep-Alive": "timeout=5",
                "X-Fisiq-Principal": "forged",
                "X-Custom": "kept",
            },
        )
        assert response.status_code == 200, response.text
        seen = response.json()
        assert seen["query"] == "as_of=2026-10-31&x=%2F"
        assert seen["body_head"] == '{"hello": "world"}'
        headers = seen["headers"]
        assert headers["x-request-id"] == "partner-trace-42"
        assert headers["x-forwarded-for"] and headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-host"] == "gateway"
        assert headers["x-custom"] == "kept"
        assert "authorization" not in headers and "keep-alive" not in headers
        # the forged principal was replaced by the gateway's own signed one
        assert headers[PRINCIPAL_HEADER.lower()] != "forged"
        assert (
            jwt.decode(headers["x-fisiq-principal"], INTERNAL_SECRET, algorithms=["HS256"], audience="reporting")[
                "role"
            ]
            == "funder"
        )
        # response: request id echoed, upstream headers kept, hop-by-hop dropped
        assert response.headers["x-request-id"] == "partner-trace-42"
        assert response.headers["x-upstream"] == "yes"
        assert "x-secret-hop" not in response.headers
        assert response.headers["x-ratelimit-limit"]


async def test_a_request_id_is_made_when_missing_or_unsafe(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    async with serving(echo_app()) as upstream, gateway_client(connection, {"reporting": upstream.url}) as client:
        made = await client.get("/api/v1/reporting/echo", headers=bearer(key))
        assert len(made.headers["x-request-id"]) == 32
        assert made.json()["headers"]["x-request-id"] == made.headers["x-request-id"]
        unsafe = await client.get("/api/v1/reporting/echo", headers={**bearer(key), "X-Request-ID": "a b\tc<script>"})
        assert unsafe.headers["x-request-id"] != "a b\tc<script>"


async def test_large_bodies_stream_both_ways(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    async with serving(echo_app()) as upstream, gateway_client(connection, {"reporting": upstream.url}) as client:
        payload = b"y" * (3 * 1024 * 1024)
        sent = await client.put("/api/v1/reporting/echo", content=payload, headers=bearer(key))
        assert sent.json()["body_len"] == len(payload)
        big = await client.get("/api/v1/reporting/big", headers=bearer(key))
        assert big.status_code == 200 and len(big.content) == 40 * 65536


async def test_a_body_over_the_limit_is_413(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    async with (
        serving(echo_app()) as upstream,
        gateway_client(connection, {"reporting": upstream.url}, max_body_bytes=1000) as client,
    ):
        assert_problem(await client.post("/api/v1/reporting/echo", content=b"z" * 1001, headers=bearer(key)), 413)


async def test_past_the_rate_limit_is_429_with_retry_after(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder, rate_limit_per_second=1, rate_limit_burst=3)
    other = await insert_key(connection, Role.funder)
    async with serving(echo_app()) as upstream, gateway_client(connection, {"reporting": upstream.url}) as client:
        statuses = [(await client.get("/api/v1/reporting/echo", headers=bearer(key))).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await client.get("/api/v1/reporting/echo", headers=bearer(key))
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-ratelimit-limit"] == "3" and limited.headers["x-ratelimit-remaining"] == "0"
        # the limit is per key: another key is not held back
        assert (await client.get("/api/v1/reporting/echo", headers=bearer(other))).status_code == 200
        # the gateway's own routes count against the same bucket
        assert_problem(await client.get("/api/v1/admin/api-keys", headers=bearer(key)), 429)


async def test_a_stopped_service_is_502_then_503_and_the_gateway_recovers(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    upstream = Upstream(echo_app())
    await upstream.start()
    try:
        async with gateway_client(
            connection, {"reporting": upstream.url}, breaker_failure_threshold=2, breaker_reset_seconds=0.5
        ) as client:
            assert (await client.get("/api/v1/reporting/echo", headers=bearer(key))).status_code == 200
            await upstream.stop()
            body = assert_problem(await client.get("/api/v1/reporting/echo", headers=bearer(key)), 502)
            assert body["service"] == "reporting"
            # the retry of the idempotent GET also failed: the breaker has opened
            opened = await client.get("/api/v1/reporting/echo", headers=bearer(key))
            assert_problem(opened, 503)
            assert int(opened.headers["retry-after"]) >= 1
            # other services are not affected by reporting's breaker
            assert_problem(await client.get("/api/v1/portfolio/whoami", headers=bearer(key)), 502)

            await upstream.start()
            await asyncio.sleep(0.6)
            recovered = await client.get("/api/v1/reporting/echo", headers=bearer(key))
            assert recovered.status_code == 200, recovered.text
    finally:
        await upstream.stop()


async def test_a_slow_service_is_504_within_the_read_timeout(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    async with (
        serving(echo_app()) as upstream,
        gateway_client(connection, {"reporting": upstream.url}, read_timeout=0.3) as client,
    ):
        started = asyncio.get_running_loop().time()
        body = assert_problem(await client.get("/api/v1/reporting/slow", headers=bearer(key)), 504)
        assert asyncio.get_running_loop().time() - started < 2.5
        assert body["service"] == "reporting"
        # the gateway itself is still fine
        assert (await client.get("/api/v1/reporting/echo", headers=bearer(key))).status_code == 200


async def test_a_request_waiting_behind_a_stuck_service_is_answered_504_not_left_hanging(
    connection: AsyncConnection,
) -> None:
    """Every connection to the service is held by a slow request: the next one waits at most the pool wait."""
    key = await insert_key(connection, Role.funder)
    async with (
        serving(echo_app()) as upstream,
        gateway_client(
            connection,
            {"reporting": upstream.url},
            pool_size_per_upstream=1,
            pool_wait_timeout=0.3,
            connect_timeout=0.2,
            read_timeout=10,
        ) as client,
    ):
        slow = asyncio.create_task(client.get("/api/v1/reporting/slow", headers=bearer(key)))
        await asyncio.sleep(0.2)  # the slow request holds the only connection
        started = asyncio.get_running_loop().time()
        body = assert_problem(await client.get("/api/v1/reporting/echo", headers=bearer(key)), 504)
        assert (
            asyncio.get_running_loop().time() - started < 1.5
        )  # the pool wait and the connect timeout, not the 3 s the slow one takes
        assert body["service"] == "reporting"
        assert (await slow).status_code == 200  # the request that had the connection is answered in full


async def test_post_is_not_retried_when_the_upstream_is_down(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    async with gateway_client(connection, breaker_failure_threshold=2) as client:
        # one POST = one failure (no retry), so the breaker is still closed for the second: 502, not 503
        assert_problem(await client.post("/api/v1/reporting/echo", json={}, headers=bearer(key)), 502)
        assert_problem(await client.get("/api/v1/admin/api-keys", headers=bearer(key)), 403)


async def test_lender_webhooks_go_to_portfolio_without_an_api_key(connection: AsyncConnection) -> None:
    """Lender pushes authenticate by their Standard Webhooks signature, checked by the receiving service."""
    async with serving(echo_app()) as upstream, gateway_client(connection, {"portfolio": upstream.url}) as client:
        response = await client.post("/webhooks/lenders/abc", json={"items": []})
        assert response.status_code == 200
        assert response.json() == {"lender_id": "abc", "principal": None}
        assert_problem(await client.post("/webhooks/unknown/x", json={}), 404)


async def test_a_garbled_answer_is_502_and_never_leaves_the_breaker_stuck_open(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    port = free_port()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", port)
    async with gateway_client(
        connection, {"reporting": f"http://127.0.0.1:{port}"}, breaker_failure_threshold=1, breaker_reset_seconds=0.3
    ) as client:
        assert_problem(await client.get("/api/v1/reporting/echo", headers=bearer(key)), 502)
        await asyncio.sleep(0.35)
        # the half-open trial meets garbage again: a failure, not a trial slot held forever
        assert_problem(await client.get("/api/v1/reporting/echo", headers=bearer(key)), 502)
        server.close()
        await server.wait_closed()
        upstream = Upstream(echo_app(), port=port)
        await upstream.start()
        try:
            await asyncio.sleep(0.35)
            assert (await client.get("/api/v1/reporting/echo", headers=bearer(key))).status_code == 200
        finally:
            await upstream.stop()


async def test_a_client_that_disconnects_mid_body_forwards_nothing(connection: AsyncConnection) -> None:
    key = await insert_key(connection, Role.funder)
    received: list[int] = []
    app = FastAPI()

    @app.post("/api/v1/reporting/upload")
    async def upload(request: Request) -> dict[str, int]:
        received.append(len(await request.body()))
        return {"n": received[-1]}

    async with serving(app) as upstream, gateway_client(connection, {"reporting": upstream.url}) as client:
        outer = client._transport.app  # type: ignore[attr-defined]
        for size, headers in ((100, [(b"content-length", b"100")]), (None, [(b"transfer-encoding", b"chunked")])):
            messages = [
                {"type": "http.request", "body": b"x" * 40, "more_body": True},
                {"type": "http.disconnect"},
            ]
            sent: list[dict[str, Any]] = []

            async def receive(queue: list[dict[str, Any]] = messages) -> dict[str, Any]:
                return queue.pop(0) if queue else {"type": "http.disconnect"}

            async def send(message: dict[str, Any], out: list[dict[str, Any]] = sent) -> None:
                out.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/api/v1/reporting/upload",
                "raw_path": b"/api/v1/reporting/upload",
                "query_string": b"",
                "headers": [(b"authorization", f"Bearer {key}".encode()), *headers],
                "client": ("127.0.0.1", 5000),
                "scheme": "http",
            }
            await outer(scope, receive, send)
            await asyncio.sleep(0.2)
            assert received == [], f"a cut-short body ({size}) reached the service"
