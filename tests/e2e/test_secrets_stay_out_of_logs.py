"""API keys, webhook secrets and the internal secret never reach a log line, whatever the caller does: keys
created, used, mistyped; webhook secrets issued, rotated, used to sign, forged against; every process of the
platform (gateway and services) logging as in `make run`."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from deploy.topology import GATEWAY, SERVICES
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.apikeys.service import store_key
from services.gateway.keystore import new_key
from shared.auth import Role
from shared.db import create_engine, make_sessionmaker
from shared.webhooks.secrets import sign
from tests.bench.harness import platform_env, processes, scratch_database
from tests.support import free_port


async def admin_key(database_url: str) -> str:
    key = new_key()
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    async with make_sessionmaker(engine)() as session:
        await store_key(
            session, plaintext=key, spec=ApiKeyCreate(name="log test admin", role=Role.admin), created_by=None
        )
        await session.commit()
    await engine.dispose()
    return key


def test_no_key_or_secret_is_ever_logged() -> None:
    with scratch_database() as database_url:  # its own: the keys and lender it commits stay out of other tests
        check_logs(database_url)


def check_logs(database_url: str) -> None:
    admin = asyncio.run(admin_key(database_url))
    secrets: list[str] = [admin]
    with tempfile.TemporaryDirectory() as logs:
        ports = {spec.name: free_port() for spec in (*SERVICES, GATEWAY)}
        env = platform_env(database_url, ports)
        secrets.append(env["INTERNAL_SECRET"])
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        with processes([*SERVICES, GATEWAY], env, Path(logs)), httpx.Client(base_url=gateway, timeout=10) as api:
            as_admin = {"Authorization": f"Bearer {admin}"}
            body = {
                "name": f"Log Bank {uuid.uuid4().hex[:6]}",
                "institution_type": "bank",
                "country": "SN",
                "currencies": ["XOF"],
            }
            lender = api.post("/api/v1/portfolio/lenders", json=body, headers=as_admin)
            assert lender.status_code == 201, lender.text
            first = lender.json()["webhook_secret"]["secret"]
            rotated = api.post(
                f"/api/v1/portfolio/lenders/{lender.json()['id']}/webhook-secrets", json={}, headers=as_admin
            )
            assert rotated.status_code == 201, rotated.text
            second = rotated.json()["secret"]
            key = api.post(
                "/api/v1/admin/api-keys",
                json={"name": "lender system", "role": "lender", "organization_id": lender.json()["id"]},
                headers=as_admin,
            )
            assert key.status_code == 201, key.text
            lender_key = key.json()["key"]
            secrets += [first, second, lender_key]
            # the lender's key used (X-API-Key) and a mistyped one (refused)
            own = api.get(f"/api/v1/portfolio/lenders/{lender.json()['id']}/pushes", headers={"X-API-Key": lender_key})
            assert own.status_code == 200, own.text
            mistyped = lender_key[:-4] + "abcd"
            secrets.append(mistyped)
            assert (
                api.get("/api/v1/portfolio/loans", headers={"Authorization": f"Bearer {mistyped}"}).status_code == 401
            )
            # a signed push, the same replayed, and a forgery signed with a made-up secret
            raw = json.dumps(
                {
                    "items": [
                        {
                            "type": "notice",
                            "transaction_id": "N-1",
                            "loan_id": str(uuid.uuid4()),
                            "message": "hello",
                        }
                    ]
                }
            ).encode()
            signed = sign(second, msg_id="msg_log_1", timestamp=datetime.now(UTC), body=raw)
            hook = f"/webhooks/lenders/{lender.json()['id']}"
            for _ in range(2):
                pushed = api.post(hook, content=raw, headers={**signed, "content-type": "application/json"})
                assert pushed.status_code in (200, 202), pushed.text
            forged_secret = "whsec_" + "QUJD" * 8
            secrets.append(forged_secret)
            forged = sign(forged_secret, msg_id="msg_log_2", timestamp=datetime.now(UTC), body=raw)
            assert (
                api.post(hook, content=raw, headers={**forged, "content-type": "application/json"}).status_code == 401
            )
        written = {path.name: path.read_text(errors="replace") for path in Path(logs).glob("*.log")}
    assert "/webhooks/lenders/" in written["gateway.log"]  # the calls were logged: the check below can fail
    for name, text in written.items():
        for secret in secrets:
            # the secret itself, and a webhook secret's key material without its prefix
            for form in {secret, secret.removeprefix("whsec_")}:
                assert form not in text, f"{name} logs a secret ({form[:8]}...)"
