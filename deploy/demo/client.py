"""The demo's only way in: HTTP to the gateway, with an API key per call.

- 429: waits as long as `Retry-After` says, then tries again;
- 502, 503, 504 and connection failures: retried with exponential backoff and jitter (POSTs carry an
  `Idempotency-Key` wherever the API takes one, so a retry never applies twice);
- any other error: `ApiError` with the problem's status, title and detail.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
_backoff = wait_exponential_jitter(multiplier=0.5, max=15, jitter=0.5)


class ApiError(Exception):
    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.problem: dict[str, Any] = response.json()
        except ValueError:
            self.problem = {"detail": response.text[:500]}
        detail = self.problem.get("detail") or self.problem.get("title") or ""
        errors = self.problem.get("errors")
        super().__init__(f"{method} {path} → {self.status}: {detail}" + (f" {errors}" if errors else ""))


class Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.request.method} {response.request.url.path} → {response.status_code}")
        self.response = response


def _wait(state: RetryCallState) -> float:
    """`Retry-After` when the gateway gave one (429, an open circuit), else exponential backoff."""
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, Retryable):
        after = error.response.headers.get("retry-after")
        if after is not None:
            try:
                return max(0.05, float(after))
            except ValueError:
                pass
    return float(_backoff(state))


class Gateway:
    def __init__(self, base_url: str, *, concurrency: int = 8, timeout: float = 60.0, attempts: int = 8) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2),
        )
        self.gate = asyncio.Semaphore(concurrency)
        self.attempts = attempts
        self.requests = 0
        self.retries = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, Retryable | httpx.TransportError)),
            wait=_wait,
            stop=stop_after_attempt(self.attempts),
            before_sleep=lambda _: self._count_retry(),
            reraise=True,
        ):
            with attempt:
                async with self.gate:
                    self.requests += 1
                    response = await send()
                if response.status_code in RETRIED_STATUSES:
                    raise Retryable(response)
                return response
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _count_retry(self) -> None:
        self.retries += 1

    async def request(
        self,
        method: str,
        path: str,
        key: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if content_type is not None:
            headers["Content-Type"] = content_type

        async def send() -> httpx.Response:
            return await self.http.request(
                method, path, headers=headers, json=json_body, params=params, content=content
            )

        try:
            response = await self._send(send)
        except Retryable as exc:
            raise ApiError(method, path, exc.response) from None
        if response.status_code not in ok:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    async def get(self, path: str, key: str, **params: Any) -> Any:
        return await self.request("GET", path, key, params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, key: str, body: Any, *, idem: str | None = None) -> Any:
        return await self.request("POST", path, key, json_body=body, idempotency_key=idem)

    async def put(self, path: str, key: str, body: Any, *, idem: str | None = None) -> Any:
        return await self.request("PUT", path, key, json_body=body, idempotency_key=idem)

    async def pages(self, path: str, key: str, **params: Any) -> list[Any]:
        """Every item of a cursor-paginated listing."""
        items: list[Any] = []
        cursor = None
        while True:
            page = await self.get(path, key, **params, cursor=cursor)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def push(self, lender_id: str, secret: str, msg_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """A lender's signed push (Standard Webhooks), signed anew at each attempt (the timestamp must be fresh);
        a retry keeps the same `webhook-id`, so the platform counts it once."""
        body = json.dumps({"items": items}, separators=(",", ":")).encode()
        path = f"/webhooks/lenders/{lender_id}"

        signer = Webhook(secret)

        async def send() -> httpx.Response:
            now = datetime.now(UTC)
            headers = {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(msg_id, now, body.decode()),
                "Content-Type": "application/json",
            }
            return await self.http.post(path, content=body, headers=headers)

        try:
            response = await self._send(send)
        except Retryable as exc:
            raise ApiError("POST", path, exc.response) from None
        if response.status_code not in (200, 202):
            raise ApiError("POST", path, response)
        receipt: dict[str, Any] = response.json()
        return receipt


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.5) -> None:
    """Polls `check` until it answers True; past `timeout` seconds, a clear error naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
