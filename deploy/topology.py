"""The platform's processes: which services exist, where their migrations are, which port each listens on, and the
background workers that run beside them."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from shared.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    default_port: int

    @property
    def migrations_dir(self) -> Path:
        return ROOT / "services" / self.name / "migrations"

    @property
    def factory(self) -> str:
        return f"services.{self.name}.app:create_app"

    @property
    def env_prefix(self) -> str:
        return self.name.upper() + "_"


GATEWAY = ServiceSpec("gateway", DEFAULT_PORTS["gateway"])
SERVICES = tuple(ServiceSpec(name, port) for name, port in DEFAULT_PORTS.items() if name != "gateway")
ALL = (GATEWAY, *SERVICES)


@dataclass(frozen=True)
class WorkerSpec:
    """A background process with no HTTP port, beside the services: started, supervised and restarted with them.
    `env`: settings every process gets while the worker runs (e.g. the service's own in-process copy of the
    work switched off)."""

    name: str
    module: str
    env: tuple[tuple[str, str], ...] = ()

    def command(self) -> str:
        return shlex.join([sys.executable, "-m", self.module])


# the portfolio's lenders' push applier: the web process only receives pushes (docs/reliability.md, issue 5)
PUSH_APPLIER = WorkerSpec(
    "portfolio-pushes", "services.portfolio.pushes.worker", env=(("PORTFOLIO_PUSHES_ENABLED", "false"),)
)
WORKERS = (PUSH_APPLIER,)


def with_workers(env: dict[str, str]) -> dict[str, str]:
    """`env` for the platform's processes when `WORKERS` run too."""
    return {**env, **{k: v for worker in WORKERS for k, v in worker.env}}
