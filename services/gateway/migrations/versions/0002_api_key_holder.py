"""gateway: the holder of an API key (maker-checker rules compare holders)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("holder", sa.String(320), nullable=True), schema="gateway")


def downgrade() -> None:
    op.drop_column("api_keys", "holder", schema="gateway")
