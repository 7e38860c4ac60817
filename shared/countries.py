"""Countries (ISO 3166 alpha-2) and their UN M49 regions, from the reference table in shared/reference/."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

REFERENCE = Path(__file__).parent / "reference" / "un_m49_countries.csv"


@dataclass(frozen=True)
class Country:
    alpha2: str
    name: str
    region: str  # M49 code, e.g. "002" Africa
    sub_region: str
    intermediate_region: str

    @property
    def m49_codes(self) -> frozenset[str]:
        """Every M49 grouping the country belongs to (region, sub-region, intermediate region)."""
        return frozenset(c for c in (self.region, self.sub_region, self.intermediate_region) if c)


@cache
def countries() -> dict[str, Country]:
    with REFERENCE.open(encoding="utf-8") as f:
        return {
            row["alpha-2"]: Country(
                alpha2=row["alpha-2"],
                name=row["name"],
                region=row["region-code"],
                sub_region=row["sub-region-code"],
                intermediate_region=row["intermediate-region-code"],
            )
            for row in csv.DictReader(f)
        }


def country(alpha2: str) -> Country:
    try:
        return countries()[alpha2]
    except KeyError:
        raise ValueError(f"{alpha2!r} is not an ISO 3166 alpha-2 country code") from None


def _check(value: str) -> str:
    country(value)
    return value


CountryCode = Annotated[
    str,
    Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 country code", examples=["SN"]),
    AfterValidator(_check),
]
