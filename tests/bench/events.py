"""The event table's throughput and latency, with the real producer (the applications service: sequencer and
feed) and a real consumer process (the test projection: two writes per event), on a scratch database.

1. Backlog drain: 20,000 events committed while the consumer is down, then the rate it applies them at.
2. Sustained: 8 producers committing as fast as they can for 15 s while the consumer keeps up.
3. Latency at a steady 500 events/s (one event per transaction) for 20 s: commit returned → handler applied.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text

from deploy.run import command
from deploy.topology import SERVICES
from services.applications.models import events as applications_events
from shared.db import create_engine, make_sessionmaker
from shared.events.outbox import publish
from tests.bench.harness import platform_env, scratch_database, write_section
from tests.events.projection import DDL, Recorded
from tests.support import free_port

APPLICATIONS = next(s for s in SERVICES if s.name == "applications")


def spawn(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def applied_count(engine) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM reporting.test_applied")) or 0)


async def produce_backlog(engine, total: int, per_txn: int = 100) -> None:  # type: ignore[no-untyped-def]
    sessionmaker = make_sessionmaker(engine)

    async def worker(n: int, index: int) -> None:
        for start in range(0, n, per_txn):
            async with sessionmaker() as session:
                for i in range(start, min(start + per_txn, n)):
                    await publish(
                        session,
                        applications_events,
                        event_type="test.recorded",
                        aggregate_type="bench",
                        aggregate_id=f"w{index}-{i % 50}",
                        payload=Recorded(amount=i),
                    )
                await session.commit()

    await asyncio.gather(*(worker(total // 8, k) for k in range(8)))


def sustained_process(url: str, seconds: float, prefix: str) -> tuple[int, float]:
    """One producer process (a Python process drives one core at most: the load is spread over two)."""

    async def go() -> tuple[int, float]:
        engine = create_engine(url, pool_size=8, max_overflow=0)
        try:
            return await sustained(engine, seconds, prefix)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def sustained_load(url: str, seconds: float, processes: int = 2) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, sustained_process, url, seconds, f"p{k}") for k in range(processes))
        )
    return sum(r[0] for r in results), max(r[1] for r in results)


async def sustained(engine, seconds: float, prefix: str = "s") -> tuple[int, float]:  # type: ignore[no-untyped-def]
    sessionmaker = make_sessionmaker(engine)
    stop_at = time.perf_counter() + seconds
    produced = 0

    async def worker(index: int) -> None:
        nonlocal produced
        i = 0
        while time.perf_counter() < stop_at:
            async with sessionmaker() as session:
                for _ in range(25):
                    i += 1
                    await publish(
                        session,
                        applications_events,
                        event_type="test.recorded",
                        aggregate_type="bench",
                        aggregate_id=f"{prefix}{index}-{i % 50}",
                        payload=Recorded(amount=i),
                    )
                await session.commit()
            produced += 25

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(8)))
    return produced, time.perf_counter() - started


async def steady(engine, rate: float, seconds: float) -> dict[uuid.UUID, float]:  # type: ignore[no-untyped-def]
    """One event per transaction at `rate`/s (open loop, paced on a schedule); answers commit times."""
    sessionmaker = make_sessionmaker(engine)
    committed: dict[uuid.UUID, float] = {}
    interval = 1 / rate
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int) -> None:
        async with sessionmaker() as session:
            envelope = await publish(
                session,
                applications_events,
                event_type="test.recorded",
                aggregate_type="lat",
                aggregate_id=f"l{i % 200}",
                payload=Recorded(amount=i),
            )
            await session.commit()
        committed[envelope.event_id] = time.time()

    tasks = []
    for i in range(total):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return committed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def wait_for(engine, count: int, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while await applied_count(engine) < count:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"only {await applied_count(engine)} of {count} events applied in {timeout} s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def measure(url: str, logs: str) -> tuple[int, float, int, float, float, list[float]]:
    ports = {"applications": free_port(), "reporting": free_port()}
    env = platform_env(url, ports)
    env["APPLICATIONS_URL"] = f"http://127.0.0.1:{ports['applications']}"
    env["APPLICATIONS_LOG_LEVEL"] = env["REPORTING_LOG_LEVEL"] = "WARNING"
    engine = create_engine(url, pool_size=12, max_overflow=4)
    async with engine.begin() as conn:
        for statement in DDL:
            await conn.execute(text(statement))
    producer = spawn(
        shlex.split(command(APPLICATIONS, "127.0.0.1", ports["applications"])),
        env,
        ports["applications"],
        Path(logs, "producer.log"),
    )
    consumer_argv = [sys.executable, "-m", "tests.events.projection", str(ports["reporting"])]
    consumer = None
    try:
        backlog = 20_000
        await produce_backlog(engine, backlog)
        consumer = spawn(consumer_argv, env, ports["reporting"], Path(logs, "consumer.log"))
        drain_seconds = await wait_for(engine, backlog, 300)

        before = await applied_count(engine)
        produced, elapsed = await sustained_load(url, 15)
        caught_up = await wait_for(engine, before + produced, 120)

        committed = await steady(engine, 500, 20)
        await wait_for(engine, backlog + produced + len(committed), 120)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT event_id, extract(epoch FROM applied_at) AS at FROM reporting.test_applied"
                    " WHERE event_id = ANY(:ids)"
                ),
                {"ids": list(committed)},
            )
            latencies = [(float(r.at) - committed[r.event_id]) * 1000 for r in rows]
        return backlog, drain_seconds, produced, elapsed, caught_up, latencies
    finally:
        if consumer is not None:
            stop(consumer)
        stop(producer)
        await engine.dispose()


def run() -> None:
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs:
        backlog, drain_seconds, produced, elapsed, caught_up, latencies = asyncio.run(measure(url, logs))
    drain_rate = backlog / drain_seconds
    e2e_rate = produced / (elapsed + caught_up)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    write_section(
        "events",
        f"""
## Event table: producer commit → consumer applied (real processes, the projection writes 2 rows per event)

| measure | figure |
|---|---:|
| backlog drain: {backlog:,} events committed while the consumer was down | **{drain_rate:,.0f} events/s** |
| sustained: 2 producer processes x 8 connections, 25 events a transaction, at full speed for 15 s, committed | {produced / elapsed:,.0f} events/s ({produced:,} events) |
| sustained: end to end, all of them applied (the last {caught_up:.1f} s after producers stopped) | **{e2e_rate:,.0f} events/s** |
| steady 500 events/s for 20 s, one event per transaction: latency p50 | **{p50:.0f} ms** |
| same: latency p99 | **{p99:.0f} ms** |
| same: max | {max(latencies):.0f} ms |

Goals on the 2-core machine: ≥ 2,000 events/s sustained ({"meets" if min(drain_rate, e2e_rate) >= 2000 else "MISSES"}),
p99 ≤ 250 ms at 500 events/s ({"meets" if p99 <= 250 else "MISSES"}).
""",
    )


if __name__ == "__main__":
    run()
