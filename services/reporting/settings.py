from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`REPORTING_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared."""

    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    port: int = 8004
