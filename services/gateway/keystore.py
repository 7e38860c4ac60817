"""API-key authentication on the hot path.

A key is `fsk_` + 43 url-safe base64 characters (256 random bits). Only its SHA-256 is stored. A verified key is
cached for `GATEWAY_KEY_CACHE_SECONDS` so a request costs no database round-trip; revoking through this gateway
evicts the key at once, and another gateway replica sees it within that many seconds. `last_used_at` is
collected in memory and written in one statement every `GATEWAY_LAST_USED_FLUSH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.gateway.models import ApiKey
from shared.auth import Principal, Role
from shared.background import log_failure
from shared.problems import Unauthorized

KEY_PREFIX = "fsk_"
CACHE_ENTRIES = 50_000
log = logging.getLogger("gateway.keys")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    principal: Principal
    expires_at: datetime | None
    rate_per_second: float | None
    burst: int | None


def bearer_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return x_api_key.strip() if x_api_key else None


class KeyStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, cache_seconds: float) -> None:
        self.sessionmaker = sessionmaker
        self.cache_seconds = cache_seconds
        # LRU of verified (and of unknown) keys; the oldest entries go first when it is full
        self._cache: OrderedDict[str, tuple[float, AuthenticatedKey | None]] = OrderedDict()
        self._last_used: dict[uuid.UUID, datetime] = {}

    async def authenticate(self, presented: str | None) -> AuthenticatedKey:
        if not presented:
            raise Unauthorized("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
        if not presented.startswith(KEY_PREFIX) or len(presented) > 100:
            raise Unauthorized("the API key is not valid")
        digest = hash_key(presented)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.cache_seconds:
            found = hit[1]
            self._cache.move_to_end(digest)
        else:
            found = await self._load(digest)
            self._cache[digest] = (now, found)
            self._cache.move_to_end(digest)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        if found is None:
            raise Unauthorized("the API key is not valid, or has been revoked")
        if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
            raise Unauthorized("the API key has expired")
        self._last_used[found.principal.key_id] = datetime.now(UTC)
        return found

    async def _load(self, digest: str) -> AuthenticatedKey | None:
        async with self.sessionmaker() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
        if row is None:
            return None
        return AuthenticatedKey(
            principal=Principal(
                key_id=row.id, role=Role(row.role), organization_id=row.organization_id, holder=row.holder
            ),
            expires_at=row.expires_at,
            rate_per_second=row.rate_limit_per_second,
            burst=row.rate_limit_burst,
        )

    def evict(self, key_id: uuid.UUID) -> None:
        for digest, (_, found) in list(self._cache.items()):
            if found is not None and found.principal.key_id == key_id:
                del self._cache[digest]

    async def flush_last_used(self) -> None:
        if not self._last_used:
            return
        pending, self._last_used = self._last_used, {}
        async with self.sessionmaker() as session:
            # ORM bulk UPDATE by primary key: one executemany for every key used since the last flush
            await session.execute(update(ApiKey), [{"id": k, "last_used_at": v} for k, v in pending.items()])
            await session.commit()

    async def run_flusher(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush_last_used()
            except Exception:
                log_failure(log, "could not record API keys' last use; will retry")


@contextlib.asynccontextmanager
async def last_used_flusher(store: KeyStore, every: float):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(store.run_flusher(every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await store.flush_last_used()
