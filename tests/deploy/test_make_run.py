"""`make run` end to end: embedded PostgreSQL, every service ready behind the gateway, a clean stop, data kept.

Runs the very module `make run` execs (`python -m deploy.run`) as a real process tree.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from deploy.topology import ALL, PUSH_APPLIER, ROOT
from tests.support import free_port


def start(data_dir: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and k != "INTERNAL_SECRET"}
    env["FISIQ_DATA_DIR"] = str(data_dir)
    for name, port in ports.items():
        env[f"{name.upper()}_PORT"] = str(port)
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.run"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_ready(process: subprocess.Popen[bytes], log: Path, gateway: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        if "platform is ready at" in log.read_text():
            return log.read_text()
        time.sleep(0.2)
    raise AssertionError("not ready in time:\n" + log.read_text()[-3000:])


def platform_processes(data_dir: Path, ports: dict[str, int]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline or any(f"--port {p}" in cmdline for p in ports.values()):
            found.append(proc)
    return found


def supervised(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Every process `make run` started (the workers have no port to find them by)."""
    return psutil.Process(process.pid).children(recursive=True)


def stop(process: subprocess.Popen[bytes], data_dir: Path, ports: dict[str, int]) -> None:
    children = supervised(process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10

    def left() -> list[psutil.Process]:
        return [*platform_processes(data_dir, ports), *(p for p in children if p.is_running())]

    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == [], "processes left behind after SIGTERM"


def check_push_applier(process: subprocess.Popen[bytes], ports: dict[str, int]) -> None:
    """The lenders' push applier runs as a process of its own, and the portfolio's web process only receives; the
    intake of pushes runs at the highest CPU priority of the platform."""
    children = supervised(process)
    workers = [p for p in children if p.cmdline()[1:3] == ["-m", PUSH_APPLIER.module]]
    assert len(workers) == 1, [p.cmdline() for p in children]
    web = [p for p in children if p.cmdline()[1:3] == ["-m", "uvicorn"] and str(ports["portfolio"]) in p.cmdline()]
    assert web and all(p.environ().get("PORTFOLIO_PUSHES_ENABLED") == "false" for p in web)
    assert workers[0].nice() >= web[0].nice() + 5, "the applier runs at a lower CPU priority than the web process"
    # the intake first: the gateway, the portfolio and the applications at the normal priority, the guarantees at the
    # applier's, reporting below it
    uvicorns = [p for p in children if p.cmdline()[1:3] == ["-m", "uvicorn"]]
    nice = {spec.name: [p.nice() for p in uvicorns if str(ports[spec.name]) in p.cmdline()] for spec in ALL}
    assert nice["gateway"] == nice["portfolio"] == nice["applications"] == [web[0].nice()], nice
    assert nice["guarantees"] == [workers[0].nice()], nice
    assert nice["reporting"][0] >= workers[0].nice() + 5, nice


def test_make_run_serves_everything_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {spec.name: free_port() for spec in ALL}
    gateway = f"http://127.0.0.1:{ports['gateway']}"

    first_log = tmp_path / "first.log"
    first = start(data_dir, ports, first_log)
    try:
        output = wait_ready(first, first_log, gateway)
        match = re.search(r"\b(fsk_[A-Za-z0-9_-]{43})\b", output)
        assert match, "the first run prints a bootstrap admin key"
        admin = {"Authorization": f"Bearer {match.group(1)}"}
        assert f"{gateway.replace('127.0.0.1', 'localhost')}/docs" in output

        ready = httpx.get(f"{gateway}/readyz", timeout=10).json()
        assert ready["status"] == "ready" and set(ready["services"]) == {s.name for s in ALL if s.name != "gateway"}
        created = httpx.post(
            f"{gateway}/api/v1/admin/api-keys", json={"name": "kept across runs", "role": "funder"}, headers=admin
        )
        assert created.status_code == 201, created.text
        funder = {"Authorization": f"Bearer {created.json()['key']}"}
        assert httpx.get(f"{gateway}/api/v1/reporting/whoami", headers=funder).json()["role"] == "funder"
        check_push_applier(first, ports)
        # the embedded PostgreSQL lives in the data folder
        assert any("postgres" in " ".join(p.cmdline()) for p in platform_processes(data_dir, ports))
    finally:
        stop(first, data_dir, ports)

    second_log = tmp_path / "second.log"
    second = start(data_dir, ports, second_log)
    try:
        output = wait_ready(second, second_log, gateway)
        assert not re.search(r"\bfsk_[A-Za-z0-9_-]{43}\b", output), "no new bootstrap key once an admin key exists"
        listed = httpx.get(f"{gateway}/api/v1/admin/api-keys", headers=admin).json()
        assert "kept across runs" in [k["name"] for k in listed]
        assert httpx.get(f"{gateway}/api/v1/portfolio/whoami", headers=funder).status_code == 200
    finally:
        stop(second, data_dir, ports)
