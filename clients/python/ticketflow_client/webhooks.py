"""Verifying what Ticketflow signs: ``X-Ticketflow-Signature: v1=<hex>`` where hex is
``HMAC-SHA256(secret, f"{timestamp}." + raw body)`` and ``X-Ticketflow-Timestamp`` is unix seconds.

The same scheme as the server's inbound checks, written again here so the client never imports
the server. Several ``v1=`` values (comma separated, during a secret rotation) may be offered;
one match is enough. Comparison is constant-time; a timestamp outside ``tolerance_s`` either way
is refused, so a captured delivery cannot be replayed later.
"""

import hashlib
import hmac
import re
import time

SIGNATURE_HEADER = "X-Ticketflow-Signature"
TIMESTAMP_HEADER = "X-Ticketflow-Timestamp"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class InvalidSignature(Exception):
    """The delivery is not from a holder of the secret, or is too old (the reason says which)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value Ticketflow would send for ``body`` at ``timestamp``: ``v1=<hex>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_webhook(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    tolerance_s: int = 300,
    *,
    now: float | None = None,
) -> int:
    """The delivery's timestamp if ``secret`` signed ``body`` within ``tolerance_s`` seconds of
    now; else ``InvalidSignature``. Pass the raw body bytes, not re-serialised JSON."""
    if not timestamp_header or not signature_header:
        raise InvalidSignature("missing signature or timestamp header")
    if not _TIMESTAMP.fullmatch(timestamp_header):
        raise InvalidSignature("malformed timestamp")
    sent = int(timestamp_header)
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = signature(secret, sent, body).removeprefix("v1=").encode()
    offered = [p.strip().removeprefix("v1=") for p in signature_header.split(",") if p.strip().startswith("v1=")]
    matched = False
    for candidate in offered:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise InvalidSignature("signature does not match")
    return sent
