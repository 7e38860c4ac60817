"""Benchmark plumbing: a throw-away database, the platform's real processes, and a bounded HTTP load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
from sqlalchemy.engine import make_url

from deploy.database import (
    DATA_DIR,
    create_database,
    database_exists,
    drop_database,
    resolve_server,
    stop_embedded,
)
from deploy.migrate import migrate_all
from deploy.run import command
from deploy.topology import ROOT, ServiceSpec, WorkerSpec, with_workers

BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    server_url, embedded = resolve_server(DATA_DIR / "bench-postgres")
    url = make_url(server_url).set(database=f"fisiq_bench_{uuid.uuid4().hex[:8]}").render_as_string(hide_password=False)
    asyncio.run(create_database(url))
    try:
        migrate_all(url)
        yield url
    finally:
        asyncio.run(drop_database(url))
        if embedded is not None:
            stop_embedded(embedded)


@contextlib.contextmanager
def kept_database(name: str) -> Iterator[tuple[str, bool]]:
    """A database named `name` kept between runs (opt-in, e.g. the reports' reference load): created and migrated
    when missing; migrated to head when found. Answers its URL and whether it existed already."""
    server_url, embedded = resolve_server(DATA_DIR / "bench-postgres")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    existed = asyncio.run(database_exists(url))
    asyncio.run(create_database(url))
    try:
        migrate_all(url)
        yield url, existed
    finally:
        if embedded is not None:
            stop_embedded(embedded)


@contextlib.contextmanager
def processes(
    specs: Sequence[ServiceSpec], env: dict[str, str], log_dir: Path, workers: Sequence[WorkerSpec] = ()
) -> Iterator[None]:
    """Start each spec's uvicorn process (as `make run` does) and wait until each answers /readyz; with `workers`,
    those background processes too (and the settings they take over from the services, as `make run` sets them)."""
    started: list[subprocess.Popen[bytes]] = []
    if workers:
        env = with_workers(env)
    try:
        for worker in workers:
            log = (log_dir / f"{worker.name}.log").open("wb")
            started.append(subprocess.Popen(shlex.split(worker.command()), cwd=ROOT, env=env, stdout=log, stderr=log))
        for spec in specs:
            log = (log_dir / f"{spec.name}.log").open("wb")
            started.append(
                subprocess.Popen(
                    shlex.split(command(spec, "127.0.0.1", int(env[f"{spec.env_prefix}PORT"]), env)),
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
        for spec in specs:
            port = env[f"{spec.env_prefix}PORT"]
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    tail = (log_dir / f"{spec.name}.log").read_text()[-2000:]
                    raise RuntimeError(f"{spec.name} did not become ready:\n{tail}")
                time.sleep(0.2)
        for worker, proc in zip(workers, started, strict=False):
            if proc.poll() is not None:
                tail = (log_dir / f"{worker.name}.log").read_text()[-2000:]
                raise RuntimeError(f"{worker.name} stopped at its start:\n{tail}")
        yield
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def platform_env(database_url: str, ports: dict[str, int]) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["INTERNAL_SECRET"] = secrets.token_urlsafe(48)
    for name, port in ports.items():
        env[f"{name.upper()}_PORT"] = str(port)
        if name != "gateway":
            env[f"GATEWAY_{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
            env[f"{name.upper()}_URL"] = f"http://127.0.0.1:{port}"  # where consumers and peers find it
    return env


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def http_load(
    url: str, headers: dict[str, str], *, concurrency: int, seconds: float, warmup: float = 2.0
) -> LoadResult:
    """`concurrency` keep-alive connections each sending GETs back to back for `seconds` (after a warm-up)."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        warm_until = time.perf_counter() + warmup
        stop_at = warm_until + seconds

        async def worker() -> None:
            nonlocal errors
            while True:
                started = time.perf_counter()
                if started >= stop_at:
                    return
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                ended = time.perf_counter()
                if started >= warm_until:
                    if ok:
                        latencies.append((ended - started) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(requests=len(latencies), errors=errors, seconds=seconds, latencies_ms=latencies)


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return f"{cpus} cores ({model or platform.machine()}){mem}, Python {platform.python_version()}, {platform.system()}"


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section `name` in docs/benchmarks.md, stamped with the machine and the date."""
    BENCHMARKS_MD.parent.mkdir(exist_ok=True)
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; command: `make bench`._\n\n"
    block = f"{start}\n{stamp}{body.strip()}\n{end}"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n\nWritten by `make bench`.\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)
    print(block, file=sys.stdout, flush=True)
