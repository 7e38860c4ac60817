"""read model: the guarantees by currency (an index), for the currencies the guarantees report prices

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 14:30:00.000000

The guarantees report needs the currencies of the guarantees (their closing rates, and the ones with none): read
by a skip scan of this index, one probe a currency (`reports.guarantees.guarantee_currencies`), not a scan of every
guarantee.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_guarantees_currency", "guarantees", ["currency"], schema="reporting")


def downgrade() -> None:
    op.drop_index("ix_guarantees_currency", table_name="guarantees", schema="reporting")
