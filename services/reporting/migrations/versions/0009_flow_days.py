"""read model: each day's flows per currency (`flow_days`), kept by the portfolio projection

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 10:40:00.000000

The flows report summed every flow of its period (some 400,000 on the reference load for a year to date) joined to
its loan; without a filter, a scope or a group other than the currency it now reads one row per day and currency.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_days",
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("disbursed", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("repaid_principal", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("repaid_interest", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("written_off", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("recovered", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("value_date", "currency"),
        schema="reporting",
        comment="loan_flows summed per value date and loan currency (not reversed), kept by the projection",
    )
    from services.reporting.readmodel.portfolio import FLOW_DAYS_SQL

    # every day (the projection's own statement)
    op.execute(FLOW_DAYS_SQL.replace("f.value_date = ANY(:days) AND ", ""))


def downgrade() -> None:
    op.drop_table("flow_days", schema="reporting")
