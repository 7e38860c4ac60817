"""`make fuzz`: schemathesis against the gateway's merged OpenAPI, on the platform's real processes.

The platform runs on a scratch database (every service and the gateway, as `make run` starts them). Schemathesis
generates requests from `/openapi.json` — valid ones, from the examples and the schemas, and invalid ones — and
sends them through the gateway, once with a fund admin's key (who may call almost everything) and once with an
ICA's key (whose calls are mostly refused: the refusals must be problems too, never a 500). Every answer is checked:
no 5xx, and every status, content type and body is one the OpenAPI declares for that operation.

The verdict is schemathesis' own exit code: 0 when nothing was found. The report of each run is kept in
`.data/fuzz/` (JUnit XML) and summarised on the terminal; docs/reliability.md says what was found and fixed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from deploy.topology import GATEWAY, ROOT, SERVICES
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.apikeys.service import store_key
from services.gateway.keystore import new_key
from shared.auth import Role
from shared.db import create_engine, make_sessionmaker
from tests.bench.harness import platform_env, processes, scratch_database
from tests.support import free_port

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
REPORTS = ROOT / ".data" / "fuzz"


async def keys(database_url: str) -> dict[str, str]:
    """An admin's key and an ICA's, with rate limits high enough for the fuzzer."""
    made: dict[str, str] = {}
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    async with make_sessionmaker(engine)() as session:
        for name, role, org in (("admin", Role.admin, None), ("ica", Role.ica, uuid.uuid4())):
            key = new_key()
            spec = ApiKeyCreate(
                name=f"fuzz {name}",
                role=role,
                organization_id=org,
                rate_limit_per_second=100_000,
                rate_limit_burst=1_000_000,
            )
            await store_key(session, plaintext=key, spec=spec, created_by=None)
            made[name] = key
        await session.commit()
    await engine.dispose()
    return made


def fuzz(gateway: str, key: str, name: str, *, max_examples: int, workers: int) -> int:
    REPORTS.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{gateway}/openapi.json",
        "--url",
        gateway,
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--workers",
        str(workers),
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "30",
        "--seed",
        "20261128",
        "--report",
        "junit",
        "--report-dir",
        str(REPORTS / name),
        "--no-color",
    ]
    print(f"\n== schemathesis with the {name} key ==", flush=True)
    return subprocess.call(command, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "25")))
    # one worker: hypothesis describing its strategies from two threads trips a CPython 3.11 ast bug
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs:
        ports = {spec.name: free_port() for spec in (*SERVICES, GATEWAY)}
        env = platform_env(url, ports)
        made = asyncio.run(keys(url))
        with processes([*SERVICES, GATEWAY], env, Path(logs)):
            gateway = f"http://127.0.0.1:{ports[GATEWAY.name]}"
            verdicts = {
                name: fuzz(gateway, key, name, max_examples=args.max_examples, workers=args.workers)
                for name, key in made.items()
            }
        for spec in (*SERVICES, GATEWAY):
            errors = [
                line[:3000]
                for line in (Path(logs) / f"{spec.name}.log").read_text(errors="replace").splitlines()
                if '"level": "ERROR"' in line
            ]
            if errors:
                print(f"\n== {spec.name} logged {len(errors)} errors; the first ones ==", *errors[:5], sep="\n")
    failed = [name for name, code in verdicts.items() if code != 0]
    print(f"\nfuzz verdict: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
