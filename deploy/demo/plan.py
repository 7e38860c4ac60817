"""The demo dataset, planned before any request: who exists, what each application goes through, how each loan is
disbursed and repaid. Pure and deterministic: the same seed, scale and day give the same plan.

What depends on the platform's answers (ids, the schedule the portfolio builds) is resolved by `payments()`,
which turns a loan's behaviour and its schedule into the repayments its lender will push.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from dateutil.relativedelta import relativedelta

from deploy.demo.data import (
    AMOUNT_STEP,
    COUNTRIES_BY_CURRENCY,
    CURRENCY_OF,
    ENVIRONMENTAL_PRACTICES,
    EUR_PER_CFA,
    FX_START,
    ICA_NAMES,
    LEGAL_FORM_WORDS,
    LENDERS,
    RATE_RANGE,
    SECTORS,
    TOWNS,
    LenderSpec,
)
from shared.money import minor_units

HISTORY_MONTHS = 36  # disbursements and repayments reach this far back


class Fate(StrEnum):
    """Where an application ends up (the status it is left in, and the way it got there)."""

    approved = "approved"
    approved_after_return = "approved_after_return"  # returned once, completed, submitted again, approved
    screening_rejected = "screening_rejected"
    committee_rejected = "committee_rejected"
    withdrawn_draft = "withdrawn_draft"
    withdrawn_review = "withdrawn_review"
    withdrawn_committee = "withdrawn_committee"
    returned = "returned"
    draft = "draft"
    under_review = "under_review"
    scored = "scored"  # under review, scorecard made, not yet sent
    committee = "committee"  # in committee, one vote cast so far

    @property
    def approves(self) -> bool:
        return self in (Fate.approved, Fate.approved_after_return)


# applications at scale 1.0, by fate (400 in all, 250 approved)
FATE_COUNTS: dict[Fate, int] = {
    Fate.approved: 230,
    Fate.approved_after_return: 20,
    Fate.screening_rejected: 30,
    Fate.committee_rejected: 15,
    Fate.withdrawn_draft: 7,
    Fate.withdrawn_review: 7,
    Fate.withdrawn_committee: 6,
    Fate.returned: 15,
    Fate.draft: 20,
    Fate.under_review: 15,
    Fate.scored: 10,
    Fate.committee: 25,
}


class Behaviour(StrEnum):
    """How a loan's borrower repays, and what the fund does about it."""

    on_time = "on_time"
    late = "late"  # pays every instalment, days to weeks late; the latest may still be overdue today
    defaulted = "defaulted"  # stops paying (co-financing only: no guarantee to claim)
    default_written_off = "default_written_off"  # stops paying, written off, a recovery pushed afterwards
    restructured = "restructured"  # falls behind, is rescheduled, catches up and pays the new schedule
    claim_paid_written_off = "claim_paid_written_off"  # guaranteed; claim paid, loan written off, recovery pushed
    claim_paid_recovery = "claim_paid_recovery"  # guaranteed; claim paid, a recovery pushed on the live loan
    claim_paid = "claim_paid"
    claim_validated = "claim_validated"  # validated, waiting for the second staff member's payment approval
    claim_filed = "claim_filed"
    claim_rejected = "claim_rejected"
    expired = "expired"  # guaranteed; defaulted so long ago that the claim deadline passed with no claim

    @property
    def claims(self) -> bool:
        return self.value.startswith("claim_")

    @property
    def guaranteed(self) -> bool:
        return self.claims or self is Behaviour.expired

    @property
    def stops_paying(self) -> bool:
        return self.guaranteed or self in (Behaviour.defaulted, Behaviour.default_written_off)

    @property
    def written_off(self) -> bool:
        return self in (Behaviour.default_written_off, Behaviour.claim_paid_written_off)

    @property
    def recovers(self) -> bool:
        return self in (Behaviour.default_written_off, Behaviour.claim_paid_written_off, Behaviour.claim_paid_recovery)


# the special cases at scale 1.0, and the floor kept at any scale (so a tiny run still shows each kind)
SPECIALS: dict[Behaviour, tuple[int, int]] = {
    Behaviour.restructured: (1, 1),
    Behaviour.claim_paid_written_off: (2, 1),
    Behaviour.claim_paid_recovery: (2, 1),
    Behaviour.claim_paid: (1, 0),
    Behaviour.claim_validated: (1, 1),
    Behaviour.claim_filed: (1, 0),
    Behaviour.claim_rejected: (1, 0),
    Behaviour.expired: (1, 1),
    Behaviour.default_written_off: (2, 1),
    Behaviour.defaulted: (12, 0),
}
LATE_SHARE = 0.25


@dataclass(frozen=True)
class Facts:
    reported_on: date
    members_total: int
    members_women: int
    board_seats_total: int
    board_seats_women: int
    employees_total: int
    employees_women: int
    senior_managers_total: int
    senior_managers_women: int
    women_ownership_pct: int | None
    general_assembly_last_12_months: bool
    board_elected_by_members: bool
    one_member_one_vote: bool
    environmental_practices: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "reported_on": self.reported_on.isoformat(),
            "members_total": self.members_total,
            "members_women": self.members_women,
            "board_seats_total": self.board_seats_total,
            "board_seats_women": self.board_seats_women,
            "employees_total": self.employees_total,
            "employees_women": self.employees_women,
            "senior_managers_total": self.senior_managers_total,
            "senior_managers_women": self.senior_managers_women,
            "women_ownership_pct": self.women_ownership_pct,
            "general_assembly_last_12_months": self.general_assembly_last_12_months,
            "board_elected_by_members": self.board_elected_by_members,
            "one_member_one_vote": self.one_member_one_vote,
            "environmental_practices": list(self.environmental_practices),
        }


@dataclass
class BusinessPlan:
    index: int
    ica: int
    name: str
    legal_form: str
    country: str
    sector: str
    purposes: tuple[str, ...]
    year_founded: int
    facts: list[Facts] = field(default_factory=list)  # the first at registration, then the annual reports

    @property
    def currency(self) -> str:
        return CURRENCY_OF[self.country]

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "legal_form": self.legal_form,
            "country": self.country,
            "sector": self.sector,
            "year_founded": self.year_founded,
            "profile": self.facts[0].as_json(),
        }


@dataclass
class LoanPlan:
    """What the fund and the lender do with an approved application's loan."""

    behaviour: Behaviour
    disbursed_on: date
    annual_rate_pct: int
    frequency: str
    method: str
    grace_periods: int
    second_tranche_pct: int | None  # part of the principal paid out 20 days after the first tranche
    stop_target: date | None  # defaulters: the first instalment due on or after this date is never paid
    write_off_on: date | None


@dataclass
class ApplicationPlan:
    index: int
    business: int
    lender: int
    fate: Fate
    amount: Decimal
    currency: str
    term_months: int
    purpose: str
    instruments: list[str]
    fund_share_pct: int | None
    coverage_pct: int | None
    scores: dict[str, int]
    loan: LoanPlan | None = None

    def body(self, business_id: str, lender_id: str) -> dict[str, object]:
        lender_share = 100 - self.fund_share_pct if self.fund_share_pct else 100
        return {
            "business_id": business_id,
            "requested": {"amount": money_str(self.amount, self.currency), "currency": self.currency},
            "term_months": self.term_months,
            "purpose": self.purpose,
            "instruments": self.instruments,
            "lender_id": lender_id,
            "lender_share_pct": str(lender_share),
            "support_plan": "The ICA's field officer visits monthly; bookkeeping and governance training for the board"
            " in the first year; quarterly reports to the fund.",
        }

    def final_terms(self, lender_id: str) -> dict[str, object]:
        return {
            "amount": {"amount": money_str(self.amount, self.currency), "currency": self.currency},
            "term_months": self.term_months,
            "instruments": self.instruments,
            "lender_id": lender_id,
            "fund_share_pct": str(self.fund_share_pct) if "co_financing" in self.instruments else None,
            "guarantee_coverage_pct": str(self.coverage_pct) if "guarantee" in self.instruments else None,
            "conditions": ["quarterly reports to the ICA", "annual impact facts"],
        }


@dataclass
class Plan:
    seed: int
    scale: float
    today: date
    lenders: list[LenderSpec]
    icas: list[str]
    businesses: list[BusinessPlan]
    applications: list[ApplicationPlan]
    fx_csv: str
    latest_rates: dict[str, Decimal]  # CAD per unit on the last day of the history, every lender currency

    @property
    def loans(self) -> list[ApplicationPlan]:
        return [a for a in self.applications if a.loan is not None]


def money_str(amount: Decimal, currency: str) -> str:
    return format(amount.quantize(Decimal(1).scaleb(-minor_units(currency))), "f")


def scaled(count: int, scale: float, floor: int = 1) -> int:
    return max(floor, round(count * scale))


def make_plan(*, seed: int, scale: float, today: date) -> Plan:
    rng = random.Random(f"fisiq-demo:{seed}")
    lenders = _lenders(scale)
    fx_csv, latest = _fx_history(rng, today)
    icas = list(ICA_NAMES[: scaled(len(ICA_NAMES), scale)])
    businesses = _businesses(rng, scale, today, len(icas))
    applications = _applications(rng, scale, today, lenders, businesses, latest)
    _facts_history(rng, businesses, applications, today)
    return Plan(seed, scale, today, lenders, icas, businesses, applications, fx_csv, latest)


def _lenders(scale: float) -> list[LenderSpec]:
    """Every currency's first lender, then the others in order, up to the scaled count (at least one each)."""
    firsts = [next(spec for spec in LENDERS if spec.currency == c) for c in COUNTRIES_BY_CURRENCY]
    rest = [spec for spec in LENDERS if spec not in firsts]
    wanted = max(len(firsts), scaled(len(LENDERS), scale))
    chosen = set(firsts + rest[: wanted - len(firsts)])
    return [spec for spec in LENDERS if spec in chosen]


def _fx_history(rng: random.Random, today: date) -> tuple[str, dict[str, Decimal]]:
    """Business-day closing rates from before the oldest disbursement to today: a gentle random walk each."""
    start = today - relativedelta(months=HISTORY_MONTHS + 3)
    lines = ["date,currency,cad_per_unit,source"]
    level = {c: float(v) for c, v in FX_START.items()}
    last: dict[str, Decimal] = {}
    day = start
    while day <= today:
        if day.weekday() < 5:
            for currency in FX_START:
                level[currency] *= 1 + rng.gauss(0, 0.0025)
                rate = _significant(Decimal(repr(level[currency])), 6)
                last[currency] = rate
                lines.append(f"{day.isoformat()},{currency},{rate},Bank of Canada (demo)")
        day += timedelta(days=1)
    rates = dict(last)
    for cfa in ("XOF", "XAF"):
        rates[cfa] = last["EUR"] / EUR_PER_CFA
    return "\n".join(lines) + "\n", rates


def _significant(value: Decimal, digits: int) -> Decimal:
    exponent = value.adjusted() - digits + 1
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)


def _businesses(rng: random.Random, scale: float, today: date, icas: int) -> list[BusinessPlan]:
    countries = [c for cs in COUNTRIES_BY_CURRENCY.values() for c in cs]
    # each ICA works in two or three countries; together they cover all 25
    focus = [[countries[(i * 2 + k) % len(countries)] for k in range(2 + i % 2)] for i in range(icas)]
    total = scaled(300, scale, floor=icas)
    out: list[BusinessPlan] = []
    seen: Counter[str] = Counter()
    for i in range(total):
        ica = i % icas
        country = rng.choice(focus[ica])
        sector, phrase, purposes = rng.choice(SECTORS)
        form = rng.choices(
            ["cooperative", "association", "mutual", "non_profit_social_enterprise"], weights=[62, 16, 10, 12]
        )[0]
        town = rng.choice(TOWNS[country])
        name = f"{LEGAL_FORM_WORDS[form]} {phrase} de {town}"
        seen[name] += 1
        if seen[name] > 1:  # the second cooperative of its kind in that town
            name = f"{name} {_roman(seen[name])}"
        out.append(
            BusinessPlan(
                index=i,
                ica=ica,
                name=name,
                legal_form=form,
                country=country,
                sector=sector,
                purposes=purposes,
                year_founded=rng.randint(1992, today.year - 4),
            )
        )
    return out


def _roman(n: int) -> str:
    return {2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII", 9: "IX"}.get(n, str(n))


def _facts(rng: random.Random, on: date, base: Facts | None = None) -> Facts:
    if base is None:
        members = int(rng.lognormvariate(5.0, 0.9)) + 12
        women_share = rng.uniform(0.15, 0.9)
        board = rng.randint(5, 12)
        employees = rng.randint(1, 25)
        managers = rng.randint(1, 4)
        practices = tuple(sorted(rng.sample(ENVIRONMENTAL_PRACTICES, rng.randint(0, 3))))
        return Facts(
            reported_on=on,
            members_total=members,
            members_women=round(members * women_share),
            board_seats_total=board,
            board_seats_women=min(board, round(board * rng.uniform(women_share - 0.2, women_share + 0.1))),
            employees_total=employees,
            employees_women=round(employees * rng.uniform(0.1, 0.8)),
            senior_managers_total=managers,
            senior_managers_women=rng.randint(0, managers),
            women_ownership_pct=round(women_share * 100) if rng.random() < 0.7 else None,
            general_assembly_last_12_months=rng.random() < 0.9,
            board_elected_by_members=rng.random() < 0.93,
            one_member_one_vote=rng.random() < 0.95,
            environmental_practices=practices,
        )
    # a year later: members and jobs grow a little (jobs created, PI3687), governance mostly holds
    members = base.members_total + rng.randint(0, max(1, base.members_total // 8))
    employees = base.employees_total + rng.choice((0, 0, 1, 1, 2, 3))
    return Facts(
        reported_on=on,
        members_total=members,
        members_women=min(members, base.members_women + (members - base.members_total) // 2),
        board_seats_total=base.board_seats_total,
        board_seats_women=base.board_seats_women,
        employees_total=employees,
        employees_women=min(employees, base.employees_women + (employees - base.employees_total) // 2),
        senior_managers_total=base.senior_managers_total,
        senior_managers_women=base.senior_managers_women,
        women_ownership_pct=base.women_ownership_pct,
        general_assembly_last_12_months=rng.random() < 0.95,
        board_elected_by_members=base.board_elected_by_members,
        one_member_one_vote=base.one_member_one_vote,
        environmental_practices=base.environmental_practices,
    )


def _facts_history(
    rng: random.Random, businesses: list[BusinessPlan], applications: list[ApplicationPlan], today: date
) -> None:
    """Facts reported at registration (before the first loan, if any), then every year since."""
    first_loan: dict[int, date] = {}
    for a in applications:
        if a.loan is not None:
            first_loan[a.business] = min(first_loan.get(a.business, a.loan.disbursed_on), a.loan.disbursed_on)
    for b in businesses:
        start = first_loan.get(b.index, today - timedelta(days=rng.randint(20, 300))) - timedelta(days=60)
        b.facts.append(_facts(rng, start))
        on = start + relativedelta(years=1)
        while on <= today:
            b.facts.append(_facts(rng, on, b.facts[-1]))
            on += relativedelta(years=1)


def _applications(
    rng: random.Random,
    scale: float,
    today: date,
    lenders: list[LenderSpec],
    businesses: list[BusinessPlan],
    rates: dict[str, Decimal],
) -> list[ApplicationPlan]:
    fates = [fate for fate, n in FATE_COUNTS.items() for _ in range(scaled(n, scale))]
    approvals = sum(1 for f in fates if f.approves)
    specials = [b for b, (n, floor) in SPECIALS.items() for _ in range(max(floor, round(n * scale)))]
    fates += [Fate.approved] * max(0, len(specials) + 2 - approvals)  # room for every special and two regular loans
    rng.shuffle(fates)
    # a few businesses fail screening themselves (a private company, a start-up); the others by their request
    ineligible = {b.index for b in rng.sample(businesses, k=max(1, fates.count(Fate.screening_rejected) // 3))}
    for b in businesses:
        if b.index in ineligible:
            if rng.random() < 0.5:
                b.legal_form = "private_company"
                b.name = b.name.replace(b.name.split(" ")[0], LEGAL_FORM_WORDS["private_company"], 1)
            else:
                b.year_founded = today.year - 1
    eligible = [b for b in businesses if b.index not in ineligible]
    # approved loans go to distinct businesses first (a few get a second loan), the rest anywhere eligible
    borrowers = rng.sample(eligible, k=len(eligible))
    behaviours = list(specials)
    out: list[ApplicationPlan] = []
    screened_out = sorted(ineligible)
    for index, fate in enumerate(fates):
        if fate is Fate.screening_rejected and screened_out:
            business = businesses[screened_out.pop()]
        elif fate.approves:
            business = borrowers[sum(1 for a in out if a.fate.approves) % len(borrowers)]
        else:
            business = rng.choice(eligible)
        behaviour = None
        if fate.approves:
            behaviour = (
                behaviours.pop() if behaviours else (Behaviour.late if rng.random() < LATE_SHARE else Behaviour.on_time)
            )
        out.append(_application(rng, index, fate, business, behaviour, lenders, rates, today))
    # a screening rejection that is not the business's fault: an ineligible request
    reasons = iter(("purpose", "amount", "term") * len(out))
    for a in out:
        if a.fate is Fate.screening_rejected and a.business not in ineligible:
            reason = next(reasons)
            if reason == "purpose":
                a.purpose = "working_capital"
            elif reason == "amount":
                a.amount = _local_amount(Decimal(rng.randint(300_000, 450_000)), a.currency, rates)
            else:
                a.term_months = 72
    return out


def _application(
    rng: random.Random,
    index: int,
    fate: Fate,
    business: BusinessPlan,
    behaviour: Behaviour | None,
    lenders: list[LenderSpec],
    rates: dict[str, Decimal],
    today: date,
) -> ApplicationPlan:
    currency = business.currency
    own = [i for i, spec in enumerate(lenders) if spec.currency == currency]
    with_facility = [i for i in own if lenders[i].guarantee_facility]
    same_country = [i for i in own if lenders[i].country == business.country]
    wants_guarantee = rng.random() < 0.65 and bool(with_facility)
    if behaviour is not None and behaviour.guaranteed:
        wants_guarantee = True
    elif (behaviour is not None and behaviour.stops_paying) or behaviour is Behaviour.restructured:
        wants_guarantee = False  # a defaulter with no claim to make, and the restructured loan: co-financing
    if wants_guarantee:
        lender = rng.choice([i for i in with_facility if i in same_country] or with_facility)
        instruments = rng.choice((["guarantee"], ["co_financing", "guarantee"]))
    else:
        lender = rng.choice(same_country or own)
        instruments = ["co_financing"]
    if behaviour is not None and behaviour.stops_paying and not behaviour.guaranteed:
        instruments = ["co_financing"]
    purpose = rng.choice(business.purposes)
    term = rng.choice((12, 18, 24, 24, 36, 36, 48, 60)) if purpose != "crop_financing" else rng.choice((12, 18, 24))
    cad = Decimal(round(rng.lognormvariate(10.4, 0.7))).quantize(Decimal(1))
    cad = min(max(cad, Decimal(8_000)), Decimal(200_000))
    plan = ApplicationPlan(
        index=index,
        business=business.index,
        lender=lender,
        fate=fate,
        amount=_local_amount(cad, currency, rates),
        currency=currency,
        term_months=term,
        purpose=purpose,
        instruments=instruments,
        fund_share_pct=rng.choice((30, 35, 40, 45, 50)) if "co_financing" in instruments else None,
        coverage_pct=rng.choice((40, 50, 50, 50, 60, 75)) if "guarantee" in instruments else None,
        scores={
            "gender_equality": rng.randint(2, 4),
            "democratic_governance": rng.randint(2, 4),
            "environment": rng.randint(2, 4),
            "decent_income_social_responsibility": rng.randint(2, 4),
            "partnership_strength": rng.randint(2, 4),
        },
    )
    if behaviour is not None:
        plan.loan = _loan(rng, plan, behaviour, today)
    return plan


def _local_amount(cad: Decimal, currency: str, rates: dict[str, Decimal]) -> Decimal:
    step = AMOUNT_STEP[currency]
    return max(step, (cad / rates[currency] / step).quantize(Decimal(1)) * step)


def _loan(rng: random.Random, plan: ApplicationPlan, behaviour: Behaviour, today: date) -> LoanPlan:
    def months_ago(low: int, high: int) -> date:
        return today - relativedelta(months=high) + timedelta(days=rng.randint(0, (high - low) * 30))

    stop: date | None = None
    write_off: date | None = None
    frequency = "quarterly" if plan.purpose == "crop_financing" else "monthly"
    disbursed = today - timedelta(days=rng.randint(45, HISTORY_MONTHS * 30))
    if behaviour.claims:
        # defaulted within the last year: the claim is on time (the trigger reached, the deadline not passed)
        disbursed, plan.term_months = months_ago(15, 30), rng.choice((36, 48))
        stop = today - timedelta(days=rng.randint(125, 290))
    elif behaviour is Behaviour.expired:
        disbursed, plan.term_months = months_ago(31, 35), 48
        stop = today - timedelta(days=rng.randint(495, 540))
    elif behaviour is Behaviour.default_written_off:
        disbursed, plan.term_months = months_ago(22, 34), rng.choice((36, 48))
        stop = today - timedelta(days=rng.randint(220, 400))
        write_off = min(today, stop + timedelta(days=rng.randint(200, 260)))
    elif behaviour is Behaviour.defaulted:
        disbursed, plan.term_months = months_ago(8, 34), rng.choice((24, 36, 48))
        stop = min(today - timedelta(days=100), disbursed + timedelta(days=rng.randint(120, 540)))
    elif behaviour is Behaviour.restructured:
        disbursed, plan.term_months = months_ago(24, 27), 36
    if behaviour is not Behaviour.on_time and behaviour is not Behaviour.late:
        frequency = "monthly"
        if plan.purpose == "crop_financing":
            plan.purpose = "equipment"
    low, high = RATE_RANGE[plan.currency]
    return LoanPlan(
        behaviour=behaviour,
        disbursed_on=disbursed,
        annual_rate_pct=rng.randint(low, high),
        frequency=frequency,
        method="equal_principal" if rng.random() < 0.2 else "annuity",
        grace_periods=rng.choice((0, 0, 0, 1, 2)) if frequency == "monthly" and behaviour is Behaviour.on_time else 0,
        second_tranche_pct=rng.choice((30, 40, 50))
        if behaviour in (Behaviour.on_time, Behaviour.late) and rng.random() < 0.06
        else None,
        stop_target=stop,
        write_off_on=write_off,
    )


# --- repayments, once the portfolio has built the schedule ---------------------------------------------------


@dataclass(frozen=True)
class Instalment:
    number: int
    due_date: date
    total_due: Decimal


@dataclass(frozen=True)
class Payment:
    value_date: date
    amount: Decimal


def split_amount(amount: Decimal, currency: str, share: float) -> tuple[Decimal, Decimal]:
    """Two parts of `amount`, exact in the currency's units, both positive."""
    unit = Decimal(1).scaleb(-minor_units(currency))
    first = (amount * Decimal(repr(share)) / unit).quantize(Decimal(1)) * unit
    first = min(max(first, unit), amount - unit)
    return first, amount - first


def payments(
    loan: LoanPlan, schedule: list[Instalment], currency: str, today: date, rng: random.Random
) -> list[Payment]:
    """The repayments a borrower of this behaviour makes on this schedule, up to today, in value-date order."""
    out: list[Payment] = []
    previous = loan.disbursed_on
    stop = None
    if loan.stop_target is not None:
        stop = next((i.number for i in schedule if i.due_date >= loan.stop_target), None)
    for inst in schedule:
        if stop is not None and inst.number >= stop:
            if inst.number == stop and rng.random() < 0.4:  # a last partial payment, then nothing
                part, _ = split_amount(inst.total_due, currency, 0.4)
                day = inst.due_date + timedelta(days=rng.randint(5, 20))
                if day <= today:
                    out.append(Payment(day, part))
            break
        if loan.behaviour is Behaviour.late:
            delay = rng.choices((rng.randint(3, 25), rng.randint(26, 55), rng.randint(56, 95)), weights=(70, 25, 5))[0]
            day = max(inst.due_date + timedelta(days=delay), previous)
        else:
            day = max(inst.due_date - timedelta(days=rng.randint(0, 3)), previous)
        if day > today:
            break
        if loan.behaviour is Behaviour.late and rng.random() < 0.12 and inst.total_due > 1:
            first, rest = split_amount(inst.total_due, currency, rng.uniform(0.3, 0.7))
            later = day + timedelta(days=rng.randint(8, 20))
            out.append(Payment(day, first))
            if later > today:
                break
            out.append(Payment(later, rest))
            day = later
        else:
            out.append(Payment(day, inst.total_due))
        previous = day
    return out


@dataclass(frozen=True)
class Restructuring:
    """The restructured loan: paid on time up to `paid`, then `missed` instalments unpaid, rescheduled on
    `effective_from` over `periods` new monthly instalments at a lower rate."""

    paid: int
    missed: int
    effective_from: date
    first_due_date: date
    periods: int
    annual_rate_pct: int


def restructuring(loan: LoanPlan, schedule: list[Instalment], term_months: int) -> Restructuring:
    paid, missed = 8, 3
    effective = schedule[paid + missed - 1].due_date + timedelta(days=10)
    return Restructuring(
        paid=paid,
        missed=missed,
        effective_from=effective,
        first_due_date=effective + relativedelta(months=1),
        periods=term_months - paid - missed + 6,
        annual_rate_pct=max(4, loan.annual_rate_pct - 2),
    )


def restructured_payments(
    plan: Restructuring, first: list[Instalment], second: list[Instalment], today: date
) -> list[Payment]:
    """On time until the trouble, nothing for `missed` instalments, then the arrears caught up 20 days after the
    restructuring and every new instalment paid on its due date."""
    out = [Payment(i.due_date, i.total_due) for i in first[: plan.paid]]
    arrears = sum((i.total_due for i in first[plan.paid : plan.paid + plan.missed]), Decimal(0))
    catch_up = plan.effective_from + timedelta(days=20)
    if catch_up <= today:
        out.append(Payment(catch_up, arrears))
    out += [Payment(i.due_date, i.total_due) for i in second if plan.effective_from < i.due_date <= today]
    return out


def recovery_amount(outstanding: Decimal, currency: str, rng: random.Random) -> Decimal:
    """What the lender recovers from a defaulted borrower: a part of the outstanding principal."""
    part, _ = split_amount(outstanding, currency, rng.uniform(0.15, 0.35))
    return part
