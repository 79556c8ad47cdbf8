"""The API's word for one request, checked by the workflow itself.

Whoever reaches a ticket's workflow — the API, the Temporal UI, a script with a client — sends
an actor with each action. Only the API knows who that actor really is (it resolved them from
an API key or a verified token, with roles and regions from their person record), so the API
signs each action input: HMAC-SHA256 over the ticket, the update's name and the whole input
(actor, body, request id, expiry). The workflow's validators refuse an input that is unsigned,
signed with an unknown key, altered, or past its expiry (so an action the API gave up on never
applies late).

Pure and deterministic: the workflow imports it (passed through the sandbox). The keys are
installed once per process (``install_keys``) by the worker; validators are not run on replay,
so rotating keys never breaks a recorded history.
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from models.ticket import ActorInput, Proof

_KEYS: dict[str, bytes] = {}


def install_keys(keys: Mapping[str, bytes]) -> None:
    """The keys this process accepts (key id → key); the worker calls it at start."""
    _KEYS.clear()
    _KEYS.update(keys)


def installed() -> bool:
    return bool(_KEYS)


def canonical(payload: Mapping[str, Any]) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def _message(ticket_id: str, name: str, payload: Mapping[str, Any]) -> bytes:
    return b"\n".join([b"ticketflow-action-v1", ticket_id.encode(), name.encode(), canonical(payload)])


def signature(key: bytes, ticket_id: str, name: str, payload: Mapping[str, Any]) -> str:
    """``payload``: the input as JSON with the proof's ``signature`` left empty."""
    return hmac.new(key, _message(ticket_id, name, payload), hashlib.sha256).hexdigest()


def verify(key_id: str, given: str, ticket_id: str, name: str, payload: Mapping[str, Any]) -> str | None:
    """None when ``given`` is the signature of this input under the installed key ``key_id``;
    otherwise why not."""
    key = _KEYS.get(key_id)
    if key is None:
        return "signed with a key this worker does not hold" if _KEYS else "this worker holds no signing keys"
    if not hmac.compare_digest(signature(key, ticket_id, name, payload), given):
        return "the signature does not match the request"
    return None


# --- sealing: the API, and activities acting on tickets as the system (never workflow code:
# ``seal`` draws a random request id) ---


def update_id(name: str, input: ActorInput) -> str:
    """The Temporal update id of a sealed input: the same request (id and body) → the same id,
    so Temporal answers a repeat with the first outcome; the same request id with another body
    → another id, which the workflow refuses as a reused key."""
    assert input.proof is not None
    body = digest(input.model_dump(mode="json", exclude={"proof"}))
    return f"{name}-{digest({'r': input.proof.request_id})[:24]}-{body[:16]}"


def seal(
    input: ActorInput,
    ticket_id: str,
    name: str,
    key_id: str,
    key: bytes,
    expires_at: datetime,
    request_id: str | None = None,
) -> ActorInput:
    """``input`` with the proof the workflow checks: signed over the ticket, the update's name
    and the whole input."""
    proof = Proof(request_id=request_id or uuid.uuid4().hex, expires_at=expires_at, key_id=key_id)
    unsigned = input.model_copy(update={"proof": proof})
    payload = unsigned.model_dump(mode="json")
    signed = proof.model_copy(update={"signature": signature(key, ticket_id, name, payload)})
    return input.model_copy(update={"proof": signed})
