"""Ticket ids: short, URL-safe, sortable by creation time."""

import hashlib
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 32)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_ticket_id(now_ms: int | None = None) -> str:
    """``T`` + 9 chars of milliseconds + 7 random chars (35 bits): ``T01JD3K8Q5M4ZR2XW``."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return "T" + _b32(ms, 9) + _b32(secrets.randbits(35), 7)


def ticket_id_for_key(key: str) -> str:
    """A ticket id derived from a client's de-duplication key: the same key, the same ticket."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:10], "big")
    return "K" + _b32(digest, 16)
