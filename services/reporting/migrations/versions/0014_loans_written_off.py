"""read model: the loans written off, by write-off date (a partial index), for the portfolio report's write-offs

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 07:00:00.000000

The portfolio report reads only the loans active on D from the standing, and the loans written off by D apart
(`reports.portfolio`): the few written-off loans are found by this index instead of a scan of every loan.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_loans_written_off ON reporting.loans (written_off_on) WHERE written_off_on IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_loans_written_off", table_name="loans", schema="reporting")
