"""Signing actions for the ticket workflow (``domain/signing.py`` explains why, and holds ``seal``
and ``update_id``, re-exported here). The API seals every action and event. ``SigningInterceptor``
does the same for any other trusted Temporal client (tests, benchmarks, operator scripts):
every update it sends to a ticket gets a proof, a request id and an expiry.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import client

from domain.signing import seal, update_id
from models.ticket import ActorInput

__all__ = ["SigningInterceptor", "seal", "signing_client", "update_id"]

TICKET_PREFIX = "ticket-"


class SigningInterceptor(client.Interceptor):
    """Signs every update sent to a ticket workflow (``ticket-<id>``) that carries an unsigned
    ``ActorInput``; ``ttl`` is how long each stays acceptable."""

    def __init__(self, key_id: str, key: bytes, ttl: timedelta = timedelta(minutes=5)) -> None:
        self.key_id, self.key, self.ttl = key_id, key, ttl

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _Signing(next, self)


class _Signing(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, owner: SigningInterceptor) -> None:
        super().__init__(next)
        self.owner = owner

    async def start_workflow_update(self, input: client.StartWorkflowUpdateInput) -> Any:
        args = list(input.args)
        if input.id.startswith(TICKET_PREFIX) and args and isinstance(args[0], ActorInput) and args[0].proof is None:
            o = self.owner
            sealed = seal(
                args[0],
                input.id.removeprefix(TICKET_PREFIX),
                input.update,
                o.key_id,
                o.key,
                datetime.now(UTC) + o.ttl,
                request_id=input.update_id,
            )
            input.args = [sealed, *args[1:]]
            input.update_id = update_id(input.update, sealed)
        return await super().start_workflow_update(input)


def signing_client(c: client.Client, key_id: str, key: bytes, ttl: timedelta = timedelta(minutes=5)) -> client.Client:
    """A copy of ``c`` that signs ticket updates."""
    config = c.config()
    config["interceptors"] = [*config.get("interceptors", []), SigningInterceptor(key_id, key, ttl)]
    return client.Client(**config)
