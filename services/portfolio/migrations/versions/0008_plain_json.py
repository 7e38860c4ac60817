"""portfolio: a loan's book and a transaction's split and allocation as `json` (kept as written), the book
compressed with lz4 where the server has it

A loan's book (about 2 KB of JSON for 24 instalments) is read and written back each time the loan changes; a
transaction's split and allocation are written with it. None is ever queried inside: as `jsonb` each was parsed on
the way in and printed on the way out. Measured on this machine (PostgreSQL 15, 20,000 books): writing back a
book 44 → 12.5 µs, reading it 13.6 → 4 µs (`json` with lz4 against `jsonb` with pglz).

`json` has no equality operator: a DISTINCT, GROUP BY or UNION over these columns is refused (none is made). A
dump of a server with lz4 says so (`SET COMPRESSION lz4`): restored into a server without it (the embedded one),
`pg_dump --no-toast-compression`.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _has_lz4() -> bool:
    """Whether the server was built with lz4 (the embedded one of `make run` is not: pglz there)."""
    return bool(
        op.get_bind().scalar(
            sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        )
    )


# one ALTER TABLE a table: each is a rewrite of the table and its indexes (under an exclusive lock), done once; the
# compression set in the same statement as the type, so that the rewritten books are compressed with it (a type
# change alone resets a column's compression to the server's default)
def _store_as(json_type: str, book_compression: str) -> None:
    compression = f", ALTER COLUMN book SET COMPRESSION {book_compression}" if _has_lz4() else ""
    op.execute(f"ALTER TABLE portfolio.loans ALTER COLUMN book TYPE {json_type} USING book::{json_type}{compression}")
    op.execute(
        f"ALTER TABLE portfolio.loan_transactions ALTER COLUMN split TYPE {json_type} USING split::{json_type},"
        f" ALTER COLUMN allocation TYPE {json_type} USING allocation::{json_type}"
    )


def upgrade() -> None:
    _store_as("json", "lz4")


def downgrade() -> None:
    _store_as("jsonb", "default")
