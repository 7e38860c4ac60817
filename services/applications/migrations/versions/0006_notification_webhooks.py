"""applications: callback endpoints of ICAs, notification deliveries and their attempts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from shared.webhooks import migration_v1

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migration_v1.upgrade("applications")


def downgrade() -> None:
    migration_v1.downgrade("applications")
