"""The platform's processes: which services exist, where their migrations are, which port each listens on, and the
background workers that run beside them."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    """`default_nice`: the process's CPU niceness (`<NAME>_NICE` overrides it; 0 runs it at the normal priority)."""

    name: str
    default_port: int
    default_nice: int = 0

    @property
    def migrations_dir(self) -> Path:
        return ROOT / "services" / self.name / "migrations"

    @property
    def factory(self) -> str:
        return f"services.{self.name}.app:create_app"

    @property
    def env_prefix(self) -> str:
        return self.name.upper() + "_"

    def nice(self, env: Mapping[str, str]) -> int:
        return int(env.get(f"{self.env_prefix}NICE", self.default_nice))


# The intake of money data first. The gateway, the portfolio's web process (which receives the lenders' pushes) and
# the applications service (which consumes no event) run at the normal CPU priority; the push applier (niceness 5,
# `PUSH_APPLIER`) and the guarantees service (whose work during a burst of pushes is projecting the portfolio's
# events; its own requests, claims and screenings, are few) one step below; the reporting service (the read
# model's projections and the dashboards) below them all. Under a burst the cores go to receiving the pushes, then
# to applying them, and the read models catch up after (the reconciliation shows how far behind reporting is). Idle
# or lightly loaded, the priorities change nothing. On the 2-core machine (`make bench`, pushes): 540 → ~1,000 single pushes/s, p99
# 187 → ~80 ms, 2,931 → ~3,700 items/s applied. `<NAME>_NICE=0` runs a service at the normal priority.
NICE = {"guarantees": 5, "reporting": 10}
GATEWAY = ServiceSpec("gateway", DEFAULT_PORTS["gateway"])
SERVICES = tuple(
    ServiceSpec(name, port, NICE.get(name, 0)) for name, port in DEFAULT_PORTS.items() if name != "gateway"
)
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
