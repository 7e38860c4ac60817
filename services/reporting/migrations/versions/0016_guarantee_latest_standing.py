"""read model: each guarantee's copy of its loan's latest standing step (start, end, outstanding principal)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 14:45:00.000000

The guarantees report's exposure on a day D on or after every guaranteed loan's latest step (today, as a rule)
reads these rows, not the standing of every loan joined to the guarantees (`reports.guarantees`); the month-end
refresh keeps them (`readmodel.exposure.refresh`). Filled here from the standing recorded.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guarantee_standing",
        sa.Column("guarantee_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("standing_on", sa.Date(), nullable=False, comment="the start of its loan's latest standing step"),
        sa.Column(
            "standing_valid_to",
            sa.Date(),
            nullable=False,
            comment="that step's end (exclusive; far future when open)",
        ),
        sa.Column(
            "outstanding_principal", sa.Numeric(20, 4), nullable=False, comment="that step's outstanding principal"
        ),
        schema="reporting",
        comment="each guarantee's copy of its loan's latest standing step, kept by the month-end refresh",
    )
    op.execute(
        """
INSERT INTO reporting.guarantee_standing (guarantee_id, standing_on, standing_valid_to, outstanding_principal)
SELECT g.guarantee_id, s."on", s.valid_to, s.outstanding_principal
FROM reporting.guarantees g
JOIN LATERAL (
    SELECT x."on", x.valid_to, x.outstanding_principal FROM reporting.loan_standing x
    WHERE x.loan_id = g.loan_id ORDER BY x."on" DESC LIMIT 1
) s ON true
"""
    )
    op.create_index("ix_guarantee_standing_on", "guarantee_standing", ["standing_on"], schema="reporting")
    op.execute("ANALYZE reporting.guarantee_standing")


def downgrade() -> None:
    op.drop_table("guarantee_standing", schema="reporting")
