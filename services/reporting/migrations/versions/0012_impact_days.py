"""read model: the impact report's totals by date (`impact_changes`, `impact_days`, `impact_glp_*`), kept by the projections

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-28 13:45:00.000000

The impact report joined every business financed by D (some 83,000 on the reference load) to its facts in force and
its baseline; without a filter or a scope, its totals now come from each day's changes summed up to D.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

FIGURES = (
    "businesses_financed",
    "businesses_with_facts",
    "members_total",
    "members_women",
    "jobs_created",
    "jobs_maintained",
    "employees_total",
    "employees_women",
    "board_seats_total",
    "board_seats_women",
    "women_led_2x",
    "democratic_governance",
    "general_assembly_held",
    "board_elected_by_members",
    "one_member_one_vote",
    "environmental_practices",
)


def upgrade() -> None:
    op.create_table(
        "impact_changes",
        sa.Column("business_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in FIGURES),
        sa.PrimaryKeyConstraint("business_id", "day"),
        schema="reporting",
        comment="a financed business's impact figures on a day less those of the day before (from its first"
        " disbursement)",
    )
    op.create_index("ix_impact_changes_day", "impact_changes", ["day"], schema="reporting")
    op.create_table(
        "impact_days",
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in FIGURES),
        sa.PrimaryKeyConstraint("day"),
        schema="reporting",
        comment="impact_changes summed per day: the whole fund's impact totals as of D are the sums of the days <= D",
    )
    op.create_table(
        "impact_glp_changes",
        sa.Column("loan_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active_loans", sa.Integer(), nullable=False),
        sa.Column("glp", sa.Numeric(precision=24, scale=4), nullable=False),
        sa.Column("two_x_glp", sa.Numeric(precision=24, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "day"),
        schema="reporting",
        comment="a loan's active outstanding (and its 2X part) on a day less that of the day before",
    )
    op.create_table(
        "impact_glp_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active_loans", sa.Integer(), nullable=False),
        sa.Column("glp", sa.Numeric(precision=24, scale=4), nullable=False),
        sa.Column("two_x_glp", sa.Numeric(precision=24, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency"),
        schema="reporting",
        comment="impact_glp_changes summed per day and currency (the days whose changes cancel out left out)",
    )
    from services.reporting.readmodel.impact import REBUILD_SQL

    # every business (the projections' own statements)
    for sql in REBUILD_SQL:
        op.execute(sql)


def downgrade() -> None:
    op.drop_table("impact_glp_days", schema="reporting")
    op.drop_table("impact_glp_changes", schema="reporting")
    op.drop_table("impact_days", schema="reporting")
    op.drop_index("ix_impact_changes_day", table_name="impact_changes", schema="reporting")
    op.drop_table("impact_changes", schema="reporting")
