"""reporting: event tables (outbox, sequencer head, subscribers; subscriptions, inbox, retries)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from shared.events import migration_v1

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migration_v1.upgrade("reporting")


def downgrade() -> None:
    migration_v1.downgrade("reporting")
