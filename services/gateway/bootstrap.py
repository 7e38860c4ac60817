"""First-run bootstrap: make sure an admin key exists, so the fund's admin can create every other key.

`GATEWAY_BOOTSTRAP_ADMIN_KEY=fsk_...` installs that key (idempotently). Otherwise, when no active admin key exists,
a new one is generated and returned once, to be printed by `make run`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from services.gateway.apikeys import service
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.keystore import KEY_PREFIX, hash_key, new_key
from services.gateway.models import ApiKey
from services.gateway.settings import Settings
from shared.auth import Role
from shared.db import create_engine, make_sessionmaker

BOOTSTRAP_SPEC = ApiKeyCreate(name="bootstrap admin", role=Role.admin)


async def ensure_admin_key(database_url: str, configured: str | None) -> str | None:
    """The plaintext of a key created now, or None when nothing new was created."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0, application_name="gateway-bootstrap")
    try:
        async with make_sessionmaker(engine)() as session:
            if configured:
                if not configured.startswith(KEY_PREFIX) or len(configured) < 36:
                    raise SystemExit(f"GATEWAY_BOOTSTRAP_ADMIN_KEY must start with {KEY_PREFIX} and be 36+ characters")
                exists = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(configured)))
                if exists is None:
                    await service.store_key(session, plaintext=configured, spec=BOOTSTRAP_SPEC, created_by=None)
                    await session.commit()
                return None
            if await service.has_active_admin(session):
                return None
            plaintext = new_key()
            await service.store_key(session, plaintext=plaintext, spec=BOOTSTRAP_SPEC, created_by=None)
            await session.commit()
            return plaintext
    finally:
        await engine.dispose()


def main() -> None:
    settings = Settings()
    configured = settings.bootstrap_admin_key.get_secret_value() if settings.bootstrap_admin_key else None
    created = asyncio.run(ensure_admin_key(settings.require_database_url(), configured))
    if created:
        print(created)


if __name__ == "__main__":
    main()
