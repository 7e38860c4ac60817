"""The gateway's cost: a trivial authenticated GET through the gateway versus straight to the service.

Both at 32 concurrent keep-alive connections for the same duration, with the platform's real processes (uvicorn,
uvloop, access logs on as in `make run`). The load generator runs on the same 2-core machine, so absolute
figures are a floor; the ratio is what the gateway costs.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from deploy.topology import GATEWAY, SERVICES
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.apikeys.service import store_key
from services.gateway.keystore import new_key
from shared.auth import Principal, Role, mint_principal_token
from shared.db import create_engine, make_sessionmaker
from tests.bench.harness import http_load, platform_env, processes, scratch_database, write_section
from tests.support import free_port

CONCURRENCY = 32
SECONDS = 10.0
TARGET = next(s for s in SERVICES if s.name == "applications")


async def bench_key(database_url: str) -> str:
    key = new_key()
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    async with make_sessionmaker(engine)() as session:
        spec = ApiKeyCreate(name="bench", role=Role.analyst, rate_limit_per_second=100_000, rate_limit_burst=1_000_000)
        await store_key(session, plaintext=key, spec=spec, created_by=None)
        await session.commit()
    await engine.dispose()
    return key


def run() -> None:
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs:
        ports = {spec.name: free_port() for spec in (*SERVICES, GATEWAY)}
        env = platform_env(url, ports)
        key = asyncio.run(bench_key(url))
        with processes([*SERVICES, GATEWAY], env, Path(logs)):
            path = f"/api/v1/{TARGET.name}/whoami"
            principal = Principal(key_id=uuid.uuid4(), role=Role.analyst)
            direct_token = mint_principal_token(
                principal, secret=env["INTERNAL_SECRET"], audience=TARGET.name, ttl_seconds=3600
            )
            direct = asyncio.run(
                http_load(
                    f"http://127.0.0.1:{ports[TARGET.name]}{path}",
                    {"X-Fisiq-Principal": direct_token},
                    concurrency=CONCURRENCY,
                    seconds=SECONDS,
                )
            )
            through = asyncio.run(
                http_load(
                    f"http://127.0.0.1:{ports[GATEWAY.name]}{path}",
                    {"Authorization": f"Bearer {key}"},
                    concurrency=CONCURRENCY,
                    seconds=SECONDS,
                )
            )
    ratio = through.rps / direct.rps
    added_p99 = through.percentile(99) - direct.percentile(99)
    verdict_ratio = "meets" if ratio >= 0.30 else "MISSES"
    verdict_p99 = "meets" if added_p99 <= 10 else "MISSES"
    rows = "\n".join(
        f"| {label} | {r.rps:,.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.errors} |"
        for label, r in (("straight to the service", direct), ("through the gateway", through))
    )
    write_section(
        "gateway",
        f"""
## Gateway overhead: `GET {path}` (authenticated), {CONCURRENCY} connections, {SECONDS:.0f} s each

| path | requests/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|
{rows}

- Through-gateway throughput = **{ratio:.2f}** of direct (goal ≥ 0.30: {verdict_ratio}).
- The gateway adds **{added_p99:.1f} ms** at p99 (goal ≤ 10 ms: {verdict_p99}).
""",
    )


if __name__ == "__main__":
    run()
