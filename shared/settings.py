"""Settings base: one pydantic-settings class per service, each with its own env prefix.

`DATABASE_URL` and `INTERNAL_SECRET` are shared by every process of the platform; a service may override the
database with `<SERVICE>_DATABASE_URL` (each service may then live in its own database).
"""

from __future__ import annotations

import os

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where each process listens by default; `<NAME>_PORT` changes it and `<NAME>_URL` tells the others where it is.
DEFAULT_PORTS = {"gateway": 8000, "applications": 8001, "portfolio": 8002, "guarantees": 8003, "reporting": 8004}


def peer_url(name: str) -> str:
    """Where another service is reachable from this one (service-to-service calls, event feeds)."""
    return os.environ.get(f"{name.upper()}_URL") or f"http://127.0.0.1:{DEFAULT_PORTS[name]}"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = None
    internal_secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    access_log: bool = True
    db_pool_size: int = 10
    db_max_overflow: int = 10

    # the event table (docs/events.md)
    events_enabled: bool = True  # run this process's sequencer and consumers (stand-bys wait on a lock)
    events_retention_days: int = 3650
    events_max_attempts: int = 5
    events_base_backoff_seconds: float = 1.0
    events_poll_seconds: float = 1.0
    events_batch_size: int = 500

    @model_validator(mode="after")
    def _shared_fallbacks(self) -> ServiceSettings:
        if not self.database_url and os.environ.get("DATABASE_URL"):
            self.database_url = os.environ["DATABASE_URL"]
        if self.internal_secret is None and os.environ.get("INTERNAL_SECRET"):
            self.internal_secret = SecretStr(os.environ["INTERNAL_SECRET"])
        return self

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("no database configured: set DATABASE_URL (or the service's own *_DATABASE_URL)")
        return self.database_url

    def require_internal_secret(self) -> str:
        secret = self.internal_secret.get_secret_value() if self.internal_secret else ""
        if len(secret) < 32:
            raise RuntimeError("INTERNAL_SECRET must be set to at least 32 characters (shared by gateway and services)")
        return secret
