"""read model: each guarantee carries its loan's latest standing step (start, end, outstanding principal)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 14:45:00.000000

The guarantees report's exposure on a day D on or after every guaranteed loan's latest step (today's, as a rule)
reads each guarantee's own row, not the standing of every loan joined to the guarantees
(`reports.guarantees`, `readmodel.exposure.refresh` keeps the columns). Filled here from the standing recorded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in (
        sa.Column("standing_on", sa.Date(), comment="the start of its loan's latest standing step"),
        sa.Column("standing_valid_to", sa.Date(), comment="that step's end (exclusive; far future when open)"),
        sa.Column("standing_outstanding", sa.Numeric(20, 4), comment="that step's outstanding principal"),
    ):
        op.add_column("guarantees", column, schema="reporting")
    op.create_index("ix_guarantees_standing_on", "guarantees", ["standing_on"], schema="reporting")
    op.execute(
        """
UPDATE reporting.guarantees g SET (standing_on, standing_valid_to, standing_outstanding) = (
    SELECT s."on", s.valid_to, s.outstanding_principal FROM reporting.loan_standing s
    WHERE s.loan_id = g.loan_id ORDER BY s."on" DESC LIMIT 1)
"""
    )


def downgrade() -> None:
    op.drop_index("ix_guarantees_standing_on", table_name="guarantees", schema="reporting")
    for name in ("standing_on", "standing_valid_to", "standing_outstanding"):
        op.drop_column("guarantees", name, schema="reporting")
