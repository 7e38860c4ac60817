"""read model: facility terms (ceilings per lender, every version)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 04:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "facility_terms",
        sa.Column("facility_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lender_id", sa.UUID(), nullable=False),
        sa.Column("ceiling_cad", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("set_on", sa.Date(), nullable=False, comment="facility.terms_set's occurred_at (UTC date)"),
        sa.PrimaryKeyConstraint("facility_id", "version"),
        schema="reporting",
        comment="facility.terms_set: every version of each lender's ceiling; in force on D = the latest set by D",
    )
    op.create_index(
        "ix_facility_terms_lender", "facility_terms", ["lender_id", "set_on"], unique=False, schema="reporting"
    )


def downgrade() -> None:
    op.drop_index("ix_facility_terms_lender", table_name="facility_terms", schema="reporting")
    op.drop_table("facility_terms", schema="reporting")
