"""Tables of the reporting service, all in its own `reporting` schema.

The read model is built only from the other services' events (never their schemas) and is rebuilt by replaying
them: each table below says which events feed it. As-of figures are answered from dated rows (history is kept,
never overwritten), so a report for a past date does not move when later events arrive.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase

from shared.events.tables import event_tables
from shared.idempotency import idempotency_table

SCHEMA = "reporting"
metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)

# ---------------------------------------------------------------------------------------- from the portfolio
loans = Table(
    "loans",
    metadata,
    Column("loan_id", UUID(as_uuid=True), primary_key=True),
    Column("application_id", UUID(as_uuid=True), nullable=False),
    Column("lender_id", UUID(as_uuid=True), nullable=False),
    Column("business_id", UUID(as_uuid=True), nullable=False),
    Column("ica_id", UUID(as_uuid=True), nullable=False),
    Column("country", String(2), nullable=False),
    Column("region", String(3), nullable=False, comment="the fund's M49 region: 002, 142, 419, else the region"),
    Column("currency", String(3), nullable=False),
    Column("principal", Numeric(20, 4), comment="approved principal (loan.opened), in the loan's currency"),
    Column("status", String(30), nullable=False, comment="latest known"),
    Column("first_disbursed_on", Date, comment="value date of the first disbursement"),
    Column("written_off_on", Date),
    Column("written_off_principal", Numeric(20, 4)),
    # its latest standing step (open-ended), kept by whoever writes the standing (`readmodel.portfolio`, migration
    # 0017): the portfolio report on a day on or after every loan's latest step (today, as a rule) reads these
    Column("latest_on", Date, comment="the start of its latest standing step"),
    Column("latest_outstanding", Numeric(20, 4), comment="that step's outstanding principal"),
    Column("latest_overdue_from", Date, comment="that step's overdue_from"),
    Column("latest_status", String(30), comment="that step's status"),
    Index("ix_loans_lender", "lender_id"),
    Index("ix_loans_ica", "ica_id"),
    Index("ix_loans_business", "business_id"),
    # the loans written off by D, for the portfolio report (migration 0014)
    Index("ix_loans_written_off", "written_off_on", postgresql_where=text("written_off_on IS NOT NULL")),
    Index("ix_loans_latest_on", "latest_on"),
    comment="one row per loan: its dimensions (loan.*)",
)

# The loan's standing per value date: `on` until `valid_to` (exclusive; 9999-12-31 for the latest step). The
# standing as of D is the one row with on <= D < valid_to, so an as-of report is one range scan over every loan.
FAR_FUTURE = "9999-12-31"
# A standing step's length class (`loan_standing.span`): k for a step of at most 2^k days (the smallest such k, up to
# SPAN_CLASSES - 1), LONG_SPAN for a longer one and for the open step (valid_to = FAR_FUTURE, or infinity: asyncpg
# writes date.max so). A step in force on D started within its class's length before D, so the steps in force on D
# are, per class, one short range of `on`.
SPAN_CLASSES = 14
LONG_SPAN = 99
SPAN_SQL = (
    f"CASE WHEN valid_to >= DATE '{FAR_FUTURE}' THEN {LONG_SPAN} "  # open (the driver may store it as infinity)
    + " ".join(f'WHEN valid_to - "on" <= {2**k} THEN {k}' for k in range(SPAN_CLASSES))
    + f" ELSE {LONG_SPAN} END"
)
loan_standing = Table(
    "loan_standing",
    metadata,
    Column("loan_id", UUID(as_uuid=True), primary_key=True),
    Column("on", Date, primary_key=True),
    Column("valid_to", Date, nullable=False, server_default=text(f"'{FAR_FUTURE}'")),
    Column("outstanding_principal", Numeric(20, 4), nullable=False),
    Column("overdue_from", Date),
    Column("status", String(30), nullable=False),
    Column(
        "span",
        SmallInteger,
        Computed(SPAN_SQL, persisted=True),
        comment="the step's length class: k when valid_to - on <= 2^k (k <= 13), 99 longer or open (migration 0013)",
    ),
    # covering: the as-of scan reads the index only (migration 0006)
    Index(
        "ix_loan_standing_as_of",
        "valid_to",
        "on",
        postgresql_include=["loan_id", "outstanding_principal", "overdue_from", "status"],
    ),
    # the standing as of a past D: one short range of `on` per length class (`reports.common.standing_on`)
    Index(
        "ix_loan_standing_span",
        "span",
        "on",
        postgresql_include=["loan_id", "valid_to", "outstanding_principal", "overdue_from", "status"],
    ),
    comment="LoanFactsV1.standing of every loan event; a new standing replaces the rows from its first date on",
)

loan_flows = Table(
    "loan_flows",
    metadata,
    Column("transaction_id", UUID(as_uuid=True), primary_key=True),
    Column("loan_id", UUID(as_uuid=True), nullable=False),
    Column("kind", String(20), nullable=False, comment="disbursed | repaid | recovered | written_off"),
    Column("value_date", Date, nullable=False),
    Column("amount", Numeric(20, 4), nullable=False),
    Column("principal", Numeric(20, 4), nullable=False, server_default="0"),
    Column("interest", Numeric(20, 4), nullable=False, server_default="0"),
    Column("recovered", Numeric(20, 4), nullable=False, server_default="0"),
    Column("reversed", Boolean, nullable=False, server_default=text("false")),
    Index(
        "ix_loan_flows_value_date",
        "value_date",
        postgresql_include=["loan_id", "kind", "amount", "principal", "interest", "recovered", "reversed"],
    ),
    Index("ix_loan_flows_loan", "loan_id"),
    comment="money movements by value date (loan.disbursed, repayment_applied, recovery_received, written_off)",
)

# Each day's flows per currency, reversed repayments left out (`readmodel.portfolio.FLOW_DAYS_SQL`): the flows
# report reads these when no filter, scope or group other than the currency narrows it.
flow_days = Table(
    "flow_days",
    metadata,
    Column("value_date", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("disbursed", Numeric(20, 4), nullable=False),
    Column("repaid_principal", Numeric(20, 4), nullable=False),
    Column("repaid_interest", Numeric(20, 4), nullable=False),
    Column("written_off", Numeric(20, 4), nullable=False),
    Column("recovered", Numeric(20, 4), nullable=False),
    comment="loan_flows summed per value date and loan currency (not reversed), kept by the projection",
)

fx_rates = Table(
    "fx_rates",
    metadata,
    Column("currency", String(3), primary_key=True),
    Column("rate_date", Date, primary_key=True),
    Column("cad_per_unit", Numeric(24, 10), nullable=False),
    Column("source", String(100), nullable=False),
    comment="fx.rate_recorded: closing rates, never changed",
)

# ------------------------------------------------------------------------------------- from the applications
businesses = Table(
    "businesses",
    metadata,
    Column("business_id", UUID(as_uuid=True), primary_key=True),
    Column("ica_id", UUID(as_uuid=True), nullable=False),
    Column("name", String(300), nullable=False),
    Column("legal_form", String(60), nullable=False),
    Column("country", String(2), nullable=False),
    Column("region", String(3), nullable=False, comment="the fund's M49 region, as for loans"),
    Column("sector", String(100), nullable=False),
    Column("year_founded", Integer, nullable=False),
    Column("first_reported_on", Date, comment="the date of its earliest impact report"),
    comment="the latest snapshot (business.registered/updated, application.approved)",
)

business_facts = Table(
    "business_facts",
    metadata,
    Column("business_id", UUID(as_uuid=True), primary_key=True),
    Column("reported_on", Date, primary_key=True),
    Column("members_total", Integer, nullable=False),
    Column("members_women", Integer, nullable=False),
    Column("board_seats_total", Integer, nullable=False),
    Column("board_seats_women", Integer, nullable=False),
    Column("employees_total", Integer, nullable=False),
    Column("employees_women", Integer, nullable=False),
    Column("senior_managers_total", Integer, nullable=False),
    Column("senior_managers_women", Integer, nullable=False),
    Column("women_ownership_pct", Integer),
    Column("general_assembly_last_12_months", Boolean, nullable=False),
    Column("board_elected_by_members", Boolean, nullable=False),
    Column("one_member_one_vote", Boolean, nullable=False),
    Column("environmental_practices", ARRAY(Text), nullable=False),
    Column(
        "valid_to",
        Date,
        nullable=False,
        server_default=text(f"'{FAR_FUTURE}'"),
        comment="the next report's date (exclusive): in force at D when reported_on <= D < valid_to",
    ),
    comment="dated impact facts, history kept: in force at D = the latest reported on or before D",
)

applications = Table(
    "applications",
    metadata,
    Column("application_id", UUID(as_uuid=True), primary_key=True),
    Column("ica_id", UUID(as_uuid=True), nullable=False),
    Column("business_id", UUID(as_uuid=True), nullable=False),
    Column("lender_id", UUID(as_uuid=True), comment="the proposed lender (application.submitted)"),
    Column("amount", Numeric(20, 4)),
    Column("currency", String(3)),
    Index("ix_applications_ica", "ica_id"),
    Index("ix_applications_lender", "lender_id"),
)

application_moves = Table(
    "application_moves",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("application_id", UUID(as_uuid=True), nullable=False),
    Column("seq", Integer, nullable=False, comment="the event's aggregate_seq"),
    Column("on", Date, nullable=False, comment="the event's occurred_at, as a UTC date"),
    Column("from_status", String(30)),
    Column("to_status", String(30), nullable=False),
    Column(
        "valid_to",
        Date,
        nullable=False,
        server_default=text(f"'{FAR_FUTURE}'"),
        comment="the earliest date of the application's later moves (exclusive): its status at D when on <= D < valid_to",
    ),
    Column("submitted_on", Date, comment="the application's first move to submitted (its date)"),
    Column("decided_on", Date, comment="the application's first move to approved or rejected (its date)"),
    Index("ix_application_moves_application", "application_id", "seq", postgresql_include=["on", "to_status"]),
    # covering: the status of every application as of D is one index-only range scan (migration 0007)
    Index(
        "ix_application_moves_as_of",
        "valid_to",
        "on",
        postgresql_include=["application_id", "to_status", "submitted_on", "decided_on"],
    ),
    comment="every status move of an application (application.*)",
)

# -------------------------------------------------------------------------------------- from the guarantees
guarantees = Table(
    "guarantees",
    metadata,
    Column("guarantee_id", UUID(as_uuid=True), primary_key=True),
    Column("loan_id", UUID(as_uuid=True), nullable=False),
    Column("lender_id", UUID(as_uuid=True), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("coverage_pct", Numeric(5, 2), nullable=False),
    Column("cap_cad", Numeric(20, 2), nullable=False),
    Column("status", String(20), nullable=False, comment="latest known"),
    Column("issued_on", Date, comment="guarantee.issued's occurred_at (UTC date); none when refused"),
    Column("expired_on", Date),
    Column("exposure_cad_at_issue", Numeric(20, 2), nullable=False, server_default="0"),
    Index("ix_guarantees_loan", "loan_id"),
    Index("ix_guarantees_currency", "currency"),
    comment="guarantee.issued/refused/exposure_changed/released/expired",
)

claims = Table(
    "claims",
    metadata,
    Column("claim_id", UUID(as_uuid=True), primary_key=True),
    Column("guarantee_id", UUID(as_uuid=True), nullable=False),
    Column("loan_id", UUID(as_uuid=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("filed_on", Date, nullable=False, comment="claim.filed's occurred_at (UTC date)"),
    Column("paid_on", Date),
    Column("payout_cad", Numeric(20, 2), nullable=False),
    Index("ix_claims_guarantee", "guarantee_id"),
    comment="claim.filed/validated/paid/rejected",
)

claim_recoveries = Table(
    "claim_recoveries",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("claim_id", UUID(as_uuid=True), nullable=False),
    Column("loan_id", UUID(as_uuid=True), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("fund_share_cad", Numeric(20, 2), nullable=False),
    comment="recovery.shared: the fund's share of each recovery after a payout",
)

capital_entries = Table(
    "capital_entries",
    metadata,
    Column("entry_id", UUID(as_uuid=True), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("amount_cad", Numeric(20, 2), nullable=False),
    Column("value_date", Date, nullable=False),
    Index("ix_capital_entries_value_date", "value_date"),
    comment="capital.entry_recorded: the guarantee fund's capital ledger",
)

facility_terms = Table(
    "facility_terms",
    metadata,
    Column("facility_id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("lender_id", UUID(as_uuid=True), nullable=False),
    Column("ceiling_cad", Numeric(20, 2), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("set_on", Date, nullable=False, comment="facility.terms_set's occurred_at (UTC date)"),
    Index("ix_facility_terms_lender", "lender_id", "set_on"),
    comment="facility.terms_set: every version of each lender's ceiling; in force on D = the latest set by D",
)

# ------------------------------------------------------------------- from the portfolio and the guarantees
# Each guarantee's exposure at each month end up to the latest rate date recorded (`readmodel.exposure`): the 12
# month-end samples of the claims rate's average exposure are read here instead of computed over every guaranteed
# loan's standing. Derived from both feeds (standing, rates; guarantees, claims), refreshed by both, emptied by the
# reset of either. Zero exposures are not kept.
guarantee_month_ends = Table(
    "guarantee_month_ends",
    metadata,
    Column("guarantee_id", UUID(as_uuid=True), primary_key=True),
    Column("month_end", Date, primary_key=True),
    Column("exposure_cad", Numeric(20, 2), nullable=False),
    Index("ix_guarantee_month_ends_month_end", "month_end", postgresql_include=["guarantee_id", "exposure_cad"]),
    comment="exposure (CAD) of each guarantee live at each month end up to the latest rate date, when not zero",
)
# Each guarantee's copy of its loan's latest standing step (`readmodel.exposure`): the exposure on a day on or after
# every one of those steps (today, as a rule) reads these rows, not the standing of every loan. Written only by the
# month-end refresh, under its lock (the guarantees consumer's own rows are never locked by the portfolio's);
# emptied by the reset of either feed. None for a guarantee whose loan has no standing yet.
guarantee_standing = Table(
    "guarantee_standing",
    metadata,
    Column("guarantee_id", UUID(as_uuid=True), primary_key=True),
    Column("standing_on", Date, nullable=False, comment="the start of its loan's latest standing step"),
    Column("standing_valid_to", Date, nullable=False, comment="that step's end (exclusive; far future when open)"),
    Column("outstanding_principal", Numeric(20, 4), nullable=False, comment="that step's outstanding principal"),
    Index("ix_guarantee_standing_on", "standing_on"),
    comment="each guarantee's copy of its loan's latest standing step, kept by the month-end refresh",
)
# Their sum per month end (the fund's whole exposure then), kept with them by the same refresh (`readmodel.exposure`):
# the unfiltered report reads 11 rows instead of summing every guarantee's.
guarantee_month_end_totals = Table(
    "guarantee_month_end_totals",
    metadata,
    Column("month_end", Date, primary_key=True),
    Column("exposure_cad", Numeric(24, 2), nullable=False),
    Column("guarantees", Integer, nullable=False),
    comment="sum of guarantee_month_ends per month end (and how many rows), kept by the same refresh",
)

# ------------------------------------------------------------------- from the applications and the portfolio
# The impact report's totals by date for the whole fund (`readmodel.impact`): each financed business's figures as
# changes by date, and each day's changes summed; the totals as of D are the sums of the days on or before D.
IMPACT_FIGURES = (
    "businesses_financed",
    "businesses_with_facts",
    "members_total",
    "members_women",
    "jobs_created",
    "jobs_maintained",
    "employees_total",
    "employees_women",
    "board_seats_total",
    "board_seats_women",
    "women_led_2x",
    "democratic_governance",
    "general_assembly_held",
    "board_elected_by_members",
    "one_member_one_vote",
    "environmental_practices",
)
impact_changes = Table(
    "impact_changes",
    metadata,
    Column("business_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    *(Column(name, Integer, nullable=False) for name in IMPACT_FIGURES),
    Index("ix_impact_changes_day", "day"),
    comment="a financed business's impact figures on a day less those of the day before (from its first disbursement)",
)
impact_days = Table(
    "impact_days",
    metadata,
    Column("day", Date, primary_key=True),
    *(Column(name, BigInteger, nullable=False) for name in IMPACT_FIGURES),
    comment="impact_changes summed per day: the whole fund's impact totals as of D are the sums of the days <= D",
)

impact_glp_changes = Table(
    "impact_glp_changes",
    metadata,
    Column("loan_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("active_loans", Integer, nullable=False),
    Column("glp", Numeric(24, 4), nullable=False),
    Column("two_x_glp", Numeric(24, 4), nullable=False),
    comment="a loan's active outstanding (and its 2X part) on a day less that of the day before",
)
impact_glp_days = Table(
    "impact_glp_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("active_loans", Integer, nullable=False),
    Column("glp", Numeric(24, 4), nullable=False),
    Column("two_x_glp", Numeric(24, 4), nullable=False),
    comment="impact_glp_changes summed per day and currency (the days whose changes cancel out left out)",
)

PORTFOLIO_TABLES = (loans, loan_standing, loan_flows, flow_days, fx_rates)
APPLICATIONS_TABLES = (businesses, business_facts, applications, application_moves)
GUARANTEES_TABLES = (guarantees, claims, claim_recoveries, capital_entries, facility_terms)
