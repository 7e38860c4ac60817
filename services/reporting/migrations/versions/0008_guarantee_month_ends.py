"""read model: each guarantee's exposure at each month end (the claims rate's samples), kept by the projections

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 10:30:00.000000

The guarantees report sampled the exposure of every guarantee at the 11 or 12 month ends of its period by a sweep
over the guaranteed loans' standing steps: most of its time on the reference load. The month ends now come from
this table, filled by the projections (and here, for a database already holding a read model).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guarantee_month_ends",
        sa.Column("guarantee_id", sa.UUID(), nullable=False),
        sa.Column("month_end", sa.Date(), nullable=False),
        sa.Column("exposure_cad", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("guarantee_id", "month_end"),
        schema="reporting",
        comment="exposure (CAD) of each guarantee live at each month end up to the latest rate date, when not zero",
    )
    op.execute(
        "CREATE INDEX ix_guarantee_month_ends_month_end ON reporting.guarantee_month_ends (month_end)"
        " INCLUDE (guarantee_id, exposure_cad)"
    )
    from services.reporting.readmodel.exposure import statements

    # every guarantee, every month end (the projections' own statement)
    _, refill, params = statements(everyone=True)
    op.get_bind().execute(sa.text(refill), params)


def downgrade() -> None:
    op.drop_index("ix_guarantee_month_ends_month_end", table_name="guarantee_month_ends", schema="reporting")
    op.drop_table("guarantee_month_ends", schema="reporting")
