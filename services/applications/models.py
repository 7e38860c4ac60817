"""Every table of the applications service, all in its own `applications` schema (Alembic reads this)."""

from services.applications.committee.models import Approval, ConflictOfInterest, Scorecard, Vote
from services.applications.db import SCHEMA, Base, events, idempotency_keys, metadata, webhooks
from services.applications.documents.models import Document, DocumentContent
from services.applications.members.models import Ica
from services.applications.partners.models import Business, BusinessProfile
from services.applications.pipeline.models import Application, Screening, Transition
from services.applications.policy.models import Policy

__all__ = [
    "SCHEMA",
    "Application",
    "Approval",
    "Base",
    "Business",
    "BusinessProfile",
    "ConflictOfInterest",
    "Document",
    "DocumentContent",
    "Ica",
    "Policy",
    "Scorecard",
    "Screening",
    "Transition",
    "Vote",
    "events",
    "idempotency_keys",
    "metadata",
    "webhooks",
]
