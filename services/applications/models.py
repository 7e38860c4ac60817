"""Every table of the applications service, all in its own `applications` schema (Alembic reads this)."""

from services.applications.db import SCHEMA, Base, events, idempotency_keys, metadata
from services.applications.members.models import Ica
from services.applications.partners.models import Business, BusinessProfile
from services.applications.pipeline.models import Application, Screening, Transition
from services.applications.policy.models import Policy

__all__ = [
    "SCHEMA",
    "Application",
    "Base",
    "Business",
    "BusinessProfile",
    "Ica",
    "Policy",
    "Screening",
    "Transition",
    "events",
    "idempotency_keys",
    "metadata",
]
