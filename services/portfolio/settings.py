from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`PORTFOLIO_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared."""

    model_config = SettingsConfigDict(env_prefix="PORTFOLIO_", extra="ignore")

    port: int = 8002
    # lenders' pushes are applied in the background, at once for those this process stored, by polling for others
    pushes_enabled: bool = True
    pushes_poll_seconds: float = 0.5
    pushes_receive_pool_size: int = 8  # database connections that store received pushes (besides the main pool)
    # the daily close of day: closes yesterday (UTC) once, checked at start and then at this interval
    close_of_day_enabled: bool = True
    close_of_day_check_seconds: float = 3600.0
