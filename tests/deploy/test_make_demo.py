"""`make demo` end to end: `make run`'s supervisor (every service behind the gateway) on a fresh database, the
demo generator at a tiny scale over HTTP only, then the figures a user would look at, read back from the API."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy.engine import make_url

from deploy.database import create_database, drop_database
from deploy.demo.__main__ import load
from deploy.topology import ALL, ROOT
from tests.support import free_port

QUIET = {
    f"{spec.env_prefix}{name}": value
    for spec in ALL
    for name, value in (("LOG_LEVEL", "WARNING"), ("ACCESS_LOG", "false"))
}


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`python -m deploy.run` on a database of its own (the demo commits a whole dataset), with a known admin key."""
    url = make_url(database_url).set(database=f"fisiq_demo_{uuid.uuid4().hex[:8]}").render_as_string(False)
    asyncio.run(create_database(url))
    admin = "fsk_" + secrets.token_urlsafe(32)
    ports = {spec.name: free_port() for spec in ALL}
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and k != "INTERNAL_SECRET"}
    env.update(QUIET, DATABASE_URL=url, GATEWAY_BOOTSTRAP_ADMIN_KEY=admin, FISIQ_DATA_DIR=str(tmp_path / "data"))
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    log = tmp_path / "run.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.run"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while "platform is ready at" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield f"http://127.0.0.1:{ports['gateway']}", admin
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        asyncio.run(drop_database(url))


async def test_make_demo_loads_every_state_and_reconciles(platform: tuple[str, str]) -> None:
    gateway, admin = platform
    output = io.StringIO()
    summary = await load(gateway, admin, seed=11, scale=0.04, console=Console(file=output, width=120))

    # every application state a user can find, and one loan per approval
    assert set(summary.applications) == {
        "draft", "under_review", "committee", "returned", "rejected", "withdrawn", "approved",
    }  # fmt: skip
    assert summary.approvals >= 9
    assert sum(summary.loans.values()) == summary.approvals == summary.applications["approved"]
    assert summary.loans["written_off"] >= 2 and summary.loans["active"] >= 1 and summary.restructured == 1
    # the lenders' pushes: every repayment applied; only the deliberate resend and the wrong-currency item not
    assert summary.items_applied == summary.items_sent - 2 > 50
    assert (summary.items_duplicate, summary.items_rejected) == (1, 1)
    assert summary.rejected_reasons == {"wrong_currency": 1}
    # guarantees: claims paid by a second staff member, one validated only, one that lapsed with no claim
    assert summary.claims["paid"] >= 2 and summary.claims["validated"] == 1
    assert summary.guarantees["paid"] >= 2 and summary.guarantees["expired"] == 1
    assert summary.capital_entries["claim_paid"] >= 2 and summary.capital_entries["recovery"] >= 1
    assert summary.capital_entries["contribution"] == 3

    # read back independently with the admin key: pushes all processed, each claim paid by two different people
    async with httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"Bearer {admin}"}) as api:
        lenders = (await api.get("/api/v1/portfolio/lenders")).json()
        processed = applied = 0
        for lender in lenders:
            pushes = (await api.get(f"/api/v1/portfolio/lenders/{lender['id']}/pushes", params={"limit": 500})).json()
            assert {p["status"] for p in pushes["items"]} <= {"processed"}
            processed += len(pushes["items"])
            applied += sum(p["applied"] for p in pushes["items"])
        assert processed == summary.pushes and applied == summary.items_applied
        for claim in (await api.get("/api/v1/guarantees/claims")).json():
            if claim["status"] == "paid":
                actors = {step["to_status"]: step["actor"] for step in claim["history"]}
                assert actors["validated"] != actors["paid"]
        # once the events have drained, the reports' totals equal the services' own, figure by figure
        reconciliation: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reconciliation = (
                await api.get("/api/v1/reporting/reconciliation", params={"as_of": str(datetime.now(UTC).date())})
            ).json()
            if reconciliation.get("reconciled"):
                break
            await asyncio.sleep(1)
        assert reconciliation.get("reconciled") is True, reconciliation.get("differences", reconciliation)
        # the demo revokes the keys it made for itself
        keys = (await api.get("/api/v1/admin/api-keys")).json()
        assert all(k["revoked_at"] for k in keys if k["name"].startswith("demo "))
    assert "Repayment pushes" in output.getvalue()
