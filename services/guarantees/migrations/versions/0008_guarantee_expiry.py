"""guarantees: expiry (overdue since, expired on)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "guarantees",
        sa.Column(
            "overdue_since",
            sa.Date(),
            nullable=True,
            comment="the loan's oldest unpaid due date while it is in arrears (from the portfolio's arrears events)",
        ),
        schema="guarantees",
    )
    op.add_column(
        "guarantees",
        sa.Column("expired_on", sa.Date(), nullable=True, comment="the claim deadline passed with no claim"),
        schema="guarantees",
    )
    op.create_index(
        "ix_guarantees_overdue",
        "guarantees",
        ["overdue_since"],
        schema="guarantees",
        postgresql_where=sa.text("status = 'active' AND overdue_since IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_guarantees_overdue", table_name="guarantees", schema="guarantees")
    op.drop_column("guarantees", "expired_on", schema="guarantees")
    op.drop_column("guarantees", "overdue_since", schema="guarantees")
