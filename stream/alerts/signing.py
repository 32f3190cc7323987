"""Signed alert webhooks with the Standard Webhooks scheme (https://www.standardwebhooks.com).

Each request carries ``webhook-id`` (the same on retries), ``webhook-timestamp`` (Unix seconds of the attempt)
and ``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``. The timestamp is signed with
the body, so a receiver that rejects timestamps outside a tolerance (:func:`verify_webhook`, default 5
minutes) cannot be fed a captured request later. The HMAC is computed by the ``standardwebhooks`` library.

Secrets: ``whsec_<base64>`` (the Standard Webhooks form; the key is the decoded bytes) or any other text (the
key is its UTF-8 bytes).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from stream.contracts.events import AlertEvent

__all__ = [
    "DEFAULT_TOLERANCE",
    "WebhookVerificationError",
    "sign_headers",
    "verify_webhook",
]

DEFAULT_TOLERANCE = timedelta(minutes=5)
_PREFIX = "whsec_"


class WebhookVerificationError(ValueError):
    """A webhook request is not authentic or not fresh; the message says which check failed."""


def _signer(secret: str) -> Webhook:
    if not secret:
        raise ValueError("the webhook secret is empty: give whsec_<base64> or any non-empty text")
    if secret.startswith(_PREFIX):
        try:
            text = secret[len(_PREFIX):].rstrip("=")
            base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise ValueError("the webhook secret starts with whsec_ but the rest is not base64") from None
        return Webhook(secret)
    return Webhook(secret.encode())


def _signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    return _signer(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


def sign_headers(body: bytes, secret: str, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt to deliver ``body`` (UTF-8 JSON).

    The example of the Standard Webhooks specification:

    >>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    >>> sign_headers(b'{"test": 2432232314}', secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330)["webhook-signature"]
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
    """
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": _signature(secret, msg_id, ts, body),
    }


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: timedelta | float = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> AlertEvent:
    """Check a received alert webhook and return its :class:`AlertEvent`.

    ``body`` must be the raw request body as received; header names are case-insensitive. Raises
    :class:`WebhookVerificationError` when a header is missing, the timestamp is further than ``tolerance``
    (a timedelta or seconds) from ``now`` (default: the clock), or no ``v1`` signature matches.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp {stamp[:40]!r} is not whole Unix seconds") from None
    limit = tolerance.total_seconds() if isinstance(tolerance, timedelta) else float(tolerance)
    current = (now or datetime.now(UTC)).timestamp()
    if abs(current - ts) > limit:
        age = current - ts
        raise WebhookVerificationError(
            f"webhook-timestamp is {abs(age):.0f} s in the {'past' if age > 0 else 'future'}, outside the "
            f"{limit:.0f} s tolerance (a replayed or delayed request)"
        )
    expected = _signature(secret, msg_id, ts, raw).encode()
    if not any(
        hmac.compare_digest(expected, candidate.encode())
        for candidate in signatures.split()
        if candidate.startswith("v1,")
    ):
        raise WebhookVerificationError("no webhook-signature matches the body and secret")
    return AlertEvent.model_validate_json(raw)
