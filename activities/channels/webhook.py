"""SMS and IM through one HTTP webhook provider: a signed JSON POST to ``webhook_url``.

Headers on every request:

- ``X-Ticketflow-Timestamp``: unix seconds when the request was signed;
- ``X-Ticketflow-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``
  keyed with ``webhook_secret``;
- ``X-Ticketflow-Delivery`` and ``Idempotency-Key``: the outbox row's delivery id, the same
  on every attempt, so the receiver can drop a repeat.

Any non-2xx answer is a failure. A 4xx saying the message itself is unacceptable (400,
409, 413, 422, …) is permanent; 401/403/404 (secret or URL misconfigured — an operator can
fix it), 408, 425, 429, 5xx and network errors are retried.
"""

import hashlib
import hmac
import json
import time

import httpx

from activities.channels import DeliveryError, OutboundMessage
from models.settings import Settings

SIGNATURE_PREFIX = "sha256="
RETRYABLE_4XX = frozenset({401, 403, 404, 408, 425, 429})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str | None,
    *,
    max_age_s: float | None = 300,
    now: float | None = None,
) -> bool:
    """For receivers: is ``header`` the signature of ``body`` at ``timestamp``?

    Compares in constant time. With ``max_age_s`` (default 5 minutes) a timestamp further
    than that from ``now`` is rejected too, so a captured request cannot be replayed later.
    """
    if not header or not timestamp:
        return False
    if max_age_s is not None:
        try:
            age = abs((time.time() if now is None else now) - int(timestamp))
        except ValueError:
            return False
        if age > max_age_s:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def body_of(m: OutboundMessage) -> bytes:
    payload = {
        "delivery_id": m.delivery_id,
        "channel": m.channel.value,
        "to": m.recipient,
        "actor_id": m.actor_id,
        "event": m.event,
        "ticket_id": m.ticket_id,
        "subject": m.subject,
        "text": m.body,
        **m.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookChannel:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.transport = transport

    def headers(self, m: OutboundMessage, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        ts = timestamp or str(int(time.time()))
        if self.settings.webhook_secret is None:
            raise DeliveryError("no webhook secret configured (TICKETFLOW_WEBHOOK_SECRET)")
        secret = self.settings.webhook_secret.get_secret_value()
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "ticketflow-notify/1",
            "X-Ticketflow-Timestamp": ts,
            "X-Ticketflow-Signature": sign(secret, ts, body),
            "X-Ticketflow-Delivery": m.delivery_id,
            "Idempotency-Key": m.delivery_id,
        }

    async def send(self, m: OutboundMessage) -> None:
        url = self.settings.webhook_url
        if not url:
            raise DeliveryError("no webhook configured (TICKETFLOW_WEBHOOK_URL)")
        body = body_of(m)
        try:
            async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s, transport=self.transport) as client:
                resp = await client.post(url, content=body, headers=self.headers(m, body))
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {type(exc).__name__}: {exc}") from exc
        if not resp.is_success:
            code = resp.status_code
            permanent = 400 <= code < 500 and code not in RETRYABLE_4XX
            raise DeliveryError(f"webhook HTTP {code}: {resp.text[:200]}", permanent=permanent)
