from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`GUARANTEES_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared."""

    model_config = SettingsConfigDict(env_prefix="GUARANTEES_", extra="ignore")

    port: int = 8003
    # guarantees whose claim deadline passed with no claim are expired: checked at start and at this interval
    expiry_enabled: bool = True
    expiry_check_seconds: float = 3600.0
