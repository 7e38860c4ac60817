from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`GATEWAY_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared with the services."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    port: int = 8000
    applications_url: str = "http://127.0.0.1:8001"
    portfolio_url: str = "http://127.0.0.1:8002"
    guarantees_url: str = "http://127.0.0.1:8003"
    reporting_url: str = "http://127.0.0.1:8004"

    connect_timeout: float = 2.0
    read_timeout: float = 30.0
    # longest a request waits for a free connection to its service (all `pool_size_per_upstream` busy) before it
    # is answered 504: with the connect and read timeouts, every request is answered within about 42 s
    pool_wait_timeout: float = 10.0
    pool_size_per_upstream: int = 100
    max_body_bytes: int = 20 * 1024 * 1024

    breaker_failure_threshold: int = 5
    # a service restarted after a crash is usually up within 2-3 s: try it again after 3 s
    breaker_reset_seconds: float = 3.0

    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100

    key_cache_seconds: float = 5.0
    last_used_flush_seconds: float = 10.0
    openapi_cache_seconds: float = 30.0

    bootstrap_admin_key: SecretStr | None = None

    def upstreams(self) -> dict[str, str]:
        return {
            "applications": self.applications_url,
            "portfolio": self.portfolio_url,
            "guarantees": self.guarantees_url,
            "reporting": self.reporting_url,
        }
