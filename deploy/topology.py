"""The platform's processes: which services exist, where their migrations are, which port each listens on."""

from __future__ import annotations

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
