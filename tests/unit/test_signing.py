"""Standard Webhooks signing and the SDK's verification helper, incl. a replayed request."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from stream.alerts.signing import sign_headers
from stream.client import WebhookVerificationError, verify_webhook
from stream.contracts.events import AlertEvent

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def body() -> bytes:
    event = AlertEvent(
        alert_id="a1", state="firing", severity="critical", model_id="m", model_version="1", rule="r",
        metric="accuracy", time=NOW, message="accuracy fell", evidence_sql="SELECT 1",
    )
    return event.model_dump_json().encode()


def independent(secret_key: bytes, msg_id: str, ts: int, raw: bytes) -> str:
    digest = hmac.new(secret_key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    ("secret", "key"),
    [(SECRET, b"0123456789abcdef0123456789abcdef"), ("plain text secret", b"plain text secret")],
)
def test_signature_matches_an_independent_hmac_of_id_timestamp_and_body(secret: str, key: bytes) -> None:
    raw, ts = body(), int(NOW.timestamp())
    headers = sign_headers(raw, secret, "a1.firing", ts)
    assert headers == {"webhook-id": "a1.firing", "webhook-timestamp": str(ts),
                       "webhook-signature": independent(key, "a1.firing", ts, raw)}
    assert verify_webhook(raw, headers, secret, now=NOW).alert_id == "a1"


def test_a_captured_request_replayed_outside_the_tolerance_is_rejected() -> None:
    raw = body()
    captured = sign_headers(raw, SECRET, "a1.firing", int(NOW.timestamp()))
    assert verify_webhook(raw, captured, SECRET, now=NOW + timedelta(minutes=4, seconds=59)).alert_id == "a1"
    with pytest.raises(WebhookVerificationError, match=r"301 s in the past, outside the 300 s tolerance"):
        verify_webhook(raw, captured, SECRET, now=NOW + timedelta(minutes=5, seconds=1))
    with pytest.raises(WebhookVerificationError, match="in the future"):
        verify_webhook(raw, captured, SECRET, now=NOW - timedelta(minutes=6))
    # A longer tolerance accepts it; re-stamping the captured request without the secret does not help.
    assert verify_webhook(raw, captured, SECRET, tolerance=3600, now=NOW + timedelta(minutes=30))
    restamped = dict(captured, **{"webhook-timestamp": str(int((NOW + timedelta(hours=1)).timestamp()))})
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(raw, restamped, SECRET, now=NOW + timedelta(hours=1))


def test_bad_signatures_bodies_secrets_and_headers_are_rejected() -> None:
    raw, ts = body(), int(NOW.timestamp())
    headers = sign_headers(raw, SECRET, "a1.firing", ts)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(raw.replace(b"accuracy fell", b"accuracy rose"), headers, SECRET, now=NOW)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(raw, headers, "whsec_" + base64.b64encode(b"another key").decode(), now=NOW)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(raw, {k: v for k, v in headers.items() if k != "webhook-id"}, SECRET, now=NOW)
    with pytest.raises(WebhookVerificationError, match="not whole Unix seconds"):
        verify_webhook(raw, dict(headers, **{"webhook-timestamp": "soon"}), SECRET, now=NOW)
    # Several signatures (key rotation) and any header case are accepted.
    rotated = {"Webhook-Id": headers["webhook-id"], "WEBHOOK-TIMESTAMP": headers["webhook-timestamp"],
               "webhook-signature": "v1,bm90IGl0 v2,x " + headers["webhook-signature"]}
    assert verify_webhook(raw.decode(), rotated, SECRET, now=NOW).alert_id == "a1"
    with pytest.raises(ValueError, match="not base64"):
        sign_headers(raw, "whsec_not*base64", "x")
