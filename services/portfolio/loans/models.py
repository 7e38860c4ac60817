import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.portfolio.db import Base

MONEY = Numeric(20, 4)


class Loan(Base):
    """A loan opened from an approved application, in the lender's currency.

    The balance columns are the loan as of now (every transaction applied), kept in step with the transactions
    in the same database transaction; they serve lists and filters. Any figure as of a date is recomputed from
    the transactions (`services.portfolio.loans.ledger`)."""

    __tablename__ = "loans"
    __table_args__ = (
        Index("ix_loans_lender", "lender_id", "opened_at"),
        Index("ix_loans_ica", "ica_id", "opened_at"),
        Index("ix_loans_opened", "opened_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    approval_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    business_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    ica_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    principal: Mapped[Decimal] = mapped_column(MONEY)
    term_months: Mapped[int] = mapped_column(Integer)
    instruments: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    guarantee_coverage_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    conditions: Mapped[list[str]] = mapped_column(ARRAY(String))
    business: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the business as approved (name, form, facts)")
    status: Mapped[str] = mapped_column(String(30), server_default="pending_disbursement")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # the schedule terms agreed with the lender, set before the first disbursement
    annual_rate: Mapped[Decimal | None] = mapped_column(Numeric(9, 6), comment="0.12 for 12 % a year")
    frequency: Mapped[str | None] = mapped_column(String(20))
    method: Mapped[str | None] = mapped_column(String(20))
    grace_periods: Mapped[int] = mapped_column(Integer, server_default="0")
    first_due_date: Mapped[date | None] = mapped_column(Date)
    restructured: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # as of now
    disbursed: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    outstanding_principal: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    credit: Mapped[Decimal] = mapped_column(MONEY, server_default="0", comment="overpayment held for the borrower")
    written_off_principal: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    write_off_reason: Mapped[str | None] = mapped_column(Text)
    closed_on: Mapped[date | None] = mapped_column(Date)
    # the arrears state last announced by the close of day (current | in_arrears | defaulted) and its date
    arrears_state: Mapped[str] = mapped_column(String(20), server_default="current")
    arrears_state_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # `json`, not `jsonb`: stored and read back as written, never queried inside nor compared (no DISTINCT, GROUP
    # BY or UNION over it: `json` has no equality); the loan's every change rewrites it, and `jsonb` parsed it on
    # each write and printed it on each read; compressed with lz4 where the server has it (migration 0008)
    book: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, comment="the book as of now (per instalment paid), to continue from without replaying the history"
    )


class Participant(Base):
    """Who carries the loan and in what share: the fund and the lender for co-financing, the lender alone for a
    guaranteed loan. Shares sum to 100."""

    __tablename__ = "loan_participants"

    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.loans.id"), primary_key=True)
    participant: Mapped[str] = mapped_column(String(10), primary_key=True)  # "fund" | "lender"
    share_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))


class ScheduleVersion(Base):
    """A version of a loan's schedule: the first at the first disbursement, a new one at each later tranche and
    at each restructuring. Old versions are kept; the one in force on a date is the latest effective by then."""

    __tablename__ = "loan_schedule_versions"

    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.loans.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(20))  # disbursement | tranche | restructuring
    terms: Mapped[dict[str, Any]] = mapped_column(JSONB)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class Instalment(Base):
    __tablename__ = "loan_instalments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["loan_id", "version"],
            ["portfolio.loan_schedule_versions.loan_id", "portfolio.loan_schedule_versions.version"],
        ),
    )

    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    due_date: Mapped[date] = mapped_column(Date)
    principal: Mapped[Decimal] = mapped_column(MONEY)
    interest: Mapped[Decimal] = mapped_column(MONEY)


class Transaction(Base):
    """Money movement or charge on a loan, as recorded. Never updated except to mark it reversed."""

    __tablename__ = "loan_transactions"
    __table_args__ = (
        # the lender's own transaction id counts once, across all its pushes and the staff API
        UniqueConstraint("lender_id", "external_id", name="uq_loan_transactions_external_id"),
        Index("ix_loan_transactions_loan", "loan_id", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), unique=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.loans.id"))
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    value_date: Mapped[date] = mapped_column(Date)
    instalment: Mapped[int | None] = mapped_column(Integer, comment="the instalment a fee or penalty is charged on")
    external_id: Mapped[str | None] = mapped_column(String(100), comment="the lender's transaction id")
    source: Mapped[str] = mapped_column(String(10))  # staff | push
    push_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    comment: Mapped[str | None] = mapped_column(Text)
    # `json`: kept as written and never queried inside (`jsonb` would parse each on the way in, print it on the way out)
    split: Mapped[dict[str, str]] = mapped_column(JSON, comment="the amount's pro-rata parts per participant")
    allocation: Mapped[dict[str, str] | None] = mapped_column(JSON, comment="how a payment was allocated when applied")
    outstanding_after: Mapped[Decimal] = mapped_column(MONEY, comment="outstanding principal once applied")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reversed_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reversal_reason: Mapped[str | None] = mapped_column(Text)


class ArrearsSnapshot(Base):
    """The close of day's reading of a loan: days past due and bucket as of a date, kept as history."""

    __tablename__ = "loan_arrears"

    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.loans.id"), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    days_past_due: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20))
    outstanding_principal: Mapped[Decimal] = mapped_column(MONEY)


class CloseOfDay(Base):
    """One run of the close of day for a date (the daily job, or an admin asking for a given date)."""

    __tablename__ = "close_of_day_runs"

    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, server_default="1")
    loans: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    policy_version: Mapped[int] = mapped_column(Integer)
    first_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_run_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class PortfolioPolicy(Base):
    """The portfolio's thresholds (fund policy, versioned): a new version per change, the old ones kept."""

    __tablename__ = "portfolio_policy"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    arrears_dpd: Mapped[int] = mapped_column(Integer, comment="days past due from which a loan is in arrears")
    default_dpd: Mapped[int] = mapped_column(Integer, comment="days past due from which a loan is in default")
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
