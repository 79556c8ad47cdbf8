"""SMS to customers through an HTTP SMS gateway: a signed JSON POST of ``{to, text}``.

The request is signed like the notification webhook (``activities/channels/webhook.py``:
``X-Ticketflow-Timestamp``, ``X-Ticketflow-Signature`` = HMAC-SHA256 of ``"<timestamp>.<body>"``)
and carries the message's delivery id as ``Idempotency-Key`` and ``X-Ticketflow-Delivery`` —
the same on every attempt, so the gateway can drop a repeat. A 2xx is delivered; a 4xx that
says the message itself is unacceptable is permanent; 401/403/404/408/425/429, 5xx and network
errors are retried by the delivery loop. ``post_signed`` is shared with the WeChat-style channel.
"""

import json
import time
from typing import Any

import httpx

from activities.channels import DeliveryError, OutboundMessage
from activities.channels.webhook import RETRYABLE_4XX, sign

MAX_SMS_TEXT = 1_000  # characters; a gateway splits long texts into parts itself


async def post_signed(
    url: str,
    secret: str,
    payload: dict[str, Any],
    delivery_id: str,
    *,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
    what: str = "gateway",
) -> httpx.Response:
    """POST ``payload`` as signed JSON; raise ``DeliveryError`` unless the answer is 2xx."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "ticketflow-customer-messages/1",
        "X-Ticketflow-Timestamp": ts,
        "X-Ticketflow-Signature": sign(secret, ts, body),
        "X-Ticketflow-Delivery": delivery_id,
        "Idempotency-Key": delivery_id,
    }
    try:
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client:
            resp = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what} {type(exc).__name__}: {exc}") from exc
    if not resp.is_success:
        code = resp.status_code
        permanent = 400 <= code < 500 and code not in RETRYABLE_4XX
        raise DeliveryError(f"{what} HTTP {code}: {resp.text[:200]}", permanent=permanent)
    return resp


class SmsChannel:
    def __init__(
        self, url: str, secret: str, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url, self.secret, self.timeout_s, self.transport = url, secret, timeout_s, transport

    @staticmethod
    def payload(m: OutboundMessage) -> dict[str, Any]:
        return {
            "delivery_id": m.delivery_id,
            "to": m.recipient,
            "text": m.body[:MAX_SMS_TEXT],
            "ticket_id": m.ticket_id,
            "kind": m.event,
            "language": m.data.get("language"),
        }

    async def send(self, m: OutboundMessage) -> None:
        if not m.recipient.startswith("+"):
            raise DeliveryError(f"not a phone number in E.164: {m.recipient!r}", permanent=True)
        await post_signed(
            self.url,
            self.secret,
            self.payload(m),
            m.delivery_id,
            timeout_s=self.timeout_s,
            transport=self.transport,
            what="SMS gateway",
        )
