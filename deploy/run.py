"""`make run`: database, migrations, bootstrap key, then the gateway, every service and the background workers
(`deploy/topology.py`: the portfolio's push applier) under one supervisor.

Each process's lines are prefixed by its name (honcho, a Python Foreman). Ctrl-C or SIGTERM stops every process
(honcho signals each one's process group, then kills what is left after 5 s) and the embedded database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

from honcho.manager import Manager
from honcho.printer import Printer

from deploy.database import DATA_DIR, start_embedded, stop_embedded
from deploy.migrate import migrate_all
from deploy.topology import GATEWAY, SERVICES, WORKERS, ServiceSpec, with_workers
from services.gateway.bootstrap import ensure_admin_key


def port_of(spec: ServiceSpec) -> int:
    return int(os.environ.get(f"{spec.env_prefix}PORT", spec.default_port))


def command(spec: ServiceSpec, host: str, port: int, env: Mapping[str, str] | None = None) -> str:
    """The service's uvicorn process, under `nice` when it runs at a lower CPU priority (`ServiceSpec.nice`)."""
    nice = spec.nice(os.environ if env is None else env)
    lower = ["nice", "-n", str(nice)] if nice > 0 and shutil.which("nice") else []
    return shlex.join(
        [
            *lower,
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            spec.factory,
            "--host",
            host,
            "--port",
            str(port),
            "--timeout-keep-alive",
            "75",
            "--no-access-log",
            "--no-server-header",
            "--timeout-graceful-shutdown",
            "3",
        ]
    )


def banner(gateway_url: str, admin_key: str | None) -> str:
    lines = [
        "",
        "=" * 72,
        f"  FISIQ platform is ready at   {gateway_url}",
        f"  API docs (Swagger UI):       {gateway_url}/docs",
        f"  OpenAPI:                     {gateway_url}/openapi.json",
    ]
    if admin_key:
        lines += [
            "",
            "  Bootstrap admin API key (shown once; keep it safe):",
            f"    {admin_key}",
            f'  Try: curl -H "Authorization: Bearer {admin_key}" {gateway_url}/api/v1/admin/api-keys',
        ]
    lines += ["  Stop with Ctrl-C.", "=" * 72, ""]
    return "\n".join(lines)


def announce_when_ready(gateway_url: str, admin_key: str | None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(gateway_url + "/readyz", timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    print(banner(gateway_url, admin_key), flush=True)
                    return
        except OSError:
            pass
        time.sleep(0.3)
    print(f"the platform did not report ready within {timeout:.0f} s; see the lines above", flush=True)


def main() -> int:
    embedded: Any = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        embedded, url = start_embedded(DATA_DIR / "postgres")
        print(f"embedded PostgreSQL running on its socket in {DATA_DIR / 'postgres'}", flush=True)
    try:
        env = with_workers(dict(os.environ))
        env["DATABASE_URL"] = url
        env.setdefault("INTERNAL_SECRET", secrets.token_urlsafe(48))
        host = env.get("SERVICES_HOST", "127.0.0.1")
        for spec in SERVICES:
            env.setdefault(f"GATEWAY_{spec.name.upper()}_URL", f"http://127.0.0.1:{port_of(spec)}")
            env.setdefault(f"{spec.name.upper()}_URL", f"http://127.0.0.1:{port_of(spec)}")
        migrate_all(url)
        configured = env.get("GATEWAY_BOOTSTRAP_ADMIN_KEY")
        admin_key = asyncio.run(ensure_admin_key(os.environ.get("GATEWAY_DATABASE_URL") or url, configured))

        manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
        gateway_host = env.get("GATEWAY_HOST", "127.0.0.1")
        for spec in SERVICES:
            manager.add_process(spec.name, command(spec, host, port_of(spec), env), env=env)
        manager.add_process(GATEWAY.name, command(GATEWAY, gateway_host, port_of(GATEWAY), env), env=env)
        for worker in WORKERS:
            manager.add_process(worker.name, worker.command(), env=env)
        shown_host = "localhost" if gateway_host in ("127.0.0.1", "0.0.0.0") else gateway_host  # noqa: S104
        gateway_url = f"http://{shown_host}:{port_of(GATEWAY)}"
        threading.Thread(target=announce_when_ready, args=(gateway_url, admin_key), daemon=True).start()
        manager.loop()
        return int(manager.returncode or 0)
    finally:
        if embedded is not None:
            stop_embedded(embedded)
            print("embedded PostgreSQL stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
