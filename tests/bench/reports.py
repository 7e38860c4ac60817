"""The reports on the reference load (`reference_load.py`: 100,000 loans, about 2 million repayments).

For each report endpoint, as of a current and a past date: p50 / p95 latency of `GET /api/v1/reporting/<report>`
sent straight to the reporting service (a real uvicorn process, a funder's principal, one request at a time, after
a warm-up), next to the same figure computed by one hand-written SQL query over the read model, timed in the same
run on the same database, the two taken in turn (one request, then one query). Goals: p95 ≤ 200 ms for each endpoint
on the 2-core machine, and within 2x of the hand-written query. Run just this one: `python -m tests.bench.reports`
(`REFERENCE_LOANS=20000` for a smaller load; `REPORTS_REFERENCE_DB=<name>` keeps the load in that database and reuses
it on the next run, migrated to head; `REPORTS_ONLY=guarantees,impact` measures those reports only and prints them,
leaving docs/benchmarks.md as it was).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import aiohttp
import asyncpg

from deploy.topology import SERVICES
from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from shared.events.outbox import asyncpg_dsn
from tests.bench.harness import kept_database, platform_env, processes, scratch_database, write_section
from tests.bench.reference_load import NOW, load
from tests.support import free_port

CURRENT, PAST = NOW, date(2024, 6, 30)
RUNS = int(os.environ.get("REPORT_RUNS", "40"))  # pairs (request, query) at least for each report and date
# and more pairs while a series has run for less than this many seconds (a fast report: hundreds)
SERIES_SECONDS = float(os.environ.get("REPORT_SERIES_SECONDS", "5"))
MAX_RUNS = 400
WARMUP = 3

# One query each, written by hand over the read model, giving the report's figures (per currency; the CAD
# conversion of a handful of rows left to the caller): what the report is compared with. Run with the same
# session settings as the reports (no JIT, 64 MB of work memory).
HAND_WRITTEN = {
    # loans, borrowers, GLP, PAR30/90, the six aging buckets, defaults, write-offs, per currency and in all
    # (the active standing in force on D read per length class of its steps, and the loans written off by D apart,
    # as the report does: see STANDING)
    "portfolio": """
WITH st AS (ACTIVE_STANDING), s AS (
    SELECT l.currency, l.business_id, st.outstanding_principal AS o,
           CASE WHEN st.overdue_from < $1 THEN $1 - st.overdue_from ELSE 0 END AS dpd,
           CASE WHEN l.written_off_on <= $1 THEN l.written_off_principal END AS w, true AS a
    FROM st JOIN reporting.loans l USING (loan_id)
    UNION ALL
    SELECT l.currency, l.business_id, 0, 0, l.written_off_principal, false
    FROM reporting.loans l JOIN LATERAL (
        SELECT valid_to, status FROM reporting.loan_standing x WHERE x.loan_id = l.loan_id AND x."on" <= $1
        ORDER BY x."on" DESC LIMIT 1) x ON x.valid_to > $1 AND x.status <> 'active'
    WHERE l.written_off_on <= $1)
SELECT currency, count(*) FILTER (WHERE a), count(DISTINCT business_id) FILTER (WHERE a),
       sum(o) FILTER (WHERE a), sum(o) FILTER (WHERE a AND dpd > 30), sum(o) FILTER (WHERE a AND dpd > 90),
       sum(o) FILTER (WHERE a AND dpd = 0), sum(o) FILTER (WHERE a AND dpd BETWEEN 1 AND 30),
       sum(o) FILTER (WHERE a AND dpd BETWEEN 31 AND 60), sum(o) FILTER (WHERE a AND dpd BETWEEN 61 AND 90),
       sum(o) FILTER (WHERE a AND dpd BETWEEN 91 AND 180), sum(o) FILTER (WHERE a AND dpd > 180),
       sum(o) FILTER (WHERE a AND dpd >= 90), sum(w), count(w)
FROM s GROUP BY ROLLUP (currency)""",
    # per month and currency of the year to date, from the day totals, and the same in CAD at each day's rate (the
    # latest recorded by that day; XOF and XAF at EUR's, the peg's divisor left to the caller as for every CAD sum)
    "flows": """
WITH d AS (
    SELECT *, CASE WHEN currency IN ('XOF', 'XAF') THEN 'EUR' ELSE currency END AS base FROM reporting.flow_days
    WHERE value_date >= date_trunc('year', $1::date)::date AND value_date <= $1
), r AS (
    SELECT x.currency, x.cad_per_unit, generate_series(greatest(x.rate_date, date_trunc('year', $1::date)::date),
           lead(x.rate_date, 1, $1 + 1) OVER (PARTITION BY x.currency ORDER BY x.rate_date) - 1, '1 day')::date AS day
    FROM (SELECT DISTINCT base FROM d) b
    CROSS JOIN LATERAL (SELECT max(rate_date) AS seed FROM reporting.fx_rates s
                        WHERE s.currency = b.base AND s.rate_date <= date_trunc('year', $1::date)::date) s
    JOIN reporting.fx_rates x ON x.currency = b.base AND x.rate_date <= $1
         AND x.rate_date >= coalesce(s.seed, date_trunc('year', $1::date)::date)
)
SELECT to_char(value_date, 'YYYY-MM'), d.currency, sum(disbursed), sum(disbursed * r.cad_per_unit),
       sum(repaid_principal), sum(repaid_principal * r.cad_per_unit), sum(repaid_interest),
       sum(repaid_interest * r.cad_per_unit), sum(written_off), sum(written_off * r.cad_per_unit), sum(recovered),
       sum(recovered * r.cad_per_unit), bool_or(r.day IS NULL)
FROM d LEFT JOIN r ON r.currency = d.base AND r.day = d.value_date GROUP BY 1, 2""",
    # every figure of the whole fund as of D (businesses financed, members, jobs, employees, board seats, 2X, governance,
    # environmental practices; the gross loan portfolio and its 2X part per currency), from the totals by date the
    # projections keep
    "impact": """
SELECT g.currency, g.glp, g.two_x_glp, t.*
FROM (SELECT currency, sum(glp) AS glp, sum(two_x_glp) AS two_x_glp FROM reporting.impact_glp_days WHERE day <= $1
      GROUP BY currency HAVING sum(active_loans) > 0) g
CROSS JOIN (
    SELECT sum(businesses_financed), sum(businesses_with_facts), sum(members_total), sum(members_women),
           sum(jobs_created), sum(jobs_maintained), sum(employees_total), sum(employees_women), sum(board_seats_total),
           sum(board_seats_women), sum(women_led_2x), sum(democratic_governance), sum(general_assembly_held),
           sum(board_elected_by_members), sum(one_member_one_vote), sum(environmental_practices)
    FROM reporting.impact_days WHERE day <= $1) t""",
    # applications by status as of D (the move in force at D), approval counts and the median days to decision
    "pipeline": """
WITH p AS (
    SELECT to_status AS status,
           CASE WHEN decided_on <= $1 AND submitted_on <= $1 THEN decided_on - submitted_on END AS days
    FROM reporting.application_moves WHERE "on" <= $1 AND valid_to > $1)
SELECT status, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FROM p GROUP BY ROLLUP (status)""",
    # exposure in CAD (coverage × outstanding × the day's rate, capped) on D, and at the 11 month ends before it from
    # the month-end totals the projections keep
    "guarantees": """
WITH st AS (STANDING), rate AS MATERIALIZED (  -- one lookup per currency, not one per guarantee
    SELECT c.currency, (SELECT r.cad_per_unit FROM reporting.fx_rates r
        WHERE r.currency = CASE WHEN c.currency IN ('XOF', 'XAF') THEN 'EUR' ELSE c.currency END
        AND r.rate_date <= $1 ORDER BY r.rate_date DESC LIMIT 1)
        / CASE WHEN c.currency IN ('XOF', 'XAF') THEN 655.957 ELSE 1 END AS rate
    FROM (SELECT DISTINCT currency FROM reporting.guarantees) c
)
SELECT $1::date AS day, sum(least(round(g.coverage_pct * st.outstanding_principal * r.rate / 100, 2), g.cap_cad))
FROM reporting.guarantees g
JOIN st ON st.loan_id = g.loan_id
JOIN rate r ON r.currency = g.currency
WHERE g.issued_on <= $1 AND (g.expired_on IS NULL OR g.expired_on > $1)
  AND NOT EXISTS (SELECT 1 FROM reporting.claims c WHERE c.guarantee_id = g.guarantee_id AND c.paid_on <= $1)
UNION ALL
SELECT month_end, exposure_cad FROM reporting.guarantee_month_end_totals
WHERE month_end IN (SELECT (date_trunc('month', $1::date) - make_interval(months => m))::date - 1
                    FROM generate_series(0, 10) m)""",
}
# Each loan's standing step in force on D ($1): the steps of length class k (at most 2^k days, `loan_standing.span`)
# began within 2^k days before D, one short index range each, written out (a generate_series of the classes joined
# LATERAL was planned as one hash join over every step with valid_to > D); the long and open ones (99) by their start
STANDING = "\n    UNION ALL\n".join(
    [
        f"""    SELECT loan_id, outstanding_principal, overdue_from, status FROM reporting.loan_standing
    WHERE span = {k} AND "on" <= $1::date AND "on" > $1::date - {2**k} AND valid_to > $1::date"""  # noqa: S608
        for k in range(14)
    ]
    + [
        """    SELECT loan_id, outstanding_principal, overdue_from, status FROM reporting.loan_standing
    WHERE span = 99 AND "on" <= $1::date AND valid_to > $1::date"""
    ]
)
ACTIVE_STANDING = STANDING.replace("AND valid_to > $1::date", "AND valid_to > $1::date AND status = 'active'")
HAND_WRITTEN = {
    report: sql.replace("ACTIVE_STANDING", ACTIVE_STANDING).replace("STANDING", STANDING)
    for report, sql in HAND_WRITTEN.items()
}
REPORTS = tuple(HAND_WRITTEN)
ONLY = tuple(r for r in os.environ.get("REPORTS_ONLY", "").split(",") if r)  # e.g. REPORTS_ONLY=guarantees,impact


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def time_endpoint(client: aiohttp.ClientSession, report: str, on: date) -> float:
    """One request to the report's endpoint, in ms."""
    started = time.perf_counter()
    async with client.get(f"/api/v1/reporting/{report}", params={"as_of": on.isoformat()}) as response:
        body = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status == 200, body[:500]
    return elapsed


async def time_query(connection: asyncpg.Connection, sql: str, on: date) -> float:
    """One run of the hand-written query, in ms."""
    started = time.perf_counter()
    await connection.fetch(sql, on)
    return (time.perf_counter() - started) * 1000


async def time_both(
    client: aiohttp.ClientSession, connection: asyncpg.Connection, report: str, on: date
) -> tuple[list[float], list[float]]:
    """The endpoint's and the hand-written query's samples, taken in turn (one request, then one query, and so on):
    both see the machine in the same state, its slow moments shared, so their ratio is not a measure of when each
    one ran (on a shared machine, taken one series after the other, it moved by up to 2x from run to run).

    The series runs RUNS pairs, and more while it has run for less than SERIES_SECONDS (up to MAX_RUNS): with 40
    samples the p95 is the second slowest, one pause of the machine; a report of a few milliseconds gets hundreds."""
    endpoint: list[float] = []
    query: list[float] = []
    for _ in range(WARMUP):
        await time_endpoint(client, report, on)
        await time_query(connection, HAND_WRITTEN[report], on)
    started = time.perf_counter()
    while len(endpoint) < RUNS or (time.perf_counter() - started < SERIES_SECONDS and len(endpoint) < MAX_RUNS):
        endpoint.append(await time_endpoint(client, report, on))
        query.append(await time_query(connection, HAND_WRITTEN[report], on))
    return endpoint, query


def load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


KEPT_DATABASE = "REPORTS_REFERENCE_DB"  # opt-in: the name of a database to keep the reference load in between runs
BUILT_MARK = "fisiq reference load: {loans} loans"


async def reference_load(url: str, loans: int, existed: bool) -> dict[str, object]:
    """Build the reference load, or, in a kept database that already holds one of this size (its mark is set once
    the whole load is in), reuse it."""
    connection = await asyncpg.connect(**asyncpg_dsn(url))
    try:
        name = await connection.fetchval("SELECT current_database()")
        mark = await connection.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        )
        if existed and mark != BUILT_MARK.format(loans=loans):
            raise SystemExit(f"database {name} holds no complete reference load of {loans} loans: drop it first")
        if existed:
            sizes = {
                table: int(await connection.fetchval(f"SELECT count(*) FROM reporting.{table}"))  # noqa: S608
                for table in ("loans", "loan_standing", "loan_flows", "application_moves", "guarantees", "claims")
            }
            await connection.execute("VACUUM ANALYZE")  # tables a newer migration added or filled
            return {"sizes": sizes, "seconds": None}
        built = await load(url, loans=loans, other_applications_count=loans * 3 // 10)
        await connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{BUILT_MARK.format(loans=loans)}'")
        return built
    finally:
        await connection.close()


def run() -> None:
    if unknown := set(ONLY) - set(REPORTS):
        raise SystemExit(f"REPORTS_ONLY: no such report {sorted(unknown)}; the reports are {', '.join(REPORTS)}")
    loans = int(os.environ.get("REFERENCE_LOANS", "100000"))
    kept = os.environ.get(KEPT_DATABASE)
    database = kept_database(kept) if kept else contextlib.nullcontext(None)
    with database as found, contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as logs:
        url, existed = found if found else (stack.enter_context(scratch_database()), False)
        load_before = load_average()
        built = asyncio.run(reference_load(url, loans, existed))
        print("reference load:", built, flush=True)
        reporting = next(s for s in SERVICES if s.name == "reporting")
        ports = {"reporting": free_port()}
        env = platform_env(url, ports) | {"REPORTING_EVENTS_ENABLED": "false", "REPORTING_ACCESS_LOG": "false"}
        token = mint_principal_token(
            Principal(key_id=uuid.uuid4(), role=Role.funder, organization_id=None),
            secret=env["INTERNAL_SECRET"],
            audience="reporting",
            ttl_seconds=3600,
        )
        with processes([reporting], env, Path(logs)):
            load_start = load_average()
            results = asyncio.run(measure(url, ports["reporting"], token))
            load_end = load_average()
    if ONLY:  # a partial table is printed, not written over the whole one
        print(render(built, results, loans, load_before, load_start, load_end))
    else:
        write_section("reports", render(built, results, loans, load_before, load_start, load_end))


async def measure(url: str, port: int, token: str) -> dict[tuple[str, date], dict[str, tuple[float, ...]]]:
    results: dict[tuple[str, date], dict[str, tuple[float, ...]]] = {}
    connection = await asyncpg.connect(**asyncpg_dsn(url))
    await connection.execute("SET jit = off")
    await connection.execute("SET work_mem = '64MB'")
    headers = {PRINCIPAL_HEADER: token}
    try:
        # aiohttp, the client the gateway forwards with: httpx's own cost per request (about 1 ms here, measured
        # against /healthz) is the client's, not the endpoint's
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers, timeout=timeout) as client:
            for report in ONLY or REPORTS:
                for on in (CURRENT, PAST):
                    endpoint, query = await time_both(client, connection, report, on)
                    results[(report, on)] = {
                        "endpoint": percentiles(endpoint),
                        "query": percentiles(query),
                        "runs": (float(len(endpoint)),),
                    }
                    print(report, on, results[(report, on)], flush=True)
    finally:
        await connection.close()
    return results


def render(
    built: dict[str, object],
    results: dict[tuple[str, date], dict[str, tuple[float, ...]]],
    loans: int,
    load_before: str,
    load_start: str,
    load_end: str,
) -> str:
    sizes = built["sizes"]
    assert isinstance(sizes, dict)
    lines = [
        f"## Reports on the reference load ({loans:,} loans), one request at a time",
        "",
        f"Each report and date: at least {RUNS} pairs (one request, then one run of the hand-written query), and more"
        f" while its series has run for less than {SERIES_SECONDS:.0f} s (up to {MAX_RUNS}).",
        "",
        "| report | as of | pairs | endpoint p50 ms | endpoint p95 ms | hand-written SQL p50 ms | SQL p95 ms"
        " | p95 ≤ 200 ms | ≤ 2x SQL (p95) |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for (report, on), figures in results.items():
        (e50, e95), (q50, q95), (runs,) = figures["endpoint"], figures["query"], figures["runs"]
        lines.append(
            f"| {report} | {on} | {runs:.0f} | {e50:.1f} | {e95:.1f} | {q50:.1f} | {q95:.1f}"
            f" | {'meets' if e95 <= 200 else 'MISSES'}"
            f" | {'meets' if e95 <= 2 * q95 else 'MISSES'} ({e95 / q95:.1f}x) |"
        )
    seconds = built["seconds"]
    assert seconds is None or isinstance(seconds, float)
    how = f"built in **{seconds:.0f} s**" if seconds is not None else f"reused (`{KEPT_DATABASE}`, built earlier)"
    lines += [
        "",
        f"- Reference load {how} (`tests/bench/reference_load.py`, 2 worker processes): "
        + ", ".join(f"{name} {count:,}" for name, count in sizes.items())
        + ".",
        "- The endpoint is timed end to end over HTTP with aiohttp (the reporting service's own process, uvicorn, a"
        " funder's principal, JSON out); the hand-written query is one SQL statement per report giving its figures per"
        " currency (the CAD conversion of a handful of rows left out; the flows' in CAD at each day's rate), timed"
        " with asyncpg on the same database in"
        " the same run, in turn with the endpoint's requests (one request, then one query), with the same session settings (no JIT, 64 MB work_mem). The hand-written queries read the same read"
        " model, pre-aggregates and indexes included (`flow_days`, `guarantee_month_end_totals`, `impact_days`,"
        " `impact_glp_days`, the moves in force, the standing steps by length class).",
        f"- Load average (1/5/15 min) before building {load_before}; while measuring: {load_start} at the start,"
        f" {load_end} at the end. The machine is shared: other engineers' jobs ran alongside.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run()
