"""Migrate every service's schema to head: `python -m deploy.migrate` (uses each service's database URL)."""

from __future__ import annotations

import os

from deploy.topology import ALL, ServiceSpec
from shared.migrations import upgrade


def database_url_for(spec: ServiceSpec, default: str | None = None) -> str:
    url = os.environ.get(f"{spec.env_prefix}DATABASE_URL") or os.environ.get("DATABASE_URL") or default
    if not url:
        raise SystemExit(f"no database for {spec.name}: set DATABASE_URL or {spec.env_prefix}DATABASE_URL")
    return url


def migrate_all(default_url: str | None = None) -> None:
    for spec in ALL:
        upgrade(spec.migrations_dir, database_url_for(spec, default_url))


if __name__ == "__main__":
    migrate_all()
    print("every schema is at head")
