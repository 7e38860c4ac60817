"""Real processes for the event-table tests: the applications service as producer (it runs the sequencer and
serves the feed) and the test projection as consumer, both on the session's test database with real commits."""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.run import command
from deploy.topology import ROOT, SERVICES
from services.applications.models import events as applications_events
from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from shared.db import make_sessionmaker
from shared.events.outbox import publish
from tests.conftest import INTERNAL_SECRET
from tests.events.projection import DDL, DROP, Recorded
from tests.support import free_port

APPLICATIONS = next(s for s in SERVICES if s.name == "applications")
RESET = [
    "TRUNCATE applications.outbox, applications.outbox_aggregates, applications.outbox_subscribers",
    "UPDATE applications.outbox_head SET position = 0, pruned_through = 0",
    "TRUNCATE reporting.event_subscriptions, reporting.event_inbox, reporting.event_retries",
]


@dataclass
class Committed:
    event_id: uuid.UUID
    aggregate_id: str
    aggregate_seq: int
    amount: int


@dataclass
class EventsPlatform:
    engine: AsyncEngine
    database_url: str
    tmp: Path
    producer_port: int = field(default_factory=free_port)
    consumer_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    committed: list[Committed] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            INTERNAL_SECRET=INTERNAL_SECRET,
            APPLICATIONS_URL=f"http://127.0.0.1:{self.producer_port}",
            APPLICATIONS_LOG_LEVEL="WARNING",
            REPORTING_LOG_LEVEL="WARNING",
            REPORTING_EVENTS_BASE_BACKOFF_SECONDS="0.1",
        )
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], port: int, env: dict[str, str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
        self.procs[name] = proc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (self.tmp / f"{name}.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start")

    def start_producer(self) -> None:
        self._spawn(
            "producer",
            shlex.split(command(APPLICATIONS, "127.0.0.1", self.producer_port)),
            self.producer_port,
            self.env(),
        )

    def start_consumer(self, name: str = "consumer", port: int | None = None, **extra: str) -> None:
        port = port or self.consumer_port
        argv = [sys.executable, "-m", "tests.events.projection", str(port)]
        self._spawn(name, argv, port, self.env(**extra))

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    async def produce(
        self,
        *,
        transactions: int,
        aggregates: list[str],
        per_txn: tuple[int, int] = (1, 3),
        rollback_rate: float = 0.0,
        poison: set[tuple[str, int]] | None = None,
        pause: float = 0.0,
    ) -> None:
        """One producer: `transactions` transactions of a few events each; some rolled back."""
        sessionmaker = make_sessionmaker(self.engine)
        for _ in range(transactions):
            async with sessionmaker() as session:
                pending = []
                # one transaction's aggregates in a stable order, as publish() asks (else producers deadlock)
                for aggregate in sorted(random.choice(aggregates) for _ in range(random.randint(*per_txn))):
                    amount = random.randint(1, 1000)
                    envelope = await publish(
                        session,
                        applications_events,
                        event_type="test.recorded",
                        aggregate_type="test",
                        aggregate_id=aggregate,
                        payload=Recorded(amount=amount),
                    )
                    if poison and (aggregate, envelope.aggregate_seq) in poison:
                        await session.execute(
                            text(
                                "UPDATE applications.outbox SET payload = payload || '{\"poison\": true}' WHERE event_id = :e"
                            ),
                            {"e": envelope.event_id},
                        )
                    pending.append(Committed(envelope.event_id, aggregate, envelope.aggregate_seq, amount))
                    if pause:
                        await asyncio.sleep(random.uniform(0, pause))
                if random.random() < rollback_rate:
                    await session.rollback()
                else:
                    await session.commit()
                    self.committed.extend(pending)

    async def applied(self) -> list[tuple[uuid.UUID, str, int]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT event_id, aggregate_id, aggregate_seq FROM reporting.test_applied ORDER BY seq")
            )
            return [(r.event_id, r.aggregate_id, r.aggregate_seq) for r in rows]

    async def wait_applied(self, count: int, timeout: float = 60) -> list[tuple[uuid.UUID, str, int]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.applied()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)

    async def admin(self, method: str, path: str, port: int | None = None, **kw: object) -> httpx.Response:
        principal = Principal(key_id=uuid.uuid4(), role=Role.admin)
        token = mint_principal_token(principal, secret=INTERNAL_SECRET, audience="reporting")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port or self.consumer_port}", timeout=10) as client:
            return await client.request(method, path, headers={PRINCIPAL_HEADER: token}, **kw)  # type: ignore[arg-type]


def assert_exactly_once_in_order(applied: list[tuple[uuid.UUID, str, int]], committed: list[Committed]) -> None:
    ids = [a[0] for a in applied]
    assert len(ids) == len(set(ids)), "an event was applied twice"
    assert set(ids) == {c.event_id for c in committed}, "applied events differ from committed ones"
    last: dict[str, int] = {}
    for _, aggregate, seq in applied:
        assert seq == last.get(aggregate, 0) + 1, f"aggregate {aggregate}: seq {seq} after {last.get(aggregate, 0)}"
        last[aggregate] = seq


@pytest.fixture
async def platform(engine: AsyncEngine, database_url: str, tmp_path: Path) -> AsyncIterator[EventsPlatform]:
    async with engine.begin() as conn:
        for statement in DROP + DDL + RESET:
            await conn.execute(text(statement))
    events_platform = EventsPlatform(engine=engine, database_url=database_url, tmp=tmp_path)
    try:
        yield events_platform
    finally:
        events_platform.stop_all()
        async with engine.begin() as conn:
            for statement in DROP + RESET:
                await conn.execute(text(statement))


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
