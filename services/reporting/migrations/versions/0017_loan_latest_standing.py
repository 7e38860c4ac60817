"""read model: each loan carries its latest standing step (start, outstanding principal, overdue_from, status)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 15:30:00.000000

The portfolio report on a day D on or after every loan's latest step (today, as a rule) reads the loans alone, not
the standing steps in force joined to them (`reports.portfolio`); whoever writes a loan's standing keeps the copy
(`readmodel.portfolio`). Filled here from the standing recorded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "loans", sa.Column("latest_on", sa.Date(), comment="the start of its latest standing step"), schema="reporting"
    )
    op.add_column(
        "loans",
        sa.Column("latest_outstanding", sa.Numeric(20, 4), comment="that step's outstanding principal"),
        schema="reporting",
    )
    op.add_column(
        "loans", sa.Column("latest_overdue_from", sa.Date(), comment="that step's overdue_from"), schema="reporting"
    )
    op.add_column("loans", sa.Column("latest_status", sa.String(30), comment="that step's status"), schema="reporting")
    op.execute(
        """
UPDATE reporting.loans l SET (latest_on, latest_outstanding, latest_overdue_from, latest_status) = (
    SELECT s."on", s.outstanding_principal, s.overdue_from, s.status FROM reporting.loan_standing s
    WHERE s.loan_id = l.loan_id ORDER BY s."on" DESC LIMIT 1)
"""
    )
    op.create_index("ix_loans_latest_on", "loans", ["latest_on"], schema="reporting")
    op.execute("ANALYZE reporting.loans")


def downgrade() -> None:
    op.drop_index("ix_loans_latest_on", table_name="loans", schema="reporting")
    for name in ("latest_on", "latest_outstanding", "latest_overdue_from", "latest_status"):
        op.drop_column("loans", name, schema="reporting")
