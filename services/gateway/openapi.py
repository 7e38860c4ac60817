"""One OpenAPI document for the whole platform: the gateway's own routes plus every service's, merged."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp

from shared.openapi import add_problems, normalize

log = logging.getLogger("gateway.openapi")
INTERNAL_PATHS = ("/healthz", "/readyz")
SECURITY_SCHEMES = {
    "ApiKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer fsk_...` — an API key issued by a fund admin.",
    },
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
}
PUBLIC_PATHS = {"/healthz", "/readyz", "/openapi.json"}
GATEWAY_PROBLEMS = {
    401: "Unauthorized: no valid API key",
    413: "Content Too Large: the body is over the gateway's limit",
    429: "Too Many Requests: over the key's rate limit (see Retry-After)",
    502: "Bad Gateway: the service could not be reached",
    503: "Service Unavailable: the service is failing (circuit open) or not ready",
    504: "Gateway Timeout: the service did not answer in time",
}


def merge(gateway_doc: dict[str, Any], service_docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = json.loads(json.dumps(gateway_doc))
    paths: dict[str, Any] = merged.setdefault("paths", {})
    schemas: dict[str, Any] = merged.setdefault("components", {}).setdefault("schemas", {})
    for service, doc in sorted(service_docs.items()):
        their_schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
        renames = {
            name: f"{service.title()}{name}"
            for name, schema in their_schemas.items()
            if name in schemas and schemas[name] != schema
        }
        text = json.dumps(doc)
        for old, new in renames.items():
            text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
        doc = json.loads(text)
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = schema
        for path, item in doc.get("paths", {}).items():
            if path not in INTERNAL_PATHS and not path.startswith("/internal/"):
                paths[path] = item  # service-to-service routes are not reachable through the gateway
    normalize(merged)
    # what the gateway itself may answer on any route it guards
    add_problems(merged, GATEWAY_PROBLEMS, skip=PUBLIC_PATHS)
    merged["components"]["securitySchemes"] = SECURITY_SCHEMES
    merged["security"] = [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
    for path in PUBLIC_PATHS & paths.keys():
        for operation in paths[path].values():
            operation["security"] = []
    return merged


# A service builds its OpenAPI document on the first request for it, which takes seconds on a busy machine; the
# merged document is cached, so waiting for it costs only the first caller.
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=15)


class OpenApiCache:
    def __init__(self, upstreams: dict[str, str], ttl: float) -> None:
        self.upstreams = upstreams
        self.ttl = ttl
        self._doc: dict[str, Any] | None = None
        self._at = 0.0

    async def get(self, gateway_doc: dict[str, Any], session: aiohttp.ClientSession) -> dict[str, Any]:
        if self._doc is not None and time.monotonic() - self._at < self.ttl:
            return self._doc

        async def fetch(name: str, base: str) -> tuple[str, dict[str, Any] | None]:
            try:
                async with session.get(base + "/openapi.json", timeout=FETCH_TIMEOUT) as resp:
                    if resp.status == 200:
                        return name, await resp.json()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("no OpenAPI from %s: %s", name, type(exc).__name__)
            return name, None

        results = await asyncio.gather(*(fetch(n, b) for n, b in self.upstreams.items()))
        docs = {name: doc for name, doc in results if doc is not None}
        merged = merge(gateway_doc, docs)
        missing = sorted(set(self.upstreams) - set(docs))
        if missing:
            merged["info"]["x-unavailable-services"] = missing
        else:
            self._doc, self._at = merged, time.monotonic()
        return merged
