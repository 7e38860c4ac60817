"""A principal token verified once is remembered, but only for the same secret and audience, and never beyond its
expiry (plus the leeway every verification allows)."""

from __future__ import annotations

import time
import uuid

import pytest

from shared import auth
from shared.auth import Principal, Role, mint_principal_token, verify_principal_token
from shared.problems import Unauthorized

SECRET = "s" * 48


def test_a_remembered_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    principal = Principal(key_id=uuid.uuid4(), role=Role.lender, organization_id=uuid.uuid4())
    now = time.time()
    token = mint_principal_token(principal, secret=SECRET, audience="portfolio", ttl_seconds=60)
    assert verify_principal_token(token, secret=SECRET, audience="portfolio") == principal
    assert verify_principal_token(token, secret=SECRET, audience="portfolio") == principal  # remembered
    monkeypatch.setattr(auth.time, "time", lambda: now + 60 + auth.TOKEN_LEEWAY_SECONDS - 1)
    assert verify_principal_token(token, secret=SECRET, audience="portfolio") == principal
    monkeypatch.setattr(auth.time, "time", lambda: now + 60 + auth.TOKEN_LEEWAY_SECONDS + 2)
    with pytest.raises(Unauthorized):
        verify_principal_token(token, secret=SECRET, audience="portfolio")


def test_a_remembered_token_is_not_taken_for_another_audience_or_secret() -> None:
    principal = Principal(key_id=uuid.uuid4(), role=Role.admin)
    token = mint_principal_token(principal, secret=SECRET, audience="portfolio")
    assert verify_principal_token(token, secret=SECRET, audience="portfolio") == principal
    with pytest.raises(Unauthorized):
        verify_principal_token(token, secret=SECRET, audience="reporting")
    with pytest.raises(Unauthorized):
        verify_principal_token(token, secret="t" * 48, audience="portfolio")
    # a tampered token (the payload changed, the signature kept) is checked, not looked up
    head, body, signature = token.split(".")
    with pytest.raises(Unauthorized):
        verify_principal_token(f"{head}.{body}x.{signature}", secret=SECRET, audience="portfolio")
