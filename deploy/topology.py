"""The platform's processes: which services exist, where their migrations are, which port each listens on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


GATEWAY = ServiceSpec("gateway", 8000)
SERVICES = (
    ServiceSpec("applications", 8001),
    ServiceSpec("portfolio", 8002),
    ServiceSpec("guarantees", 8003),
    ServiceSpec("reporting", 8004),
)
ALL = (GATEWAY, *SERVICES)
