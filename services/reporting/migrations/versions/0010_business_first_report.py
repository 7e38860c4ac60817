"""read model: each business's earliest impact report (`businesses.first_reported_on`)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 10:50:00.000000

The impact report's baseline (the report in force at the first disbursement, else the earliest one by D) is the
report in force at the later of the first disbursement and the earliest report: one lookup, no sort per business.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "businesses",
        sa.Column("first_reported_on", sa.Date(), nullable=True, comment="the date of its earliest impact report"),
        schema="reporting",
    )
    op.execute(
        "UPDATE reporting.businesses b SET first_reported_on = e.first_on FROM ("
        " SELECT business_id, min(reported_on) AS first_on FROM reporting.business_facts GROUP BY business_id) e"
        " WHERE b.business_id = e.business_id"
    )


def downgrade() -> None:
    op.drop_column("businesses", "first_reported_on", schema="reporting")
