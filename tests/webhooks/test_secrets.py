"""Secrets, signing and verification: interoperable with the `standardwebhooks` package, with rotation and reasons."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from shared.webhooks.secrets import Reason, WebhookRejected, generate_secret, is_valid_secret, sign, verify

BODY = b'{"type":"application.status_changed","timestamp":"2025-01-01T00:00:00+00:00","data":{"status":"approved"}}'


def signed(secret: str | list[str], body: bytes = BODY, *, age: timedelta = timedelta(0)) -> dict[str, str]:
    return sign(secret, msg_id=f"msg_{uuid.uuid4().hex}", timestamp=datetime.now(UTC) - age, body=body)


def rejected(reason: Reason, secrets: str | list[str], headers: dict[str, str], body: bytes = BODY) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify(secrets, headers, body)
    assert caught.value.reason is reason, caught.value


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    for secret in (first, second):
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert is_valid_secret(secret)
    assert not is_valid_secret("whsec_" + base64.b64encode(b"short").decode())
    assert not is_valid_secret("not-a-secret")


def test_a_signed_message_verifies_here_and_with_the_reference_package() -> None:
    secret = generate_secret()
    headers = signed(secret)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert verify(secret, headers, BODY) == headers["webhook-id"]
    assert Webhook(secret).verify(BODY, headers)["data"] == {"status": "approved"}
    # and the package's own signature is accepted here, headers in any case
    stamp = datetime.now(UTC)
    theirs = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(stamp.timestamp())),
        "Webhook-Signature": Webhook(secret).sign("msg_1", stamp, BODY.decode()),
    }
    assert verify(secret, theirs, BODY) == "msg_1"


def test_a_tampered_body_is_refused() -> None:
    secret = generate_secret()
    headers = signed(secret)
    rejected(Reason.no_matching_signature, secret, headers, BODY.replace(b"approved", b"declined"))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"approved", b"declined"), headers)


def test_a_wrong_secret_is_refused() -> None:
    rejected(Reason.no_matching_signature, generate_secret(), signed(generate_secret()))


def test_a_timestamp_six_minutes_old_or_ahead_is_refused_even_when_correctly_signed() -> None:
    secret = generate_secret()
    rejected(Reason.timestamp_too_old, secret, signed(secret, age=timedelta(minutes=6)))
    rejected(Reason.timestamp_too_new, secret, signed(secret, age=-timedelta(minutes=6)))
    assert verify(secret, signed(secret, age=timedelta(minutes=4)), BODY)  # inside the tolerance


def test_either_of_two_rotation_secrets_is_accepted_and_a_third_is_not() -> None:
    old, new, other = generate_secret(), generate_secret(), generate_secret()
    assert verify([old, new], signed(old), BODY)
    assert verify([old, new], signed(new), BODY)
    rejected(Reason.no_matching_signature, [old, new], signed(other))
    # a sender rotating signs with both: a receiver holding either one accepts
    both = signed([old, new])
    assert len(both["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, both)
    Webhook(new).verify(BODY, both)
    with pytest.raises(ValueError):
        verify([old, new, other], both, BODY)


def test_missing_and_malformed_headers_are_refused_with_their_reason() -> None:
    secret = generate_secret()
    headers = signed(secret)
    for name in headers:
        rejected(Reason.missing_header, secret, {k: v for k, v in headers.items() if k != name})
    rejected(Reason.invalid_timestamp, secret, {**headers, "webhook-timestamp": "yesterday"})
    for garbage in ("nonsense", "v1,not base64!", "v2,abcd", "v1,"):
        rejected(Reason.no_matching_signature, secret, {**headers, "webhook-signature": garbage})
    # a well-formed entry after garbage still counts
    assert verify(secret, {**headers, "webhook-signature": "junk " + headers["webhook-signature"]}, BODY)
    rejected(Reason.invalid_body, secret, headers, b"\xff\xfe")


def test_an_invalid_secret_is_a_programming_error_not_a_rejection() -> None:
    with pytest.raises(ValueError):
        verify("whsec_", signed(generate_secret()), BODY)
    with pytest.raises(ValueError):
        sign("plain-text", msg_id="m", timestamp=datetime.now(UTC), body=BODY)
