"""Signatures on what outside systems send us: customer channels (``/channels/{code}/inbound``)
and business systems (``/integrations/{source}/events``), one scheme for both (docs/channels.md).

The sender computes ``hex(HMAC-SHA256(secret, f"{timestamp}.{raw body}"))`` and sends it as
``X-Ticketflow-Signature: v1=<hex>`` with ``X-Ticketflow-Timestamp: <unix seconds>``. We refuse a
missing or malformed header, a timestamp outside the replay window (either way: a captured
request cannot be sent again later, a clock far ahead is refused too) and a signature that does
not match, compared in constant time. A request may carry several ``v1=`` values (comma
separated) while a secret is rotated; any one matching is enough. Outbound webhooks sign the same
way, so one verification snippet serves both directions.
"""

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Ticketflow-Signature"
TIMESTAMP_HEADER = "X-Ticketflow-Timestamp"
DEFAULT_WINDOW_S = 300  # ±5 minutes
# Unix seconds in ASCII digits only: ``str.isdigit`` takes "²" (which ``int`` cannot read) and
# ``int`` takes any script's digits ("１２３"); one spelling of a time, nothing else.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class BadSignature(Exception):
    """Why a request is refused (logged; the caller answers one plain 401)."""

    reason: str


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``: ``v1=<hex>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def parse_timestamp(value: str) -> int | None:
    """``value`` as unix seconds if it is 1-12 ASCII digits, else None (also for the WeChat
    handshake's ``timestamp`` parameter)."""
    return int(value) if _TIMESTAMP.fullmatch(value) else None


def verify(
    secrets: list[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    window_s: int = DEFAULT_WINDOW_S,
    now: float | None = None,
) -> int:
    """The request's timestamp, if one of ``secrets`` signed ``body`` within the window; else
    ``BadSignature``. Every secret and every offered signature is compared, in constant time."""
    if not timestamp or not signature:
        raise BadSignature("missing signature or timestamp header")
    sent = parse_timestamp(timestamp)
    if sent is None:
        raise BadSignature("malformed timestamp")
    current = time.time() if now is None else now
    if abs(current - sent) > window_s:
        raise BadSignature("timestamp outside the replay window")
    offered = [part.strip().removeprefix("v1=") for part in signature.split(",") if part.strip().startswith("v1=")]
    if not offered or not secrets:
        raise BadSignature("no v1 signature")
    matched = False
    for secret in secrets:
        expected = sign(secret, sent, body).removeprefix("v1=")
        for candidate in offered:
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise BadSignature("signature does not match")
    return sent
