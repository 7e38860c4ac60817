from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`APPLICATIONS_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared."""

    model_config = SettingsConfigDict(env_prefix="APPLICATIONS_", extra="ignore")

    port: int = 8001

    # notifications to ICAs (docs/webhooks.md)
    webhooks_allow_http: bool = False  # local development and tests only: production endpoints are HTTPS
    webhooks_max_attempts: int = 8
    webhooks_base_backoff_seconds: float = 30.0

    documents_max_bytes: int = 10 * 1024 * 1024
