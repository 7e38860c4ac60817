"""Standard Webhooks secrets, signing and verification (https://www.standardwebhooks.com).

The HMAC itself is the `standardwebhooks` package's (`Webhook.sign` / `Webhook.verify`); this module adds what it
lacks for the platform:

- **rotation**: `Webhook` takes one secret; `verify()` here accepts one or two (old and new both valid for a while)
  and `sign()` can sign with several (the header then carries one `v1,` signature per secret, space-separated, as
  the specification allows), so a receiver holding either secret accepts the message;
- **a reason**: the package raises `WebhookVerificationError` with a message only; `WebhookRejected.reason` is a
  stable code (`missing-header`, `invalid-timestamp`, `timestamp-too-old`, `timestamp-too-new`, `invalid-body`,
  `no-matching-signature`) an API can answer and a log can count;
- **raw bytes**: the package signs text (it decodes the body as UTF-8); a body that is not UTF-8 is refused as
  `invalid-body` instead of escaping as a `UnicodeDecodeError`, and malformed signature entries (no `v1,` prefix,
  bad base64) are skipped instead of raising `ValueError`/`binascii.Error`.
"""

from __future__ import annotations

import base64
import binascii
import secrets as _random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from standardwebhooks import Webhook, WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
TOLERANCE = timedelta(minutes=5)  # the package's own, fixed tolerance; the specification's recommendation
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"


class Reason(StrEnum):
    missing_header = "missing-header"
    invalid_timestamp = "invalid-timestamp"
    timestamp_too_old = "timestamp-too-old"
    timestamp_too_new = "timestamp-too-new"
    invalid_body = "invalid-body"
    no_matching_signature = "no-matching-signature"


class WebhookRejected(Exception):
    """An inbound webhook that must not be trusted; `reason` says why (safe to tell the sender)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def generate_secret() -> str:
    """A new secret: `whsec_` and the standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def is_valid_secret(secret: str) -> bool:
    """`whsec_` and the base64 of 24 to 64 bytes (the specification's bounds)."""
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


def _webhook(secret: str) -> Webhook:
    if not is_valid_secret(secret):
        # never echo the secret itself
        raise ValueError("a webhook secret is 'whsec_' followed by the base64 of 24 to 64 bytes")
    return Webhook(secret)


def sign(secrets: str | Sequence[str], *, msg_id: str, timestamp: datetime | int, body: bytes | str) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` (exactly the bytes that will be sent).

    With several secrets (rotation on the sender's side) the signature header carries one signature per secret.
    """
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed to sign")
    if isinstance(timestamp, int):
        at = datetime.fromtimestamp(timestamp, tz=UTC)
    else:
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        # the package replaces (not converts) the tzinfo with UTC: give it UTC already
        at = timestamp.astimezone(UTC)
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    signatures = [_webhook(key).sign(msg_id, at, text) for key in keys]
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(int(at.timestamp())),
        SIGNATURE_HEADER: " ".join(signatures),
    }


def verify(secrets: str | Sequence[str], headers: Mapping[str, str], body: bytes) -> str:
    """Check an inbound request against one or two valid secrets; answers its `webhook-id` (for deduplication).

    Raises `WebhookRejected` with the reason. `headers` may be any case-insensitive or lower/mixed-case mapping
    (Starlette's `request.headers` works as is).
    """
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not 1 <= len(keys) <= 2:
        raise ValueError("verify against one secret, or two while rotating")
    webhooks = [_webhook(key) for key in keys]
    lowered = {k.lower(): v for k, v in headers.items()}
    values = {name: lowered.get(name, "").strip() for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise WebhookRejected(Reason.missing_header, f"missing header(s): {', '.join(missing)}")
    # the package checks the timestamp too, but only says so in prose: check it first for a precise reason
    try:
        sent = datetime.fromtimestamp(int(values[TIMESTAMP_HEADER]), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookRejected(Reason.invalid_timestamp, "webhook-timestamp is not integer Unix seconds") from None
    current = datetime.now(UTC)
    if sent < current - TOLERANCE:
        raise WebhookRejected(Reason.timestamp_too_old, "webhook-timestamp is more than 5 minutes old")
    if sent > current + TOLERANCE:
        raise WebhookRejected(Reason.timestamp_too_new, "webhook-timestamp is more than 5 minutes ahead")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(Reason.invalid_body, "the body is not UTF-8") from None
    # only well-formed `v1,<base64>` entries: the package raises ValueError/binascii.Error on anything else
    signatures = " ".join(s for s in values[SIGNATURE_HEADER].split() if _well_formed(s))
    checked = {**values, SIGNATURE_HEADER: signatures or "v1,"}
    for webhook in webhooks:
        try:
            webhook.verify(text, checked, json_parse=False)
        except WebhookVerificationError as exc:
            message = str(exc).lower()
            if "too old" in message:  # the boundary crossed between our check and the package's
                raise WebhookRejected(
                    Reason.timestamp_too_old, "webhook-timestamp is more than 5 minutes old"
                ) from None
            if "too new" in message:
                raise WebhookRejected(
                    Reason.timestamp_too_new, "webhook-timestamp is more than 5 minutes ahead"
                ) from None
            continue
        return values[ID_HEADER]
    raise WebhookRejected(Reason.no_matching_signature, "no signature matches the body with a valid secret")


def _well_formed(entry: str) -> bool:
    version, _, signature = entry.partition(",")
    if version != "v1" or not signature:
        return False
    try:
        base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
