from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """`PORTFOLIO_*` environment variables; `DATABASE_URL` and `INTERNAL_SECRET` are shared."""

    model_config = SettingsConfigDict(env_prefix="PORTFOLIO_", extra="ignore")

    port: int = 8002
    # lenders' pushes are applied in the background, at once for those this process stored, by polling for others;
    # false where the push applier runs as a process of its own (`python -m services.portfolio.pushes.worker`)
    pushes_enabled: bool = True
    pushes_poll_seconds: float = 0.5
    # the push applier process: its CPU priority (added niceness: receiving pushes wins the cores) and polling
    pushes_worker_nice: int = 5
    pushes_worker_poll_seconds: float = 0.1
    # items applied in one transaction, pushes of a backlog together: each loan's book is read and written once a
    # transaction however many of its items it holds (5,000 -> 15,000: CPU per item 0.54 -> 0.36 ms in the pushes
    # bench), and its row stays locked until the transaction ends (a staff operation on it waits that long)
    pushes_worker_batch_items: int = 15000
    pushes_receive_pool_size: int = 8  # database connections that store received pushes (besides the main pool)
    # the daily close of day: closes yesterday (UTC) once, checked at start and then at this interval
    close_of_day_enabled: bool = True
    close_of_day_check_seconds: float = 3600.0
