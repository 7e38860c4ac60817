"""pipeline as of D without a sort of every move: each move's end (`application_moves.valid_to`: the status at D is
the move with on <= D < valid_to) each carrying its application's first submission and first decision

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 10:20:00.000000

Before, the pipeline aggregated every move on or before D per application (`array_agg ... ORDER BY seq`): a sort
of some 385,000 moves on the reference load. Now it reads one move per application from a covering index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "application_moves",
        sa.Column(
            "valid_to",
            sa.Date(),
            server_default=sa.text("'9999-12-31'"),
            nullable=False,
            comment="the earliest date of the application's later moves (exclusive): its status at D when on <= D"
            " < valid_to",
        ),
        schema="reporting",
    )
    for name, what in (("submitted_on", "submitted"), ("decided_on", "approved or rejected")):
        op.add_column(
            "application_moves",
            sa.Column(name, sa.Date(), nullable=True, comment=f"the application's first move to {what} (its date)"),
            schema="reporting",
        )
    from services.reporting.readmodel.applications import PERIODS_SQL

    # the projection's own statement, over every application
    op.get_bind().execute(
        sa.text(PERIODS_SQL.replace("WHERE application_id = ANY(:ids)", "")),
    )
    op.execute(
        'CREATE INDEX ix_application_moves_as_of ON reporting.application_moves (valid_to, "on")'
        " INCLUDE (application_id, to_status, submitted_on, decided_on)"
    )


def downgrade() -> None:
    op.drop_index("ix_application_moves_as_of", table_name="application_moves", schema="reporting")
    op.drop_column("application_moves", "decided_on", schema="reporting")
    op.drop_column("application_moves", "submitted_on", schema="reporting")
    op.drop_column("application_moves", "valid_to", schema="reporting")
