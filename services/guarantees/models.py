"""Every table of the guarantees service, all in its own `guarantees` schema (Alembic reads this)."""

from services.guarantees.capital.models import CapitalEntry
from services.guarantees.claims.models import Claim, ClaimStep, Recovery
from services.guarantees.db import SCHEMA, Base, events, idempotency_keys, metadata
from services.guarantees.facilities.models import Facility, FacilityTerms
from services.guarantees.fees.models import FeeInvoice
from services.guarantees.issuance.models import Guarantee
from services.guarantees.policy.models import GuaranteePolicy

__all__ = [
    "SCHEMA",
    "Base",
    "CapitalEntry",
    "Claim",
    "ClaimStep",
    "Facility",
    "FacilityTerms",
    "FeeInvoice",
    "Guarantee",
    "GuaranteePolicy",
    "Recovery",
    "events",
    "idempotency_keys",
    "metadata",
]
