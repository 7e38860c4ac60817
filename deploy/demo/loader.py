"""Loads a `Plan` into a running platform through the gateway's public API, phase by phase, with a progress bar.

Nothing here touches a database: every fact goes in the way an ICA's system, a lender's core banking system or
the fund's staff would put it in (API keys per role and organization, Idempotency-Keys, signed lender pushes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from dateutil.relativedelta import relativedelta
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.demo.client import ApiError, Gateway, wait_for
from deploy.demo.plan import (
    ApplicationPlan,
    Behaviour,
    Fate,
    Instalment,
    Payment,
    Plan,
    money_str,
    payments,
    recovery_amount,
    restructured_payments,
    restructuring,
)

T = TypeVar("T")
APPS = "/api/v1/applications"
PORTFOLIO = "/api/v1/portfolio"
GUARANTEES = "/api/v1/guarantees"
RATE_LIMIT = {"rate_limit_per_second": 500, "rate_limit_burst": 1000}
EVENT_SERVICES = ("applications", "portfolio", "guarantees", "reporting")


class DemoError(RuntimeError):
    """The platform did not do what the demo expected of it (the message says what and where)."""


@dataclass
class Keys:
    admin: str = ""
    analysts: list[str] = field(default_factory=list)
    committee: list[str] = field(default_factory=list)
    managers: list[str] = field(default_factory=list)
    icas: list[str] = field(default_factory=list)
    lenders: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # key ids, to revoke at the end


@dataclass
class Summary:
    """What was loaded, as the platform reports it afterwards."""

    icas: int = 0
    businesses: int = 0
    lenders: int = 0
    fx_rates: int = 0
    applications: Counter[str] = field(default_factory=Counter)
    loans: Counter[str] = field(default_factory=Counter)
    approvals: int = 0
    restructured: int = 0
    guarantees: Counter[str] = field(default_factory=Counter)
    claims: Counter[str] = field(default_factory=Counter)
    pushes: int = 0
    items_sent: int = 0
    items_applied: int = 0
    items_duplicate: int = 0
    items_rejected: int = 0
    expected_duplicates: int = 0
    expected_rejected: int = 0
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    capital_entries: Counter[str] = field(default_factory=Counter)
    capital_available: str = ""
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0


@dataclass
class Item:
    lender: int
    value_date: date
    order: int  # the loan's application index: a stable order among items of one day
    body: dict[str, Any]


class Loader:
    def __init__(self, gateway: Gateway, plan: Plan, bootstrap_key: str, console: Console | None = None) -> None:
        self.gw = gateway
        self.plan = plan
        self.bootstrap = bootstrap_key
        self.console = console or Console(stderr=True)
        self.keys = Keys()
        self.progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.summary = Summary()
        self.ica_ids: list[str] = []
        self.business_ids: list[str] = []
        self.lender_ids: list[str] = []
        self.lender_secrets: list[str] = []
        self.app_ids: dict[int, str] = {}
        self.loan_ids: dict[int, str] = {}  # application index → loan id
        self.items: list[Item] = []
        self.conflicted_business = 0

    # --- plumbing ---------------------------------------------------------------------------------------------

    def idem(self, *parts: object) -> str:
        return ":".join(["demo", str(self.plan.seed), *map(str, parts)])

    async def each(self, description: str, jobs: Iterable[Awaitable[T]]) -> list[T]:
        """Runs the jobs concurrently (the gateway client bounds how many requests are in flight) under one bar."""
        jobs = list(jobs)
        task = self.progress.add_task(description, total=len(jobs))

        async def one(job: Awaitable[T]) -> T:
            result = await job
            self.progress.advance(task)
            return result

        return list(await asyncio.gather(*(one(j) for j in jobs)))

    async def step(self, description: str, job: Awaitable[T]) -> T:
        task = self.progress.add_task(description, total=1)
        result = await job
        self.progress.advance(task)
        return result

    def rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(["fisiq-demo", str(self.plan.seed), *map(str, parts)]))

    # --- the whole load ---------------------------------------------------------------------------------------

    async def run(self) -> Summary:
        started = time.monotonic()
        with self.progress:
            await self.step("Checking the platform", self.check_platform())
            await self.create_keys()
            await self.reference_data()
            await self.members()
            await self.applications()
            await self.step("Waiting for loans to open", self.await_loans())
            schedules = await self.book_loans()
            await self.repayments(schedules)
            await self.step("Close of day, events drained", self.close_of_day())
            await self.claims_and_write_offs()
            await self.step("Tallying", self.tally())
            await self.step("Revoking the demo's API keys", self.revoke_keys())
        self.summary.requests, self.summary.retries = self.gw.requests, self.gw.retries
        self.summary.seconds = time.monotonic() - started
        return self.summary

    async def check_platform(self) -> None:
        ready = await self.gw.http.get("/readyz")
        if ready.status_code != 200:
            raise DemoError(f"the platform is not ready: GET /readyz → {ready.status_code} {ready.text[:300]}")
        try:
            await self.gw.get("/api/v1/admin/api-keys", self.bootstrap)
        except ApiError as exc:
            raise DemoError(f"the admin key was refused ({exc}); give the key `make run` printed") from None
        icas = await self.gw.get(f"{APPS}/icas", self.bootstrap)
        names = {i["name"] for i in icas}
        if self.plan.icas[0] in names:
            raise DemoError(
                f"this platform already has the demo's ICAs ({self.plan.icas[0]!r}): load the demo into a fresh"
                " database (stop `make run`, remove .data/postgres, start it again)"
            )

    # --- keys -------------------------------------------------------------------------------------------------

    async def new_key(self, name: str, role: str, *, holder: str | None = None, org: str | None = None) -> str:
        body: dict[str, Any] = {"name": name, "role": role, **RATE_LIMIT}
        if holder is not None:
            body["holder"] = holder
        if org is not None:
            body["organization_id"] = org
        created = await self.gw.post("/api/v1/admin/api-keys", self.keys.admin or self.bootstrap, body)
        self.keys.created.append(created["id"])
        key: str = created["key"]
        return key

    async def create_keys(self) -> None:
        self.keys.admin = await self.new_key("demo loader", "admin", holder="demo-loader@fisiq.example")
        staff = [("analyst", f"analyste.{i}@fisiq.example") for i in (1, 2)]
        staff += [("committee", f"comite.{i}@fisiq.example") for i in (1, 2, 3)]
        staff += [("fund_manager", f"gestion.{i}@fisiq.example") for i in (1, 2)]
        keys = await self.each(
            "Staff API keys", (self.new_key(f"demo {role} {holder}", role, holder=holder) for role, holder in staff)
        )
        self.keys.analysts, self.keys.committee, self.keys.managers = keys[:2], keys[2:5], keys[5:]

    async def revoke_keys(self) -> None:
        await asyncio.gather(
            *(
                self.gw.request("DELETE", f"/api/v1/admin/api-keys/{key_id}", self.bootstrap, ok=(200, 204))
                for key_id in self.keys.created
            )
        )

    # --- reference data: FX, lenders, capital, facilities -----------------------------------------------------

    async def reference_data(self) -> None:
        plan, admin = self.plan, self.keys.admin
        outcome = await self.step(
            "FX history (CSV import)",
            self.gw.request(
                "POST",
                f"{PORTFOLIO}/fx-rates/import",
                admin,
                content=plan.fx_csv.encode(),
                content_type="text/csv",
            ),
        )
        self.summary.fx_rates = outcome["imported"] + outcome["unchanged"]

        async def lender(i: int) -> tuple[str, str, str]:
            spec = plan.lenders[i]
            body = {
                "name": spec.name,
                "institution_type": spec.institution_type,
                "country": spec.country,
                "currencies": [spec.currency],
            }
            created = await self.gw.post(f"{PORTFOLIO}/lenders", admin, body, idem=self.idem("lender", i))
            key = await self.new_key(f"demo lender {spec.code}", "lender", org=created["id"])
            return created["id"], created["webhook_secret"]["secret"], key

        lenders = await self.each("Lenders, webhook secrets, keys", (lender(i) for i in range(len(plan.lenders))))
        self.lender_ids = [x[0] for x in lenders]
        self.lender_secrets = [x[1] for x in lenders]
        self.keys.lenders = [x[2] for x in lenders]

        start = plan.today - relativedelta(months=40)
        contributions = [
            ("3000000.00", start, "Government of Québec (MRIF) agreement"),
            ("750000.00", start + relativedelta(months=2), "ICA members' pledges"),
            ("1000000.00", start + relativedelta(months=3), "Social-finance partner"),
        ]
        await self.each(
            "Guarantee capital",
            (
                self.gw.post(
                    f"{GUARANTEES}/capital/entries",
                    self.keys.managers[0],
                    {
                        "kind": "contribution",
                        "amount": {"amount": amount, "currency": "CAD"},
                        "value_date": on.isoformat(),
                        "reference": reference,
                    },
                    idem=self.idem("capital", n),
                )
                for n, (amount, on, reference) in enumerate(contributions)
            ),
        )

        facilities = [i for i, spec in enumerate(plan.lenders) if spec.guarantee_facility]
        await self.each(
            "Guarantee facilities",
            (
                self.gw.post(
                    f"{GUARANTEES}/facilities",
                    self.keys.managers[0],
                    {
                        "lender_id": self.lender_ids[i],
                        "ceiling": {
                            "amount": "2500000.00" if plan.lenders[i].currency == "XOF" else "1500000.00",
                            "currency": "CAD",
                        },
                        "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
                        "coverage_pct": "50",
                        "valid_from": start.isoformat(),
                        "valid_to": (plan.today + relativedelta(years=2)).isoformat(),
                    },
                    idem=self.idem("facility", i),
                )
                for i in facilities
            ),
        )

    # --- ICAs and their partners ------------------------------------------------------------------------------

    async def members(self) -> None:
        plan = self.plan

        async def ica(i: int) -> tuple[str, str]:
            name = plan.icas[i]
            slug = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())[:20]
            created = await self.gw.post(
                f"{APPS}/icas",
                self.keys.admin,
                {"name": name, "country": "CA", "contact_email": f"fisiq@{slug}.example.org"},
                idem=self.idem("ica", i),
            )
            return created["id"], await self.new_key(f"demo ICA {i + 1}", "ica", org=created["id"])

        icas = await self.each("ICAs (members) and their keys", (ica(i) for i in range(len(plan.icas))))
        self.ica_ids = [x[0] for x in icas]
        self.keys.icas = [x[1] for x in icas]

        async def business(i: int) -> str:
            b = plan.businesses[i]
            key = self.keys.icas[b.ica]
            created = await self.gw.post(f"{APPS}/businesses", key, b.as_json(), idem=self.idem("business", i))
            for n, facts in enumerate(b.facts[1:], start=1):
                await self.gw.post(
                    f"{APPS}/businesses/{created['id']}/facts", key, facts.as_json(), idem=self.idem("facts", i, n)
                )
            business_id: str = created["id"]
            return business_id

        self.business_ids = await self.each(
            "Partner businesses, impact facts", (business(i) for i in range(len(plan.businesses)))
        )
        # a committee member sits on the board of one partner: declared, so they never vote on its applications
        self.conflicted_business = next((a.business for a in plan.applications if a.fate.approves), 0)
        await self.gw.post(
            f"{APPS}/businesses/{self.business_ids[self.conflicted_business]}/conflicts",
            self.keys.committee[2],
            {"reason": "I sit on its board"},
            idem=self.idem("conflict"),
        )

    # --- applications through every state ---------------------------------------------------------------------

    async def applications(self) -> None:
        await self.each("Applications (every state)", (self.application(a) for a in self.plan.applications))

    async def application(self, a: ApplicationPlan) -> None:
        plan = self.plan
        ica = self.keys.icas[plan.businesses[a.business].ica]
        analyst = self.keys.analysts[a.index % 2]
        lender_id = self.lender_ids[a.lender]
        body = a.body(self.business_ids[a.business], lender_id)
        created = await self.gw.post(f"{APPS}/applications", ica, body, idem=self.idem("application", a.index))
        app_id = created["id"]
        self.app_ids[a.index] = app_id
        path = f"{APPS}/applications/{app_id}"
        if a.fate is Fate.draft:
            return
        if a.fate is Fate.withdrawn_draft:
            await self.gw.post(
                f"{path}/withdraw",
                ica,
                {"comment": "the cooperative found another way"},
                idem=self.idem("withdraw", a.index),
            )
            return
        screened = await self.gw.post(f"{path}/submit", ica, {}, idem=self.idem("submit", a.index))
        expected = "rejected" if a.fate is Fate.screening_rejected else "under_review"
        if screened["status"] != expected:
            failed = [c["reason"] for c in (screened.get("screening") or {}).get("criteria", []) if not c["passed"]]
            raise DemoError(f"application {a.index} ({a.fate}) was screened {screened['status']}: {failed}")
        if a.fate in (Fate.screening_rejected, Fate.under_review):
            return
        if a.fate is Fate.withdrawn_review:
            await self.gw.post(
                f"{path}/withdraw",
                ica,
                {"comment": "the general assembly postponed the project"},
                idem=self.idem("withdraw", a.index),
            )
            return
        if a.fate in (Fate.returned, Fate.approved_after_return):
            await self.gw.post(
                f"{path}/return",
                analyst,
                {"comment": "please add the last two years' financial statements and the AGM minutes"},
                idem=self.idem("return", a.index),
            )
            if a.fate is Fate.returned:
                return
            await self.gw.request(
                "PATCH",
                path,
                ica,
                json_body={"support_plan": f"{body['support_plan']} Statements 2023-2024 and AGM minutes attached."},
            )
            await self.gw.post(f"{path}/submit", ica, {}, idem=self.idem("resubmit", a.index))
        await self.gw.post(
            f"{path}/scorecard",
            analyst,
            {"scores": a.scores, "comment": "governance and gender facts checked with the ICA"},
            idem=self.idem("score", a.index),
        )
        if a.fate is Fate.scored:
            return
        await self.gw.post(f"{path}/send-to-committee", analyst, {}, idem=self.idem("send", a.index))
        if a.fate is Fate.withdrawn_committee:
            await self.gw.post(
                f"{path}/withdraw",
                ica,
                {"comment": "the lender withdrew its offer"},
                idem=self.idem("withdraw", a.index),
            )
            return
        if a.business == self.conflicted_business:
            voters = self.keys.committee[:2]
        else:
            voters = [self.keys.committee[a.index % 3], self.keys.committee[(a.index + 1) % 3]]
        if a.fate is Fate.committee:
            voters = voters[:1]
        for n, voter in enumerate(voters):
            if a.fate is Fate.committee_rejected:
                vote: dict[str, Any] = {"decision": "reject", "comment": "repayment capacity not shown"}
            else:
                vote = {"decision": "approve", "comment": "sound project", "terms": a.final_terms(lender_id)}
            outcome = await self.gw.post(f"{path}/votes", voter, vote, idem=self.idem("vote", a.index, n))
        want = {Fate.committee: "committee", Fate.committee_rejected: "rejected"}.get(a.fate, "approved")
        if outcome["application_status"] != want:
            raise DemoError(f"application {a.index} ended {outcome['application_status']}, not {want}")

    # --- loans ------------------------------------------------------------------------------------------------

    async def await_loans(self) -> None:
        """The approvals open their loans (portfolio) and those loans their guarantees (guarantees), through the
        event table: waits for every consumer to catch up (cheap to ask), then reads the loans and guarantees."""
        approved = {self.app_ids[a.index]: a.index for a in self.plan.loans}
        guaranteed = {a.index for a in self.plan.loans if "guarantee" in a.instruments}
        manager = self.keys.managers[0]

        async def opened() -> bool:
            await self.drained()
            for loan in await self.gw.pages(f"{PORTFOLIO}/loans", manager, limit=500):
                if loan["application_id"] in approved:
                    self.loan_ids[approved[loan["application_id"]]] = loan["id"]
            if len(self.loan_ids) < len(approved):
                return False
            issued = await self.guarantees()
            return all(self.loan_ids[i] in issued for i in guaranteed)

        await wait_for(
            f"the {len(approved)} approvals to open their loans and {len(guaranteed)} guarantees to be issued",
            opened,
            timeout=120 + len(approved),
            interval=2,
        )
        refused = [g for g in (await self.guarantees()).values() if g["status"] == "refused"]
        specials = {self.loan_ids[a.index] for a in self.plan.loans if a.loan and a.loan.behaviour.guaranteed}
        if any(g["loan_id"] in specials for g in refused):
            raise DemoError(f"guarantees the demo needs were refused: {[g['refusal'] for g in refused]}")

    async def guarantees(self) -> dict[str, dict[str, Any]]:
        """Every guarantee by loan id (each lender's own, so no listing hits its page limit)."""
        lists = await asyncio.gather(
            *(self.gw.get(f"{GUARANTEES}/guarantees", key, limit=500) for key in self.keys.lenders)
        )
        return {g["loan_id"]: g for listed in lists for g in listed}

    async def schedule(self, loan_id: str, as_of: date | None = None) -> list[Instalment]:
        out = await self.gw.get(
            f"{PORTFOLIO}/loans/{loan_id}/schedule",
            self.keys.managers[0],
            as_of=as_of.isoformat() if as_of else None,
        )
        return [
            Instalment(i["number"], date.fromisoformat(i["due_date"]), Decimal(i["total_due"]["amount"]))
            for i in out["instalments"]
        ]

    async def book_loans(self) -> dict[int, list[Payment]]:
        """Terms, disbursements (up to three years back), the restructuring; then each borrower's repayments."""
        manager = self.keys.managers[0]

        async def book(a: ApplicationPlan) -> tuple[int, list[Payment]]:
            loan = a.loan
            assert loan is not None
            loan_id = self.loan_ids[a.index]
            path = f"{PORTFOLIO}/loans/{loan_id}"
            terms = {
                "annual_rate_pct": str(loan.annual_rate_pct),
                "frequency": loan.frequency,
                "method": loan.method,
                "grace_periods": loan.grace_periods,
            }
            await self.gw.put(f"{path}/terms", manager, terms, idem=self.idem("terms", a.index))
            first = a.amount
            if loan.second_tranche_pct:
                first = (a.amount * (100 - loan.second_tranche_pct) / 100).quantize(Decimal(1))
            tranches = [(first, loan.disbursed_on)]
            if first < a.amount:
                tranches.append((a.amount - first, loan.disbursed_on + timedelta(days=20)))
            for n, (amount, on) in enumerate(tranches):
                await self.gw.post(
                    f"{path}/disbursements",
                    manager,
                    {
                        "amount": {"amount": money_str(amount, a.currency), "currency": a.currency},
                        "value_date": str(on),
                    },
                    idem=self.idem("disbursement", a.index, n),
                )
            schedule = await self.schedule(loan_id)
            rng = self.rng("payments", a.index)
            if loan.behaviour is not Behaviour.restructured:
                return a.index, payments(loan, schedule, a.currency, self.plan.today, rng)
            change = restructuring(loan, schedule, a.term_months)
            await self.gw.post(
                f"{path}/restructuring",
                manager,
                {
                    "effective_from": change.effective_from.isoformat(),
                    "annual_rate_pct": str(change.annual_rate_pct),
                    "frequency": "monthly",
                    "method": "annuity",
                    "periods": change.periods,
                    "first_due_date": change.first_due_date.isoformat(),
                    "reason": "harvest lost to drought; rescheduled over a longer term at a lower rate",
                },
                idem=self.idem("restructuring", a.index),
            )
            return a.index, restructured_payments(change, schedule, await self.schedule(loan_id), self.plan.today)

        booked = await self.each("Loans: terms, disbursements", (book(a) for a in self.plan.loans))
        return dict(booked)

    # --- lenders' pushes --------------------------------------------------------------------------------------

    def repayment_items(self, schedules: dict[int, list[Payment]]) -> None:
        for a in self.plan.loans:
            for p in schedules[a.index]:
                self.items.append(
                    Item(
                        a.lender,
                        p.value_date,
                        a.index,
                        {
                            "type": "repayment",
                            "loan_id": self.loan_ids[a.index],
                            "amount": {"amount": money_str(p.amount, a.currency), "currency": a.currency},
                            "value_date": p.value_date.isoformat(),
                        },
                    )
                )
        self.items.sort(key=lambda i: (i.value_date, i.lender, i.order))

    def number(self, items: list[Item], prefix: str) -> None:
        """Each lender's own transaction ids, in its own numbering."""
        counters: Counter[int] = Counter()
        for item in items:
            counters[item.lender] += 1
            code = self.plan.lenders[item.lender].code
            item.body["transaction_id"] = f"{code}-{prefix}{item.value_date:%Y%m%d}-{counters[item.lender]:06d}"

    async def send_pushes(self, description: str, pushes: list[tuple[int, str, list[dict[str, Any]]]]) -> list[str]:
        """Sends each (lender, webhook id, items) push; pushes of one month go together, months in order."""
        task = self.progress.add_task(description, total=len(pushes))
        receipts: list[str] = []
        by_month: dict[str, list[tuple[int, str, list[dict[str, Any]]]]] = defaultdict(list)
        for push in pushes:
            by_month[push[1].rsplit("_", 1)[-1]].append(push)

        async def send(lender: int, msg_id: str, items: list[dict[str, Any]]) -> str:
            receipt = await self.gw.push(self.lender_ids[lender], self.lender_secrets[lender], msg_id, items)
            self.progress.advance(task)
            push_id: str = receipt["push_id"]
            return push_id

        for month in sorted(by_month):
            receipts += await asyncio.gather(*(send(*push) for push in by_month[month]))
        self.summary.pushes += len(pushes)
        self.summary.items_sent += sum(len(p[2]) for p in pushes)
        return receipts

    async def repayments(self, schedules: dict[int, list[Payment]]) -> None:
        """Three years of monthly pushes, one per lender and month, plus what a real feed also carries: a push
        sent twice, a transaction sent again in a later push, and one item the platform must reject."""
        self.repayment_items(schedules)
        self.number(self.items, "")
        monthly: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        for item in self.items:
            monthly[(item.lender, f"{item.value_date:%Y%m}")].append(item.body)
        pushes = [
            (lender, f"msg_{self.plan.lenders[lender].code}_{month}", items)
            for (lender, month), items in sorted(monthly.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ]
        last = pushes[-1]
        resent = next(p for p in pushes if p[0] == last[0] and p is not last)  # an earlier push of the same lender
        loan_of_lender = next(a for a in self.plan.loans if a.lender == last[0])
        wrong_currency = "EUR" if loan_of_lender.currency != "EUR" else "USD"
        last[2].append(dict(resent[2][0]))  # sent again: counted once, as a duplicate
        last[2].append(
            {
                "type": "repayment",
                "transaction_id": f"{self.plan.lenders[last[0]].code}-ERR-000001",
                "loan_id": self.loan_ids[loan_of_lender.index],
                "amount": {"amount": "100.00", "currency": wrong_currency},
                "value_date": self.plan.today.isoformat(),
            }
        )
        self.summary.expected_duplicates, self.summary.expected_rejected = 1, 1
        await self.send_pushes("Repayment pushes (signed, monthly)", pushes)
        again = await self.gw.push(self.lender_ids[resent[0]], self.lender_secrets[resent[0]], resent[1], resent[2])
        if not again["duplicate"]:
            raise DemoError(f"a push sent twice ({resent[1]}) was not recognised as a duplicate")
        await self.step("Waiting for pushes to apply", self.await_pushes())

    async def await_pushes(self) -> None:
        async def lender_done(i: int) -> bool:
            path = f"{PORTFOLIO}/lenders/{self.lender_ids[i]}/pushes"
            failed = await self.gw.get(path, self.keys.lenders[i], status="failed", limit=1)
            if failed["items"]:
                raise DemoError(f"a push of {self.plan.lenders[i].name} failed: {failed['items'][0]}")
            waiting = await self.gw.get(path, self.keys.lenders[i], status="received", limit=1)
            return not waiting["items"]

        async def all_done() -> bool:
            return all(await asyncio.gather(*(lender_done(i) for i in range(len(self.lender_ids)))))

        await wait_for("the lenders' pushes to be applied", all_done, timeout=120 + len(self.items) / 50)

    # --- close of day, claims, write-offs, recoveries ---------------------------------------------------------

    async def drained(self) -> None:
        admin = self.keys.admin

        async def caught_up() -> bool:
            for service in EVENT_SERVICES:
                for sub in await self.gw.get(f"/api/v1/{service}/admin/events/subscriptions", admin):
                    if sub["parked"]:
                        raise DemoError(f"{service}: subscription {sub['name']} parked {sub['parked']} events")
                    if sub["lag_events"] is None or sub["lag_events"] > 0 or sub["retrying"] or sub["held"]:
                        return False
            return True

        await wait_for("every service to consume its events", caught_up, timeout=600, interval=1)

    async def close_of_day(self) -> None:
        await self.drained()
        yesterday = self.plan.today - timedelta(days=1)
        await self.gw.post(f"{PORTFOLIO}/admin/close-of-day", self.keys.managers[0], {"as_of": yesterday.isoformat()})
        await self.drained()
        await self.gw.post(f"{GUARANTEES}/admin/expiry", self.keys.managers[0], {})

    async def claims_and_write_offs(self) -> None:
        plan, today = self.plan, self.plan.today
        maker, checker = self.keys.managers
        documents = [
            {"name": "demand-letter.pdf", "kind": "demand_letter"},
            {"name": "loan-statement.csv", "kind": "loan_statement"},
        ]

        async def claim(a: ApplicationPlan) -> None:
            assert a.loan is not None
            behaviour = a.loan.behaviour
            filed = await self.gw.post(
                f"{GUARANTEES}/claims",
                self.keys.lenders[a.lender],
                {"loan_id": self.loan_ids[a.index], "documents": documents},
                idem=self.idem("claim", a.index),
            )
            path = f"{GUARANTEES}/claims/{filed['id']}"
            if behaviour is Behaviour.claim_filed:
                return
            if behaviour is Behaviour.claim_rejected:
                await self.gw.post(
                    f"{path}/reject",
                    maker,
                    {"reason": "the demand letter is not signed"},
                    idem=self.idem("rej", a.index),
                )
                return
            await self.gw.post(f"{path}/validate", maker, {}, idem=self.idem("validate", a.index))
            if behaviour is not Behaviour.claim_validated:
                await self.gw.post(f"{path}/approve-payment", checker, {}, idem=self.idem("pay", a.index))

        special = [a for a in plan.loans if a.loan is not None and a.loan.behaviour.claims]
        await self.each("Claims filed, validated, paid", (claim(a) for a in special))

        async def write_off(a: ApplicationPlan) -> None:
            assert a.loan is not None
            on = a.loan.write_off_on or today
            await self.gw.post(
                f"{PORTFOLIO}/loans/{self.loan_ids[a.index]}/write-off",
                maker,
                {"value_date": on.isoformat(), "reason": "no repayment for months; collateral insufficient"},
                idem=self.idem("write-off", a.index),
            )

        written = [a for a in plan.loans if a.loan is not None and a.loan.behaviour.written_off]
        await self.each("Write-offs", (write_off(a) for a in written))

        async def recovery(a: ApplicationPlan) -> Item:
            assert a.loan is not None
            loan = await self.gw.get(f"{PORTFOLIO}/loans/{self.loan_ids[a.index]}", maker)
            base = Decimal(loan["written_off_principal"]["amount"]) or Decimal(loan["outstanding_principal"]["amount"])
            on = min(today, a.loan.write_off_on + timedelta(days=45)) if a.loan.write_off_on else today
            amount = recovery_amount(base, a.currency, self.rng("recovery", a.index))
            body = {
                "type": "recovery",
                "loan_id": self.loan_ids[a.index],
                "amount": {"amount": money_str(amount, a.currency), "currency": a.currency},
                "value_date": on.isoformat(),
            }
            return Item(a.lender, on, a.index, body)

        recovering = [a for a in plan.loans if a.loan is not None and a.loan.behaviour.recovers]
        items = await self.each("Recoveries", (recovery(a) for a in recovering))
        self.number(items, "REC-")
        by_lender: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for item in items:
            by_lender[item.lender].append(item.body)
        await self.send_pushes(
            "Recovery pushes",
            [
                (lender, f"msg_{plan.lenders[lender].code}_recoveries_{today:%Y%m}", b)
                for lender, b in by_lender.items()
            ],
        )
        await self.await_pushes()
        await self.drained()

    # --- what the platform now says ---------------------------------------------------------------------------

    async def tally(self) -> None:
        s, manager, admin = self.summary, self.keys.managers[0], self.keys.admin
        s.icas = len(self.ica_ids)
        s.businesses = len(self.business_ids)
        s.lenders = len(self.lender_ids)
        s.approvals = len(self.plan.loans)
        for a in await self.gw.pages(f"{APPS}/applications", admin, limit=200):
            if a["id"] in self.app_ids.values():
                s.applications[a["status"]] += 1
        for loan in await self.gw.pages(f"{PORTFOLIO}/loans", manager, limit=500):
            if loan["id"] in self.loan_ids.values():
                s.loans[loan["status"]] += 1
                s.restructured += bool(loan["restructured"])
        s.guarantees = Counter(g["status"] for g in (await self.guarantees()).values())
        s.claims = Counter(c["status"] for c in await self.gw.get(f"{GUARANTEES}/claims", manager))
        for i, lender_id in enumerate(self.lender_ids):
            for push in await self.gw.pages(f"{PORTFOLIO}/lenders/{lender_id}/pushes", self.keys.lenders[i], limit=500):
                s.items_applied += push["applied"]
                s.items_duplicate += push["duplicates"]
                s.items_rejected += push["rejected"]
                if push["rejected"]:
                    rejected = await self.gw.get(
                        f"{PORTFOLIO}/lenders/{lender_id}/pushes/{push['id']}/items",
                        self.keys.lenders[i],
                        status="rejected",
                    )
                    s.rejected_reasons.update(item["reason"] for item in rejected["items"])
        entries = await self.gw.pages(f"{GUARANTEES}/capital/entries", manager)
        s.capital_entries = Counter(e["kind"] for e in entries)
        capital = await self.gw.get(f"{GUARANTEES}/capital", manager)
        s.capital_available = capital["capital_available"]["amount"]


def report(summary: Summary, console: Console) -> None:
    table = Table(title="FISIQ demo dataset", show_header=False)
    table.add_column("what")
    table.add_column("figures")

    def counts(c: Counter[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "—"

    table.add_row("ICAs / partner businesses / lenders", f"{summary.icas} / {summary.businesses} / {summary.lenders}")
    table.add_row("FX rates (CSV)", str(summary.fx_rates))
    table.add_row("applications", f"{sum(summary.applications.values())}: {counts(summary.applications)}")
    table.add_row(
        "loans", f"{sum(summary.loans.values())}: {counts(summary.loans)}; restructured {summary.restructured}"
    )
    table.add_row("guarantees", counts(summary.guarantees))
    table.add_row("claims", counts(summary.claims))
    table.add_row(
        "lender pushes",
        f"{summary.pushes} pushes, {summary.items_sent} items: applied {summary.items_applied}, duplicate"
        f" {summary.items_duplicate}, rejected {summary.items_rejected} ({counts(summary.rejected_reasons)})",
    )
    table.add_row("capital ledger entries", counts(summary.capital_entries))
    table.add_row("guarantee capital available (CAD)", summary.capital_available)
    table.add_row("requests (retried)", f"{summary.requests} ({summary.retries})")
    table.add_row("time", f"{summary.seconds:.0f} s")
    console.print(table)
