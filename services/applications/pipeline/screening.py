"""Automatic screening against the policy in force. A failed criterion does not throw the application away: each
outcome is recorded with its reason, and the application is rejected listing every criterion that failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from services.applications.members.models import Ica
from services.applications.partners.models import Business
from services.applications.pipeline.models import Application
from services.applications.pipeline.peers import Peers
from services.applications.policy.schemas import PolicyRules
from shared.countries import country
from shared.money import format_amount


@dataclass(frozen=True)
class Criterion:
    name: str
    passed: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def screen(
    *, application: Application, business: Business, ica: Ica, rules: PolicyRules, peers: Peers, today: date
) -> list[Criterion]:
    out: list[Criterion] = []

    def check(name: str, passed: bool, ok: str, failed: str) -> None:
        out.append(Criterion(name, passed, ok if passed else failed))

    check(
        "active_member",
        ica.active,
        f"{ica.name} is an active member",
        f"{ica.name} is not an active member of the fund",
    )
    check(
        "registered_partner",
        business.ica_id == application.ica_id,
        "the business is a registered partner of the ICA",
        "the business is not a registered partner of this ICA",
    )
    forms = [f.value for f in rules.eligible_legal_forms]
    check(
        "collective_legal_form",
        business.legal_form in forms,
        f"{business.legal_form} is a collective SSE form",
        f"legal form {business.legal_form} is not eligible (eligible: {', '.join(forms)})",
    )
    place = country(business.country)
    check(
        "eligible_region",
        bool(place.m49_codes & set(rules.eligible_m49_regions)),
        f"{place.name} is in an eligible region",
        f"{place.name} is not in Africa, Asia, or Latin America and the Caribbean "
        f"(M49 {', '.join(sorted(place.m49_codes))}; eligible: {', '.join(rules.eligible_m49_regions)})",
    )
    age = today.year - business.year_founded
    check(
        "not_a_start_up",
        age >= rules.minimum_age_years,
        f"founded in {business.year_founded}, {age} years ago",
        f"founded in {business.year_founded}, {age} year{'s' if age != 1 else ''} ago: start-ups are not eligible "
        f"(at least {rules.minimum_age_years} years)",
    )
    purposes = [p.value for p in rules.eligible_purposes]
    check(
        "eligible_purpose",
        application.purpose in purposes,
        f"{application.purpose} is an eligible use",
        f"purpose {application.purpose} is not an eligible use (eligible: {', '.join(purposes)})",
    )
    check(
        "term_within_range",
        rules.term_min_months <= application.term_months <= rules.term_max_months,
        f"{application.term_months} months",
        f"term of {application.term_months} months is outside {rules.term_min_months} to {rules.term_max_months}",
    )
    out.append(await _amount(application, rules, peers, today))
    if "guarantee" in application.instruments:
        room = await peers.guarantee_room(
            lender_id=application.lender_id,
            business_id=business.id,
            country=business.country,
            amount=application.amount,
            currency=application.currency,
        )
        check(
            "guarantee_room",
            room.room,
            "the lender's guarantee facility has room",
            f"no room for a guarantee: {room.reason or 'the lender has no active facility with room'}",
        )
    return out


async def _amount(application: Application, rules: PolicyRules, peers: Peers, today: date) -> Criterion:
    if application.currency == "CAD":
        cad = application.amount
        how = ""
    else:
        equivalent = await peers.cad_equivalent(application.amount, application.currency, today)
        if equivalent is None:
            return Criterion(
                "amount_within_range",
                False,
                f"no exchange rate for {application.currency}: the CAD equivalent is unknown",
            )
        cad = equivalent.amount_cad
        stale = " (latest earlier rate)" if equivalent.stale else ""
        rate = format(equivalent.rate.quantize(Decimal("1e-10")).normalize(), "f")
        how = f" at {rate} CAD per {application.currency} of {equivalent.rate_date}{stale}"
    low, high = rules.amount_min_cad, rules.amount_max_cad
    within = low <= cad <= high
    shown = f"{format_amount(application.amount, application.currency)} {application.currency} = {format_amount(cad, 'CAD')} CAD{how}"
    return Criterion(
        "amount_within_range",
        within,
        shown if within else f"{shown} is outside CAD {low:,.0f} to {high:,.0f}",
    )
