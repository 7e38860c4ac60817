from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`APPLICATIONS_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared."""

    model_config = SettingsConfigDict(env_prefix="APPLICATIONS_", extra="ignore")

    port: int = 8001
