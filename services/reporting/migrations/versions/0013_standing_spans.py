"""read model: each standing step's length class (`loan_standing.span`) and its index, for the standing as of a past
date; the month-end exposure totals (`guarantee_month_end_totals`)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 02:10:00.000000

The standing as of D was an index range scan of `valid_to > D`: for a past D, most of the 2 million steps of the
reference load. Steps are now classed by their length (k: at most 2^k days; 99: longer, or open), and the steps in
force on D are read class by class as one short range of `on` each (`reports.common.standing_on`). The unfiltered
guarantees report reads each month end's total instead of summing every guarantee's exposure then.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# the expression of `models.SPAN_SQL` as of this revision (a migration does not follow later changes of the models)
SPAN_SQL = (
    "CASE WHEN valid_to >= DATE '9999-12-31' THEN 99 "  # open (asyncpg writes date.max as infinity)
    + " ".join(f'WHEN valid_to - "on" <= {2**k} THEN {k}' for k in range(14))
    + " ELSE 99 END"
)


def upgrade() -> None:
    op.add_column(
        "loan_standing",
        sa.Column(
            "span",
            sa.SmallInteger(),
            sa.Computed(SPAN_SQL, persisted=True),
            nullable=True,
            comment="the step's length class: k when valid_to - on <= 2^k (k <= 13), 99 longer or open"
            " (migration 0013)",
        ),
        schema="reporting",
    )
    op.execute(
        'CREATE INDEX ix_loan_standing_span ON reporting.loan_standing (span, "on")'
        " INCLUDE (loan_id, valid_to, outstanding_principal, overdue_from, status)"
    )
    op.create_table(
        "guarantee_month_end_totals",
        sa.Column("month_end", sa.Date(), nullable=False),
        sa.Column("exposure_cad", sa.Numeric(precision=24, scale=2), nullable=False),
        sa.Column("guarantees", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month_end"),
        schema="reporting",
        comment="sum of guarantee_month_ends per month end (and how many rows), kept by the same refresh",
    )
    op.execute(
        "INSERT INTO reporting.guarantee_month_end_totals (month_end, exposure_cad, guarantees)"
        " SELECT month_end, sum(exposure_cad), count(*) FROM reporting.guarantee_month_ends GROUP BY month_end"
    )
    op.execute("ANALYZE reporting.loan_standing")


def downgrade() -> None:
    op.drop_table("guarantee_month_end_totals", schema="reporting")
    op.drop_index("ix_loan_standing_span", table_name="loan_standing", schema="reporting")
    op.drop_column("loan_standing", "span", schema="reporting")
